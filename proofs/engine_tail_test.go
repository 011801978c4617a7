package proofs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
)

// TestEngineRetiredTailNeverReturns (I10, I14: bounded space): retired
// tails are removed, and a removed tail's name must never be created
// again, or a host still in that generation would publish a record into
// the new file as if the generation were live. The one process that
// could create it is a compactor that claimed the lock for that
// generation, stopped, and was taken over: mx1 is paused at each fault
// point of its compaction (in the claim, before and after it creates the
// next tail, at its seal, ...). mx2 waits CompactStaleAge, takes the claim
// over and compacts three times with commits in between, so that the
// generation mx1 was opening is retired and its tail removed. mx3 synced
// into that generation and then stayed idle. mx2 resumes mx1, which
// finishes its compaction; then mx3 commits. Every acknowledged commit
// must be in the order once (checkEngineHistory, and no sequence number
// acknowledged twice); after a last compaction the directory holds only
// tail.1 (the tombstone) and the live generation's tail: orphans and
// retired tails are all gone. NFSv3 and NFSv4.2, every fault point.
//
// With tail names that do not carry their compactor's claim id
// (tail.<gen> only), mx1 re-creates the removed tail of generation 2 and
// mx3's commit is acknowledged at a sequence number that belongs to
// another commit.
func TestEngineRetiredTailNeverReturns(t *testing.T) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		points := retiredTailRun(t, v, -1)
		for k := range points {
			retiredTailRun(t, v, k)
		}
		t.Logf("%v: mx1 paused at each of %d fault points of its compaction", v, points)
	}
}

// retiredTailRun runs the scenario with mx1 paused at the k-th fault point
// of its compaction (k < 0: never) and returns how many there were.
func retiredTailRun(t *testing.T, v nfssim.Version, k int) int {
	t.Helper()
	ctx := context.Background()
	seed := uint64(v) + 200
	cfg := nfssim.DefaultConfig(seed)
	compacting, idx := false, 0
	cfg.Fault = func(p nfssim.Point) nfssim.Fault {
		if p.Host != "mx1" || !compacting {
			return nfssim.Fault{}
		}
		idx++
		if idx-1 == k {
			return nfssim.Fault{Kind: nfssim.PauseHost}
		}
		return nfssim.Fault{}
	}
	s := nfssim.New(cfg)
	defer s.Close()
	mnt := nfssim.DefaultMount()
	mnt.Version = v
	hosts := map[string]*nfssim.Host{}
	for _, name := range []string{"mx1", "mx2", "mx3", "judge"} {
		h, err := s.AddHost(name, mnt)
		if err != nil {
			t.Fatal(err)
		}
		hosts[name] = h
	}
	replay := fmt.Sprintf("go test ./proofs -run TestEngineRetiredTailNeverReturns (vers=%v seed %d, pause at point %d)", v, seed, k)
	var events []engineEvent
	var failures []string
	fail := func(format string, a ...any) { failures = append(failures, fmt.Sprintf(format, a...)) }
	open := func(name string, i uint64) *engine.Mailbox {
		m, err := engine.Open(ctx, engine.Options{FS: hosts[name].FS(), Dir: "mbox", Host: name, NamespaceDurable: true,
			CompactStaleAge: takeoverStaleAge, Rand: rand.New(rand.NewPCG(seed, i))})
		if err != nil {
			fail("%s open: %v", name, err)
			return nil
		}
		return m
	}
	commit := func(m *engine.Mailbox, name string, n int) bool {
		if err := appendMessage(ctx, m, name, n, &events); err != nil {
			fail("%s commit: %v", name, err)
			return false
		}
		return true
	}
	mx1Done, mx3Synced, mx3Done := false, false, false
	s.Go(hosts["mx1"], "mx1", func() {
		m := open("mx1", 1)
		if m == nil {
			return
		}
		defer m.Close()
		for n := range 3 {
			if !commit(m, "mx1", n) {
				return
			}
		}
		compacting = true
		_, err := m.Compact(ctx)
		compacting = false
		if err != nil {
			fail("mx1 compact (resumed after the takeover): %v", err)
		}
		mx1Done = true
	})
	s.Go(hosts["mx2"], "mx2", func() {
		m := open("mx2", 2)
		if m == nil {
			return
		}
		defer m.Close()
		if !commit(m, "mx2", 0) {
			return
		}
		hosts["mx2"].Sleep(takeoverStaleAge + 5*time.Second)
		for round := 1; round <= 3; round++ {
			if done, err := m.Compact(ctx); err != nil || !done {
				fail("mx2 compaction %d = %v, %v; want a compaction (the first takes mx1's claim over)", round, done, err)
				return
			}
			if round == 1 {
				// mx3 moves into the generation mx2 just opened, then idles.
				for !mx3Synced {
					hosts["mx2"].Sleep(time.Second)
				}
			}
			if !commit(m, "mx2", round) {
				return
			}
		}
		// Generation 2 is retired and its tail removed: the stopped
		// compactor wakes up and goes on.
		hosts["mx1"].Resume()
		for !mx1Done || !mx3Done {
			hosts["mx2"].Sleep(time.Second)
		}
		if !commit(m, "mx2", 9) {
			return
		}
		// A last compaction collects every tail but the live one.
		if done, err := m.Compact(ctx); err != nil || !done {
			fail("mx2 last compaction = %v, %v", done, err)
		}
	})
	s.Go(hosts["mx3"], "mx3", func() {
		m := open("mx3", 3)
		if m == nil {
			return
		}
		defer m.Close()
		hosts["mx3"].Sleep(takeoverStaleAge + 10*time.Second)
		if err := m.Sync(ctx); err != nil {
			fail("mx3 sync: %v", err)
			return
		}
		mx3Synced = true
		for !mx1Done && k >= 0 {
			hosts["mx3"].Sleep(time.Second)
		}
		commit(m, "mx3", 0)
		mx3Done = true
	})
	if err := s.Run(0); err != nil {
		t.Fatalf("%s: run: %v", replay, err)
	}
	for _, msg := range failures {
		t.Fatalf("%s: %s", replay, msg)
	}
	if !mx1Done || !mx3Done {
		t.Fatalf("%s: mx1 done %v, mx3 done %v", replay, mx1Done, mx3Done)
	}
	checkSeqsAcknowledgedOnce(prefixed{t, replay}, events)
	jfs := hosts["judge"].FS()
	in, err := engine.Inspect(ctx, jfs, "mbox")
	if err != nil {
		t.Fatalf("%s: inspect: %v", replay, err)
	}
	checkEngineHistory(prefixed{t, replay}, in, events)
	names, err := jfs.ReadDir("mbox")
	if err != nil {
		t.Fatalf("%s: list: %v", replay, err)
	}
	var tails []string
	for _, n := range names {
		if strings.HasPrefix(n, "tail.") {
			tails = append(tails, n)
		}
	}
	if len(tails) != 2 || tails[0] != "tail.1" {
		t.Fatalf("%s: I14: tails after the last compaction %v; want tail.1 and the live one", replay, tails)
	}
	return idx
}
