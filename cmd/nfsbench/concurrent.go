package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/nfsindex/nfsindex/engine"
)

// maxCommitters bounds -committers.
const maxCommitters = 1024

// flagsConcurrent is the flags-concurrent workload: -flag-ops commits of
// one flag change each, by -committers committers at once on mx1's
// Mailbox, so that group commit shares their durability barriers.
//
// On a directory the committers are goroutines calling Tx.Commit, and
// groups form by themselves (whoever waits while a group is committed
// joins the next one). Under the simulator a task may never wait for
// another, so goroutines cannot meet on one Mailbox there: the workload
// hands -committers transactions at a time to Mailbox.CommitGroup, the
// group that as many waiting committers would form.
//
// The average group is told from outside, by the file system calls: one
// commit alone is measured first (untimed); a group costs what a lone
// commit costs in syncs (the directory sync and the publish write), so
// the run's syncs over a lone commit's count the groups.
func (s *session) flagsConcurrent() (Result, error) {
	uids := s.uids()
	if len(uids) == 0 {
		return Result{}, errors.New("the mailbox is empty")
	}
	fsys := s.e.fs(mainHost)
	io0 := fsys.stats()
	tx := s.mbox.Begin()
	s.flagChange(tx, uids[s.rng.IntN(len(uids))])
	if _, err := tx.Commit(s.ctx); err != nil {
		return Result{}, fmt.Errorf("the lone commit before the run: %w", err)
	}
	lone := fsys.stats().sub(io0)

	io1 := fsys.stats()
	var r Result
	var err error
	if s.e.mode() == "sim" {
		r, err = s.flagsGroups(uids)
	} else {
		r, err = s.flagsGoroutines(uids)
	}
	if err != nil {
		return Result{}, err
	}
	// The committers share one counting FS: the whole run's calls, not
	// the sum of each commit's window (which would count a group's calls
	// once per member).
	io := fsys.stats().sub(io1)
	if r.Ops > 0 {
		r.BytesPerOp = float64(io.Bytes) / float64(r.Ops)
		syncs := float64(io.Syncs) / float64(r.Ops)
		r.SyncsPerOp = &syncs
	}
	r.Hosts = 1
	switch {
	case r.Ops == 0:
	case lone.Syncs == 0 || lone.Create != 1 || io.Create != uint64(r.Ops) || io.Syncs%lone.Syncs != 0:
		// Something besides the commits' records and groups ran (a
		// compaction creates names and syncs): the syncs do not count
		// groups.
		r.Notes = append(r.Notes, fmt.Sprintf("average group not measured: %d syncs and %d names created for %d commits, "+
			"against %d syncs and %d name for one commit alone (did a compaction run?)", io.Syncs, io.Create, r.Ops, lone.Syncs, lone.Create))
	default:
		groups := io.Syncs / lone.Syncs
		r.AvgGroup = float64(r.Ops) / float64(groups)
		r.Notes = append(r.Notes, fmt.Sprintf("average group %s commits: %d syncs for %d commits, at %d per group (what one commit alone cost, measured before the run)",
			fmtNum(r.AvgGroup), io.Syncs, r.Ops, lone.Syncs))
	}
	if s.floors {
		r.Notes = append(r.Notes, "the raw floor beside it is one writer's pwrite+fdatasync per commit: commits that share syncs can beat it")
	}
	return r, nil
}

// flagsGroups commits -committers transactions at a time with
// Mailbox.CommitGroup: the simulator's form of flags-concurrent. Each
// commit's latency is its group's.
func (s *session) flagsGroups(uids []uint32) (Result, error) {
	g := s.cfg.committers
	mt := newMeter(s.e, mainHost, true, s.prog.counter())
	for done := 0; done < s.cfg.flagOps; {
		if err := s.ctx.Err(); err != nil {
			return Result{}, err
		}
		txs := make([]*engine.Tx, min(g, s.cfg.flagOps-done))
		err := mt.opN(len(txs), func() error {
			for j := range txs {
				txs[j] = s.mbox.Begin()
				s.flagChange(txs[j], uids[s.rng.IntN(len(uids))])
			}
			_, errs := s.mbox.CommitGroup(s.ctx, txs...)
			return errors.Join(errs...)
		})
		if err != nil {
			return Result{}, err
		}
		done += len(txs)
	}
	r := summarize(s.e, "flags-concurrent", []*meter{mt}, 1, 0, nil, 0)
	r.Notes = append(r.Notes, fmt.Sprintf("Mailbox.CommitGroup of %d transactions at a time (the simulator runs one task at a time "+
		"and a task may not wait for another, so committers cannot meet on one Mailbox there), each one flag change "+
		"with its own record and MODSEQ; a commit's latency is its group's", g))
	return r, nil
}

// flagsGoroutines runs -committers goroutines on mx1's Mailbox, each
// committing its share of -flag-ops single flag changes with Tx.Commit.
// ops/s is over the elapsed time of the whole run.
func (s *session) flagsGoroutines(uids []uint32) (Result, error) {
	g := s.cfg.committers
	meters := make([]*meter, g)
	errs := make([]error, g)
	for i := range meters {
		// RPCs, if any, are counted over the whole run: a mount's counter
		// sees every goroutine's calls.
		meters[i] = newMeter(s.e, mainHost, false, s.prog.counter())
	}
	w := startWindow(s.e, mainHost)
	var wg sync.WaitGroup
	for i := range g {
		k := s.cfg.flagOps / g
		if i < s.cfg.flagOps%g {
			k++
		}
		rng := rand.New(rand.NewPCG(s.cfg.seed, 0x636f6e63+uint64(i)))
		wg.Go(func() {
			for range k {
				if err := s.ctx.Err(); err != nil {
					errs[i] = err
					return
				}
				err := meters[i].op(func() error {
					tx := s.mbox.Begin()
					randomFlagChange(rng, tx, uids[rng.IntN(len(uids))])
					_, err := tx.Commit(s.ctx)
					return err
				})
				if err != nil {
					errs[i] = fmt.Errorf("committer %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	rpcs, elapsed, rerr := w.stop(mainHost)
	if rerr != nil {
		meters[0].err = rerr
	}
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	r := summarize(s.e, "flags-concurrent", meters, 1, elapsed, rpcs, 0)
	r.Notes = append(r.Notes, fmt.Sprintf("%s share one Mailbox and make the %d commits between them, each of one flag change "+
		"with Tx.Commit; ops/s over the elapsed time", plural(g, "goroutine"), s.cfg.flagOps))
	return r, nil
}
