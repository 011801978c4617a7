package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nfsindex/nfsindex/engine"
)

// session runs the selected workloads on one env.
type session struct {
	ctx  context.Context
	cfg  *config
	e    env
	prog *progress
	rng  *rand.Rand
	// opened counts engine.Open calls: each gets its own random stream, so
	// every Mailbox of the run has its own idempotency owner.
	opened  uint64
	mbox    *engine.Mailbox // mx1's mailbox "mbox", of -messages messages
	results []Result
	// verify is the report of the mixed workload's check, logs the logs
	// it checked.
	verify *VerifyReport
	logs   []*hostLog
	// logDir is where hosts' logs go ("" under the simulator: memory);
	// runID names the run in them.
	logDir, runID string
	// floors runs the raw floor after each durable workload (on a real
	// directory).
	floors bool
	// barrier, if set, is where the host of a multi-host run waits for
	// the others before the mixed workload starts.
	barrier func() error
}

// systemOrder is the order of the systems in a workload's rows.
var systemOrder = []string{"nfsindex", "raw-floor", "bbolt", "sqlite"}

const (
	mainHost   = "mx1"
	remoteHost = "mx2"
	mboxDir    = "mbox"
	mixedDir   = "mixed"
)

// open opens dir on host. Under the simulator and on one machine every
// Mailbox draws its idempotency owner from the run's seed; hosts of a
// multi-host run (several processes that may share a seed) draw theirs
// from crypto/rand.
func (s *session) open(host, dir string, autoCompact bool) (*engine.Mailbox, error) {
	s.opened++
	opt := engine.Options{FS: s.e.fs(host), Dir: dir, Host: host, UIDValidity: 1700000000,
		NamespaceDurable: s.e.namespaceDurable(),
		// A local disk is one kernel's: every host of a run on it is a
		// process of this machine (other machines need NFS).
		SingleKernel: s.e.mode() == "local" && !s.cfg.syncedPublish}
	if s.cfg.host == "" {
		opt.Rand = rand.New(rand.NewPCG(s.cfg.seed, s.opened))
	}
	if !autoCompact {
		opt.CompactRatio = -1
	}
	m, err := engine.Open(s.ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("open %s on %s: %w", dir, host, err)
	}
	return m, nil
}

// message is what a delivery appends.
func (s *session) message(i int) engine.NewMessage {
	msg := engine.NewMessage{}
	if s.cfg.fieldBytes > 0 {
		v := make([]byte, s.cfg.fieldBytes)
		for j := range v {
			v[j] = byte('a' + (i+j)%26)
		}
		msg.Fields = map[string][]byte{"envelope": v}
	}
	return msg
}

// run runs every selected workload in an order that lets each start from
// the state it needs, and keeps the results in the table's order.
func (s *session) run() error {
	steps := []struct {
		name string
		fn   func() (Result, error)
	}{
		{"build", s.build},
		{"flags-durable", s.flagsDurable},
		{"flags-batched", s.flagsBatched},
		{"flags-concurrent", s.flagsConcurrent},
		{"lookup", s.lookup},
		{"scan", s.scan},
		{"open", s.open_},
		{"sync-idle", s.syncIdle},
		{"sync-remote", s.syncRemote},
		{"expunge-compact", s.expungeCompact},
		{"mixed", s.mixed},
	}
	defer func() {
		if s.mbox != nil {
			s.mbox.Close()
		}
	}()
	for _, st := range steps {
		if !s.cfg.has(st.name) {
			continue
		}
		if st.name != "mixed" && st.name != "build" && s.mbox == nil {
			if err := s.ensureMailbox(); err != nil {
				return err
			}
		}
		s.prog.start(s.e.mode(), st.name, s.expected(st.name))
		wall := time.Now()
		r, err := st.fn()
		s.prog.done()
		if err != nil {
			return fmt.Errorf("%s %s: %w", s.e.mode(), st.name, err)
		}
		r.WallSeconds = time.Since(wall).Seconds()
		s.results = append(s.results, r)
		if s.floors && slices.Contains(floorWorkloads, r.Workload) {
			// Right after the engine, so that both see the same disk.
			fr, err := s.rawFloor(r)
			if err != nil {
				return fmt.Errorf("%s %s: %w", s.e.mode(), st.name, err)
			}
			s.results = append(s.results, fr)
		}
	}
	slices.SortStableFunc(s.results, func(a, b Result) int {
		if d := slices.Index(workloadNames, a.Workload) - slices.Index(workloadNames, b.Workload); d != 0 {
			return d
		}
		return slices.Index(systemOrder, a.System) - slices.Index(systemOrder, b.System)
	})
	return nil
}

// expected is the number of operations a workload will time, for the
// progress line.
func (s *session) expected(w string) int {
	c := s.cfg
	switch w {
	case "build":
		return (c.messages + c.batch - 1) / c.batch
	case "flags-durable", "flags-concurrent":
		return c.flagOps
	case "flags-batched":
		return c.flagBatches
	case "lookup":
		return c.lookups
	case "scan":
		return c.scans
	case "expunge-compact":
		return (int(float64(c.messages)*c.expunge) + c.batch - 1) / c.batch
	case "open":
		return c.opens
	case "sync-idle", "sync-remote":
		return c.syncs
	case "mixed":
		if c.host != "" {
			return c.mixedOps
		}
		return c.mixedOps * c.hosts
	}
	return 0
}

// fill appends n messages to m in commits of batch, timing each commit
// with mt if it is not nil.
func (s *session) fill(m *engine.Mailbox, n int, mt *meter) error {
	for i := 0; i < n; {
		k := min(s.cfg.batch, n-i)
		commit := func() error {
			tx := m.Begin()
			for j := range k {
				tx.Append(s.message(i + j))
			}
			_, err := tx.Commit(s.ctx)
			return err
		}
		var err error
		if mt != nil {
			err = mt.op(commit)
		} else {
			err = commit()
		}
		if err != nil {
			return err
		}
		i += k
	}
	return nil
}

// ensureMailbox builds the mailbox untimed, for workloads run without
// build.
func (s *session) ensureMailbox() error {
	m, err := s.open(mainHost, mboxDir, true)
	if err != nil {
		return err
	}
	s.mbox = m
	if err := s.fill(m, s.cfg.messages, nil); err != nil {
		return fmt.Errorf("building the mailbox: %w", err)
	}
	return nil
}

func (s *session) build() (Result, error) {
	m, err := s.open(mainHost, mboxDir, true)
	if err != nil {
		return Result{}, err
	}
	s.mbox = m
	mt := newMeter(s.e, mainHost, true, s.prog.counter())
	if err := s.fill(m, s.cfg.messages, mt); err != nil {
		return Result{}, err
	}
	r := summarize(s.e, "build", []*meter{mt}, float64(s.cfg.batch), 0, nil, 0)
	r.Notes = append(r.Notes, fmt.Sprintf("%d messages, %d per commit", s.cfg.messages, s.cfg.batch))
	return r, nil
}

// uids returns the UIDs of mx1's mailbox now.
func (s *session) uids() []uint32 {
	var out []uint32
	s.mbox.View().All(func(_ int, msg engine.Message) bool {
		out = append(out, msg.UID)
		return true
	})
	return out
}

// flagChange is one random change of \Seen or \Flagged.
func (s *session) flagChange(tx *engine.Tx, uid uint32) { randomFlagChange(s.rng, tx, uid) }

// randomFlagChange is one change of \Seen or \Flagged drawn from rng.
func randomFlagChange(rng *rand.Rand, tx *engine.Tx, uid uint32) {
	f := engine.Seen
	if rng.IntN(2) == 0 {
		f = engine.Flagged
	}
	if rng.IntN(2) == 0 {
		tx.SetFlags(uid, f, 0)
	} else {
		tx.SetFlags(uid, 0, f)
	}
}

func (s *session) flagsDurable() (Result, error) {
	uids := s.uids()
	mt := newMeter(s.e, mainHost, true, s.prog.counter())
	for range s.cfg.flagOps {
		uid := uids[s.rng.IntN(len(uids))]
		err := mt.op(func() error {
			tx := s.mbox.Begin()
			s.flagChange(tx, uid)
			_, err := tx.Commit(s.ctx)
			return err
		})
		if err != nil {
			return Result{}, err
		}
	}
	return summarize(s.e, "flags-durable", []*meter{mt}, 1, 0, nil, 0), nil
}

func (s *session) flagsBatched() (Result, error) {
	uids := s.uids()
	mt := newMeter(s.e, mainHost, true, s.prog.counter())
	k := min(s.cfg.flagBatch, len(uids))
	for range s.cfg.flagBatches {
		start := s.rng.IntN(len(uids))
		err := mt.op(func() error {
			tx := s.mbox.Begin()
			for j := range k {
				s.flagChange(tx, uids[(start+j)%len(uids)])
			}
			_, err := tx.Commit(s.ctx)
			return err
		})
		if err != nil {
			return Result{}, err
		}
	}
	r := summarize(s.e, "flags-batched", []*meter{mt}, float64(k), 0, nil, 0)
	r.Notes = append(r.Notes, fmt.Sprintf("%d flag changes per commit", k))
	return r, nil
}

// wallEnv measures with the wall clock: for workloads that only use
// memory, where simulated time does not move.
type wallEnv struct {
	env
	t0 time.Time
}

func (w wallEnv) now() time.Duration { return time.Since(w.t0) }

func (s *session) lookup() (Result, error) {
	v := s.mbox.View()
	n := v.Len()
	if n == 0 {
		return Result{}, errors.New("the mailbox is empty")
	}
	uids := s.uids()
	we := wallEnv{env: s.e, t0: time.Now()}
	w := startWindow(s.e, mainHost)
	mt := newMeter(we, mainHost, false, s.prog.counter())
	missing := 0
	for range s.cfg.lookups {
		uid := uids[s.rng.IntN(len(uids))]
		mt.op(func() error {
			if _, _, ok := v.ByUID(uid); !ok {
				missing++
			}
			return nil
		})
	}
	rpcs, _, _ := w.stop(mainHost)
	if missing > 0 {
		return Result{}, fmt.Errorf("%d lookups of existing UIDs found nothing", missing)
	}
	r := summarize(we, "lookup", []*meter{mt}, 1, 0, rpcs, 0)
	r.Mode, r.Clock = s.e.mode(), "wall"
	r.Notes = append(r.Notes, fmt.Sprintf("View.ByUID in a mailbox of %d messages, from memory: wall clock", n))
	return r, nil
}

func (s *session) scan() (Result, error) {
	v := s.mbox.View()
	we := wallEnv{env: s.e, t0: time.Now()}
	w := startWindow(s.e, mainHost)
	mt := newMeter(we, mainHost, false, s.prog.counter())
	var seen int
	for range s.cfg.scans {
		mt.op(func() error {
			v.All(func(_ int, msg engine.Message) bool {
				if msg.Flags&engine.Seen != 0 {
					seen++
				}
				return true
			})
			return nil
		})
	}
	rpcs, _, _ := w.stop(mainHost)
	r := summarize(we, "scan", []*meter{mt}, float64(v.Len()), 0, rpcs, 0)
	r.Mode, r.Clock = s.e.mode(), "wall"
	r.Notes = append(r.Notes, fmt.Sprintf("View.All over %d messages reading their flags, from memory: wall clock", v.Len()))
	_ = seen
	return r, nil
}

// open_ is the open workload (open is taken by session.open).
func (s *session) open_() (Result, error) {
	// A mailbox in service is compacted (automatically at 50%): open
	// reads the snapshot plus the records after it.
	if _, err := s.mbox.Compact(s.ctx); err != nil {
		return Result{}, fmt.Errorf("compact before open: %w", err)
	}
	n := s.mbox.View().Len()
	mt := newMeter(s.e, mainHost, true, s.prog.counter())
	for i := range s.cfg.opens {
		host := fmt.Sprintf("open%d", i+1)
		var m *engine.Mailbox
		err := mt.opOn(host, func() error {
			var err error
			m, err = s.open(host, mboxDir, true)
			return err
		})
		if err != nil {
			return Result{}, err
		}
		got := m.View().Len()
		m.Close()
		if got != n {
			return Result{}, fmt.Errorf("a new host opened %d messages, want %d", got, n)
		}
	}
	r := summarize(s.e, "open", []*meter{mt}, float64(n), 0, nil, 0)
	note := fmt.Sprintf("Open of the compacted %d-message mailbox", n)
	if s.e.mode() == "sim" {
		note += " by a new host each time (cold caches)"
	} else {
		note += " by a new Mailbox (the kernel's page cache is warm)"
	}
	r.Notes = append(r.Notes, note)
	return r, nil
}

func (s *session) syncIdle() (Result, error) {
	if err := s.mbox.Sync(s.ctx); err != nil {
		return Result{}, err
	}
	mt := newMeter(s.e, mainHost, true, s.prog.counter())
	for range s.cfg.syncs {
		if err := mt.op(func() error { return s.mbox.Sync(s.ctx) }); err != nil {
			return Result{}, err
		}
	}
	return summarize(s.e, "sync-idle", []*meter{mt}, 1, 0, nil, 0), nil
}

func (s *session) syncRemote() (Result, error) {
	reader, err := s.open(remoteHost, mboxDir, true)
	if err != nil {
		return Result{}, err
	}
	defer reader.Close()
	uids := s.uids()
	mt := newMeter(s.e, remoteHost, true, s.prog.counter())
	for range s.cfg.syncs {
		tx := s.mbox.Begin()
		s.flagChange(tx, uids[s.rng.IntN(len(uids))])
		res, err := tx.Commit(s.ctx)
		if err != nil {
			return Result{}, err
		}
		if err := mt.op(func() error { return reader.Sync(s.ctx) }); err != nil {
			return Result{}, err
		}
		// HighestModSeq is the last applied record's sequence number
		// (Digest would say the same, at the cost of hashing the state).
		if seq := reader.Header().HighestModSeq; seq < res.Seq {
			return Result{}, fmt.Errorf("freshness: %s synced to %d after %s committed %d", remoteHost, seq, mainHost, res.Seq)
		}
	}
	r := summarize(s.e, "sync-remote", []*meter{mt}, 1, 0, nil, 0)
	r.Hosts = 2
	r.Notes = append(r.Notes, fmt.Sprintf("%s Syncs after each flag change committed by %s; only %s's calls are counted", remoteHost, mainHost, remoteHost))
	if s.e.mode() != "sim" {
		r.Notes = append(r.Notes, "both Mailboxes are in this process and share its kernel's caches: a Sync across machines is measured by a multi-host run (-host)")
	}
	return r, nil
}

func (s *session) expungeCompact() (Result, error) {
	uids := s.uids()
	k := int(float64(len(uids)) * s.cfg.expunge)
	s.rng.Shuffle(len(uids), func(i, j int) { uids[i], uids[j] = uids[j], uids[i] })
	gone := slices.Clone(uids[:k])
	slices.Sort(gone)
	mt := newMeter(s.e, mainHost, true, s.prog.counter())
	for i := 0; i < len(gone); i += s.cfg.batch {
		part := gone[i:min(i+s.cfg.batch, len(gone))]
		err := mt.op(func() error {
			tx := s.mbox.Begin()
			for _, uid := range part {
				tx.Expunge(uid)
			}
			_, err := tx.Commit(s.ctx)
			return err
		})
		if err != nil {
			return Result{}, err
		}
	}
	r := summarize(s.e, "expunge-compact", []*meter{mt}, float64(s.cfg.batch), 0, nil, 0)
	r.Notes = append(r.Notes, fmt.Sprintf("expunged %d of %d messages, %d per commit", k, len(uids), s.cfg.batch))

	// Compaction: Mailbox.Compact folds the log into a snapshot.
	ph := &Phase{Name: "compact"}
	io0 := s.e.fs(mainHost).stats()
	rpc0, rpcOK, _ := s.e.rpcs(mainHost)
	wall := time.Now()
	t0 := s.e.now()
	done, err := s.mbox.Compact(s.ctx)
	ph.Seconds = (s.e.now() - t0).Seconds()
	ph.WallSeconds = time.Since(wall).Seconds()
	if err != nil {
		return Result{}, fmt.Errorf("compact: %w", err)
	}
	io := s.e.fs(mainHost).stats().sub(io0)
	ph.Done, ph.BytesWritten, ph.Syncs = done, io.Bytes, io.Syncs
	if rpcOK {
		if rpc1, _, err := s.e.rpcs(mainHost); err == nil {
			ph.RPCs = rpc1.sub(rpc0)
		}
	}
	r.Compact = ph
	if !done {
		r.Notes = append(r.Notes, "compaction: skipped (another compactor holds index.lock)")
	} else {
		r.Notes = append(r.Notes, ph.describe(s.e.mode() == "sim", len(uids)-k))
	}
	return r, nil
}

// Phase is a step measured once, reported beside a workload's row: the
// compaction of expunge-compact.
type Phase struct {
	Name string `json:"name"`
	// Done is false when the step did not run (compaction skipped because
	// another host held the claim).
	Done         bool      `json:"done"`
	Seconds      float64   `json:"seconds"`
	WallSeconds  float64   `json:"wall_seconds"`
	RPCs         rpcCounts `json:"rpcs,omitempty"`
	BytesWritten uint64    `json:"bytes_written"`
	Syncs        uint64    `json:"syncs"`
}

func (p *Phase) describe(sim bool, messages int) string {
	clock := ""
	if sim {
		clock = " simulated"
	}
	s := fmt.Sprintf("compaction (Mailbox.Compact) to a snapshot of %d messages: %s%s, %s written, %d syncs",
		messages, fmtDuration(time.Duration(p.Seconds*float64(time.Second))), clock, fmtBytes(float64(p.BytesWritten)), p.Syncs)
	if p.RPCs != nil {
		s += fmt.Sprintf(", %d RPCs (%s)", p.RPCs.total(), p.RPCs)
	}
	return s
}
