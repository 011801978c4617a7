package proofs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
)

// TestEngineSingleKernelPowerLoss (I15): with Options.SingleKernel the
// publish WRITE is not synced, so a power loss may take publications of
// acknowledged commits with it. Two processes of one machine (two tasks
// of one nfssim host, which share its page cache) append, flag, sync and
// compact; the machine loses power at each fault point of the run: the
// host crashes losing its dirty pages and the server (the disk) loses
// what was not made stable. After the reboot a fresh Open, before any
// commit, must hold every commit acknowledged before the crash, and the
// history must check (one order, freshness between the two processes
// while they ran, UIDs ascending).
//
// Without Open's republish, the fresh Open misses acknowledged commits.
// nfssim makes every namespace operation durable at once, so this proof
// cannot catch a missing directory sync (a local file system's own
// duty); TestSingleKernelSyncsDirBeforePublish does.
func TestEngineSingleKernelPowerLoss(t *testing.T) {
	points := singleKernelRun(t, -1)
	for k := range points {
		singleKernelRun(t, k)
	}
	t.Logf("power loss at each of %d fault points", points)
}

func singleKernelRun(t *testing.T, k int) int {
	t.Helper()
	ctx := context.Background()
	cfg := nfssim.DefaultConfig(7) // one schedule up to the fault
	hit := false
	cfg.Fault = func(p nfssim.Point) nfssim.Fault {
		if p.Seq == k && p.Host == "box" {
			hit = true
			return nfssim.Fault{Kind: nfssim.CrashHost}
		}
		return nfssim.Fault{}
	}
	s := nfssim.New(cfg)
	defer s.Close()
	box := s.Host("box")
	replay := fmt.Sprintf("go test ./proofs -run TestEngineSingleKernelPowerLoss (power loss at point %d)", k)
	var events []engineEvent
	var failures []string
	open := func(name string, i uint64) *engine.Mailbox {
		m, err := engine.Open(ctx, engine.Options{FS: box.FS(), Dir: "mbox", Host: name, SingleKernel: true,
			Rand: rand.New(rand.NewPCG(7, i))})
		if err != nil {
			if !errors.Is(err, nfssim.ErrHostDown) {
				failures = append(failures, fmt.Sprintf("%s open: %v", name, err))
			}
			return nil
		}
		return m
	}
	down := func(name, what string, err error) bool {
		if err != nil && !errors.Is(err, nfssim.ErrHostDown) {
			failures = append(failures, fmt.Sprintf("%s %s: %v", name, what, err))
		}
		return err != nil
	}
	sync := func(m *engine.Mailbox, name string) bool {
		start := len(events)
		if down(name, "sync", m.Sync(ctx)) {
			return false
		}
		applied, dig := m.Digest()
		events = append(events, engineEvent{host: name, kind: "sync", seq: applied, digest: dig, start: start})
		return true
	}
	flag := func(m *engine.Mailbox, name string) bool {
		start := len(events)
		v := m.View()
		if v.Len() == 0 {
			return true
		}
		msg, _ := v.BySeq(1)
		tx := m.Begin()
		tx.SetFlags(msg.UID, engine.Seen, 0)
		res, err := tx.Commit(ctx)
		if down(name, "flag", err) {
			return false
		}
		_, dig := m.Digest()
		events = append(events, engineEvent{host: name, kind: "commit", key: tx.Key(), seq: res.Seq, digest: dig, start: start})
		return true
	}
	s.Go(box, "p1", func() {
		m := open("p1", 1)
		if m == nil {
			return
		}
		defer m.Close()
		if down("p1", "append", appendMessage(ctx, m, "p1", 0, &events)) || !flag(m, "p1") {
			return
		}
		if _, err := m.Compact(ctx); down("p1", "compact", err) {
			return
		}
		if down("p1", "append", appendMessage(ctx, m, "p1", 1, &events)) {
			return
		}
		sync(m, "p1")
	})
	s.Go(box, "p2", func() {
		m := open("p2", 2)
		if m == nil {
			return
		}
		defer m.Close()
		if down("p2", "append", appendMessage(ctx, m, "p2", 0, &events)) || !sync(m, "p2") || !flag(m, "p2") {
			return
		}
		sync(m, "p2")
	})
	if err := s.Run(0); err != nil {
		t.Fatalf("%s: run: %v", replay, err)
	}
	points := s.Points() // the judge's own points are not enumerated
	for _, msg := range failures {
		t.Fatalf("%s: %s", replay, msg)
	}
	if k >= 0 && !hit {
		t.Fatalf("%s: the fault point was never reached", replay)
	}
	// The power loss: the disk keeps only what was made stable. (With no
	// fault, the machine is switched off cleanly at the end.)
	if !hit {
		box.Crash(nfssim.Fault{Kind: nfssim.CrashHost})
	}
	s.CrashServer(0)
	box.Restart()
	// After the reboot: a fresh Open, before any commit, holds every
	// acknowledged commit.
	j, err := engine.Open(ctx, engine.Options{FS: box.FS(), Dir: "mbox", Host: "judge", SingleKernel: true,
		Rand: rand.New(rand.NewPCG(9, 9))})
	if err != nil {
		t.Fatalf("%s: open after the power loss: %v", replay, err)
	}
	applied, _ := j.Digest()
	j.Close()
	for _, ev := range events {
		if ev.kind == "commit" && ev.seq > applied {
			t.Fatalf("%s: I15: commit %v acknowledged at seq %d, but a fresh Open after the power loss applied only up to %d", replay, ev.key, ev.seq, applied)
		}
	}
	in, err := engine.Inspect(ctx, box.FS(), "mbox")
	if err != nil {
		t.Fatalf("%s: inspect: %v", replay, err)
	}
	checkEngineHistory(prefixed{t, replay}, in, events)
	return points
}
