package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"

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
		errs[i] = s.mixedHost(mbs[i], host, rng, logs[i], meters[i])
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
	r.Notes = append(r.Notes, fmt.Sprintf("%s at once, %d operations each: %d%% deliveries, %d%% flag changes, %d%% Syncs",
		plural(n, "host"), s.cfg.mixedOps, s.cfg.mix[0], s.cfg.mix[1], s.cfg.mix[2]))
	if s.cfg.think > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("think time %v between operations", s.cfg.think))
	}
	if s.cfg.host != "" {
		r.Hosts = s.cfg.hosts
		r.Notes = append(r.Notes, fmt.Sprintf("this host (%s) of a %d-host run: its operations only", s.cfg.host, s.cfg.hosts))
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

// mixedHost is one host's part of the mixed workload.
func (s *session) mixedHost(mb *engine.Mailbox, host string, rng *rand.Rand, log *hostLog, mt *meter) error {
	v := mb.View()
	deliverBelow, flagBelow := s.cfg.mix[0], s.cfg.mix[0]+s.cfg.mix[1]
	for i := range s.cfg.mixedOps {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		s.e.sleep(host, s.cfg.think)
		p := rng.IntN(100)
		switch {
		case p < flagBelow && (p < deliverBelow || v.Len() == 0):
			tx := mb.Begin()
			tx.Append(s.message(i))
			var res engine.Result
			err := mt.op(func() error {
				var err error
				res, err = tx.Commit(s.ctx)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: deliver: %w", host, err)
			}
			if err := log.commit(mb, "deliver", tx.Key(), res); err != nil {
				return err
			}
		case p < flagBelow:
			msg, _ := v.BySeq(1 + rng.IntN(v.Len()))
			tx := mb.Begin()
			f := engine.Seen
			if rng.IntN(2) == 0 {
				f = engine.Flagged
			}
			if rng.IntN(2) == 0 {
				tx.SetFlags(msg.UID, f, 0)
			} else {
				tx.SetFlags(msg.UID, 0, f)
			}
			var res engine.Result
			err := mt.op(func() error {
				var err error
				res, err = tx.Commit(s.ctx)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: flag change: %w", host, err)
			}
			if err := log.commit(mb, "flags", tx.Key(), res); err != nil {
				return err
			}
		default:
			err := mt.op(func() error {
				_, err := v.Sync(s.ctx)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: sync: %w", host, err)
			}
			if err := log.sync(mb); err != nil {
				return err
			}
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
