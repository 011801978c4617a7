package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nfsindex/nfsindex/engine"
)

// mixedHosts are the hosts of the mixed workload in this process.
func (s *session) mixedHosts() []string {
	if s.cfg.host != "" {
		return []string{s.cfg.host}
	}
	hosts := make([]string, s.cfg.hosts)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("mx%d", i+1)
	}
	return hosts
}

// hostSeed derives a host's stream from the run's seed and its name, so
// that hosts of a multi-host run started with the same seed still differ.
func hostSeed(host string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(host))
	return h.Sum64()
}

// mixed runs deliveries, flag changes and Syncs from every host at once on
// a fresh mailbox, logs each acknowledged operation, and verifies the logs
// against the index's history when every host ran in this process.
func (s *session) mixed() (Result, error) {
	hosts := s.mixedHosts()
	n := len(hosts)
	mbs := make([]*engine.Mailbox, n)
	logs := make([]*hostLog, n)
	meters := make([]*meter, n)
	kinds := make([]map[string][]time.Duration, n)
	contended := make([]int, n)
	errs := make([]error, n)
	defer func() {
		for i := range n {
			if mbs[i] != nil {
				mbs[i].Close()
			}
		}
	}()
	for i, h := range hosts {
		var err error
		if mbs[i], err = s.open(h, mixedDir, s.cfg.autoCompact); err != nil {
			return Result{}, err
		}
		if logs[i], err = s.newLog(h); err != nil {
			return Result{}, err
		}
		meters[i] = newMeter(s.e, h, s.e.perHost(), s.prog.counter())
	}
	if s.barrier != nil {
		if err := s.barrier(); err != nil {
			return Result{}, err
		}
	}
	w := startWindow(s.e, hosts[0])
	t0 := s.e.now()
	err := s.e.parallel(hosts, func(i int, host string) {
		rng := rand.New(rand.NewPCG(s.cfg.seed, hostSeed(host)))
		kinds[i] = map[string][]time.Duration{}
		errs[i] = s.mixedHost(mbs[i], host, rng, logs[i], meters[i], kinds[i], &contended[i])
	})
	elapsed := s.e.now() - t0
	var shared rpcCounts
	if !s.e.perHost() {
		var rerr error
		shared, _, rerr = w.stop(hosts[0])
		if rerr != nil {
			meters[0].err = rerr
		}
	}
	for i := range n {
		if cerr := logs[i].close(errs[i] == nil); cerr != nil && errs[i] == nil {
			errs[i] = cerr
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("simulation: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	r := summarize(s.e, "mixed", meters, 1, elapsed, shared, 0)
	who := plural(n, "host") + " at once, " + strconv.Itoa(s.cfg.mixedOps) + " operations each"
	if s.cfg.host != "" {
		who = fmt.Sprintf("%d operations of %s, one of %s at once", s.cfg.mixedOps, s.cfg.host, plural(s.cfg.hosts, "host"))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%s: %d%% deliveries, %d%% flag changes, %d%% Syncs", who, s.cfg.mix[0], s.cfg.mix[1], s.cfg.mix[2]))
	r.ByKind = map[string]Latency{}
	for _, k := range []string{"deliver", "flags", "sync"} {
		var all []time.Duration
		for i := range n {
			all = append(all, kinds[i][k]...)
		}
		if len(all) == 0 {
			continue
		}
		l := percentiles(all)
		r.ByKind[k] = l
		r.Notes = append(r.Notes, fmt.Sprintf("%-7s %5d ops: p50 %s, p99 %s, p99.9 %s, longest %s", k, len(all),
			fmtUS(l.P50), fmtUS(l.P99), fmtUS(l.P999), fmtDuration(all[len(all)-1])))
	}
	for _, c := range contended {
		r.Contended += c
	}
	if r.Contended > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d commits gave up with engine.ErrContended (lost the race for a sequence number %d times in a row) "+
			"and were retried in a new transaction; their latency includes the retries", r.Contended, engineMaxCommitTries))
	}
	if s.cfg.think > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("think time %v between operations", s.cfg.think))
	}
	if s.cfg.host != "" {
		r.Hosts = s.cfg.hosts
		r.Notes = append(r.Notes, "ops/s, latencies and RPCs are this host's; the other hosts print their own")
		return r, nil
	}
	s.logs = logs
	// Every host ran here: check the logs against the history now.
	judge := s.e.fs("judge")
	in, err := engine.Inspect(s.ctx, judge, mixedDir)
	if err != nil {
		return r, fmt.Errorf("reading the history to verify: %w", err)
	}
	rep := verifyLogs(in, logs)
	r.Verify = &rep
	s.verify = &rep
	if !rep.OK {
		return r, &verifyError{rep: rep}
	}
	return r, nil
}

// maxContendedRetries bounds how often mixed retries a commit that
// returned engine.ErrContended (nothing committed) with a new transaction.
const maxContendedRetries = 10

// commitRetrying commits what fill puts in a new transaction, and again in
// another one when the engine gives up with ErrContended, counting those
// in *contended. It returns the key of the transaction that committed.
func (s *session) commitRetrying(mb *engine.Mailbox, fill func(*engine.Tx), contended *int) (engine.Key, engine.Result, error) {
	for try := 0; ; try++ {
		tx := mb.Begin()
		fill(tx)
		res, err := tx.Commit(s.ctx)
		if errors.Is(err, engine.ErrContended) && try < maxContendedRetries {
			*contended++
			continue
		}
		return tx.Key(), res, err
	}
}

// mixedHost is one host's part of the mixed workload.
func (s *session) mixedHost(mb *engine.Mailbox, host string, rng *rand.Rand, log *hostLog, mt *meter, kinds map[string][]time.Duration, contended *int) error {
	last := func(k string) { kinds[k] = append(kinds[k], mt.lats[len(mt.lats)-1]) }
	v := mb.View()
	deliverBelow, flagBelow := s.cfg.mix[0], s.cfg.mix[0]+s.cfg.mix[1]
	for i := range s.cfg.mixedOps {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		s.e.sleep(host, s.cfg.think)
		p := rng.IntN(100)
		kind := "sync"
		var fill func(*engine.Tx)
		switch {
		case p < flagBelow && (p < deliverBelow || v.Len() == 0):
			kind = "deliver"
			msg := s.message(i)
			fill = func(tx *engine.Tx) { tx.Append(msg) }
		case p < flagBelow:
			kind = "flags"
			m, _ := v.BySeq(1 + rng.IntN(v.Len()))
			f := engine.Seen
			if rng.IntN(2) == 0 {
				f = engine.Flagged
			}
			add, remove := f, engine.Flags(0)
			if rng.IntN(2) == 0 {
				add, remove = 0, f
			}
			fill = func(tx *engine.Tx) { tx.SetFlags(m.UID, add, remove) }
		}
		if fill == nil {
			err := mt.op(func() error {
				_, err := v.Sync(s.ctx)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: sync: %w", host, err)
			}
			last(kind)
			if err := log.sync(mb); err != nil {
				return err
			}
			continue
		}
		var key engine.Key
		var res engine.Result
		err := mt.op(func() error {
			var err error
			key, res, err = s.commitRetrying(mb, fill, contended)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %s: %w", host, kind, err)
		}
		last(kind)
		if err := log.commit(mb, kind, key, res); err != nil {
			return err
		}
	}
	return nil
}

// plural formats a count of things.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// engineMaxCommitTries is engine.Options.MaxCommitTries's default, which
// nfsbench leaves as it is.
const engineMaxCommitTries = 1000
