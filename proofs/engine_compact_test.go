package proofs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/rename"
)

// TestEngineBackToBackCompactions: three hosts commit and compact every
// few operations, so compactions follow each other within milliseconds
// and hosts fall behind by whole generations (the schedule in which the
// real-client e2e run found a fork: a host re-created a retired
// generation's tail and published a zombie in it). Every acknowledged
// commit must be in the final state exactly once, hosts agree where they
// saw the same sequence number, commits respect real time, UIDs ascend
// (I3, I4, I7). NFSv3 and NFSv4.2, 30 seeds each.
func TestEngineBackToBackCompactions(t *testing.T) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		for seed := uint64(1); seed <= 30; seed++ {
			compactionSchedule(t, v, seed)
		}
	}
}

func compactionSchedule(t *testing.T, v nfssim.Version, seed uint64) {
	t.Helper()
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(seed))
	defer s.Close()
	mnt := nfssim.DefaultMount()
	mnt.Version = v
	var events []engineEvent
	var failures []string
	for i := 1; i <= 3; i++ {
		h, err := s.AddHost(fmt.Sprintf("host%d", i), mnt)
		if err != nil {
			t.Fatal(err)
		}
		name := h.Name()
		s.Go(h, name, func() {
			m, err := engine.Open(ctx, engine.Options{FS: h.FS(), Dir: "mbox", Host: name, NamespaceDurable: true,
				Rand: rand.New(rand.NewPCG(seed, uint64(i)))})
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s open: %v", name, err))
				return
			}
			defer m.Close()
			r := rand.New(rand.NewPCG(seed, uint64(100+i)))
			for n := 1; n <= 60; n++ {
				start := len(events)
				if n%5 == 2 {
					if _, err := m.Compact(ctx); err != nil && !errors.Is(err, nfssim.ErrHostDown) {
						failures = append(failures, fmt.Sprintf("%s compact: %v", name, err))
					}
					continue
				}
				tx := m.Begin()
				view := m.View()
				if view.Len() == 0 || r.IntN(2) == 0 {
					tx.Append(engine.NewMessage{Fields: map[string][]byte{"file": []byte(fmt.Sprintf("%s.%d", name, n))}})
				} else {
					msg, _ := view.BySeq(1 + r.IntN(view.Len()))
					tx.SetFlags(msg.UID, engine.Seen, 0)
				}
				res, err := tx.Commit(ctx)
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s commit: %v", name, err))
					continue
				}
				_, dig := m.Digest()
				events = append(events, engineEvent{host: name, kind: "commit", key: tx.Key(), seq: res.Seq, uids: res.UIDs, digest: dig, start: start})
			}
		})
	}
	replay := fmt.Sprintf("go test ./proofs -run TestEngineBackToBackCompactions (vers=%v seed %d)", v, seed)
	if err := s.Run(0); err != nil {
		t.Fatalf("%s: run: %v", replay, err)
	}
	for _, f := range failures {
		t.Fatalf("%s: %s", replay, f)
	}
	in, err := engine.Inspect(ctx, s.Host("judge").FS(), "mbox")
	if err != nil {
		t.Fatalf("%s: inspect: %v", replay, err)
	}
	checkSeqsAcknowledgedOnce(prefixed{t, replay}, events)
	checkEngineHistory(prefixed{t, replay}, in, events)
}

// checkSeqsAcknowledgedOnce fails if two commits were acknowledged the
// same sequence number (I3: the fork a re-created name would cause).
func checkSeqsAcknowledgedOnce(t prefixed, events []engineEvent) {
	t.t.Helper()
	seqs := map[uint64]engine.Key{}
	for _, ev := range events {
		if ev.kind != "commit" {
			continue
		}
		if k, dup := seqs[ev.seq]; dup && k != ev.key {
			t.Fatalf("I3: seq %d acknowledged to %v and to %v", ev.seq, k, ev.key)
		}
		seqs[ev.seq] = ev.key
	}
}

// takeoverStaleAge is the engine's CompactStaleAge in the takeover proofs.
const takeoverStaleAge = 30 * time.Second

// TestEngineCompactionTakeover (I8, I11): a compactor host stops forever
// (paused, or crashed keeping none or all of its dirty pages) at each
// fault point of its compaction: inside the claim, after claiming, after
// sealing (the seal installed but not yet published, and published),
// while writing and syncing the snapshot, before and after the install
// rename, while retiring. Meanwhile another host commits, waits
// CompactStaleAge of simulated time (the server's clock moves with it)
// and compacts: it must succeed, taking the stopped claim over. A paused
// compactor is then resumed and finishes its compaction, which must not
// install anything (its claim was taken over) nor break anything. After
// that: every acknowledged commit is in the order exactly once, the order
// has no hole, hosts agree, Syncs saw every commit that returned before
// they started, UIDs ascend (checkEngineHistory); no version file of the
// stopped compactor survives (it would have been installed after the
// takeover); the lock is free and no claim litter is left. NFSv3 and
// NFSv4.2.
//
// With midCommit, the other host also commits shortly after the stop, so
// that a commit, not the taker's seal, meets a seal the stopped compactor
// installed but never published (and must publish it, I5); without it,
// the taker's own seal meets it, and the taker finishes the stopped
// compactor's generation.
func TestEngineCompactionTakeover(t *testing.T) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		for _, mid := range []bool{false, true} {
			points := takeoverRun(t, v, mid, -1, nfssim.Fault{})
			states := 0
			for k := range points {
				for _, f := range []nfssim.Fault{
					{Kind: nfssim.PauseHost},
					{Kind: nfssim.CrashHost},
					{Kind: nfssim.CrashHost, Keep: ^uint64(0)},
				} {
					takeoverRun(t, v, mid, k, f)
					states++
				}
			}
			t.Logf("%v, midCommit %v: %d fault points in the compaction, %d states", v, mid, points, states)
		}
	}
}

// takeoverRun runs the takeover scenario with fault f at the k-th fault
// point of mx1's compaction (k < 0: none) and checks it (midCommit: see
// TestEngineCompactionTakeover). It returns the
// number of fault points of that compaction.
func takeoverRun(t *testing.T, v nfssim.Version, midCommit bool, k int, f nfssim.Fault) int {
	t.Helper()
	ctx := context.Background()
	seed := uint64(v) + 100 // one schedule per version, up to the fault
	cfg := nfssim.DefaultConfig(seed)
	compacting, idx, hit := false, 0, false
	cfg.Fault = func(p nfssim.Point) nfssim.Fault {
		if p.Host != "mx1" || !compacting {
			return nfssim.Fault{}
		}
		idx++
		if idx-1 == k {
			hit = true
			return f
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
	replay := fmt.Sprintf("go test ./proofs -run TestEngineCompactionTakeover (vers=%v seed %d, midCommit %v, point %d, fault %+v)", v, seed, midCommit, k, f)
	var events []engineEvent
	var failures []string
	finished := map[string]bool{}
	took, takenGen := false, uint64(0)
	open := func(name string, i uint64) *engine.Mailbox {
		m, err := engine.Open(ctx, engine.Options{FS: hosts[name].FS(), Dir: "mbox", Host: name, NamespaceDurable: true,
			CompactStaleAge: takeoverStaleAge, Rand: rand.New(rand.NewPCG(seed, i))})
		if err != nil {
			if !errors.Is(err, nfssim.ErrHostDown) {
				failures = append(failures, fmt.Sprintf("%s open: %v", name, err))
			}
			return nil
		}
		return m
	}
	appendOne := func(m *engine.Mailbox, name string, n int) bool {
		if err := appendMessage(ctx, m, name, n, &events); err != nil {
			if !errors.Is(err, nfssim.ErrHostDown) {
				failures = append(failures, fmt.Sprintf("%s commit: %v", name, err))
			}
			return false
		}
		return true
	}
	sync := func(m *engine.Mailbox, name string) bool {
		start := len(events)
		if err := m.Sync(ctx); err != nil {
			failures = append(failures, fmt.Sprintf("%s sync: %v", name, err))
			return false
		}
		applied, dig := m.Digest()
		events = append(events, engineEvent{host: name, kind: "sync", seq: applied, digest: dig, start: start})
		return true
	}
	s.Go(hosts["mx1"], "mx1", func() {
		m := open("mx1", 1)
		if m == nil {
			return
		}
		defer m.Close()
		for n := range 3 {
			if !appendOne(m, "mx1", n) {
				return
			}
		}
		compacting = true
		_, err := m.Compact(ctx)
		compacting = false
		if err != nil {
			if !errors.Is(err, nfssim.ErrHostDown) {
				failures = append(failures, fmt.Sprintf("mx1 compact (resumed after the takeover): %v", err))
			}
			return
		}
		if appendOne(m, "mx1", 3) && sync(m, "mx1") {
			finished["mx1"] = true
		}
	})
	s.Go(hosts["mx2"], "mx2", func() {
		m := open("mx2", 2)
		if m == nil {
			return
		}
		defer m.Close()
		for n := range 2 {
			if !appendOne(m, "mx2", n) {
				return
			}
		}
		// A commit after mx1 stopped: it meets mx1's seal if mx1 stopped
		// between installing and publishing it, and must publish it, or
		// mx3's next Sync would not see this commit (I5).
		hosts["mx2"].Sleep(100 * time.Millisecond)
		if midCommit && !appendOne(m, "mx2", 2) {
			return
		}
		// Stopped compactors are stale once the server's clock has moved
		// CompactStaleAge past their last write: wait that long.
		hosts["mx2"].Sleep(takeoverStaleAge + 5*time.Second)
		done, err := m.Compact(ctx)
		if err != nil || !done {
			failures = append(failures, fmt.Sprintf("mx2 compact after CompactStaleAge = %v, %v; want a compaction (takeover)", done, err))
			return
		}
		took = true
		// The generation mx2 installed: a version of mx1's of this
		// generation or older, found later, was installed after the
		// takeover.
		if names, err := hosts["mx2"].FS().ReadDir("mbox"); err == nil {
			for _, n := range names {
				if g, err := strconv.ParseUint(strings.TrimPrefix(n, "index."), 10, 32); err == nil && strings.HasPrefix(n, "index.") && g > takenGen {
					takenGen = g
				}
			}
		}
		if !appendOne(m, "mx2", 3) {
			return
		}
		// The stopped compactor wakes up and goes on with its compaction.
		hosts["mx1"].Resume()
		for n := 4; n < 7; n++ {
			if !appendOne(m, "mx2", n) {
				return
			}
		}
		if sync(m, "mx2") {
			finished["mx2"] = true
		}
	})
	s.Go(hosts["mx3"], "mx3", func() {
		m := open("mx3", 3)
		if m == nil {
			return
		}
		defer m.Close()
		for _, d := range []time.Duration{0, 10 * time.Millisecond, time.Second, takeoverStaleAge, 10 * time.Second, time.Second, time.Second} {
			hosts["mx3"].Sleep(d)
			if !sync(m, "mx3") {
				return
			}
		}
		finished["mx3"] = true
	})
	if err := s.Run(0); err != nil {
		t.Fatalf("%s: run: %v", replay, err)
	}
	for _, msg := range failures {
		t.Fatalf("%s: %s", replay, msg)
	}
	if k >= 0 && !hit {
		t.Fatalf("%s: the fault point was never reached", replay)
	}
	if !took {
		t.Fatalf("%s: mx2 never compacted", replay)
	}
	for _, name := range []string{"mx1", "mx2", "mx3"} {
		if name == "mx1" && f.Kind == nfssim.CrashHost {
			continue
		}
		if !finished[name] {
			t.Fatalf("%s: %s did not finish its work", replay, name)
		}
	}
	hosts["mx1"].Restart()
	jfs := hosts["judge"].FS()
	// No version file of mx1 of a generation up to mx2's is installed at
	// the end: it would have been installed after mx2 took the claim over
	// (a compaction mx1 starts after mx2's, when it was paused before
	// claiming, is of a later generation and legitimate).
	names, err := jfs.ReadDir("mbox")
	if err != nil {
		t.Fatalf("%s: list: %v", replay, err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "index.claim.") || strings.HasPrefix(n, "index.probe.") || strings.Contains(n, ".pin.") {
			t.Fatalf("%s: rename litter %s left after the takeover compaction: %v", replay, n, names)
		}
		if _, err := strconv.ParseUint(strings.TrimPrefix(n, "index."), 10, 32); err != nil || !strings.HasPrefix(n, "index.") {
			continue // not a snapshot
		}
		ver, err := rename.OpenLatest(ctx, jfs, "mbox/"+n, rename.Options{Rand: rand.New(rand.NewPCG(1, 1))})
		if err != nil {
			t.Fatalf("%s: %s: %v", replay, n, err)
		}
		info := ver.Info()
		ver.Close()
		if info.Host == "mx1" && info.Generation <= takenGen {
			t.Fatalf("%s: %s was installed by the stale compactor mx1 after the takeover (%+v); directory %v", replay, n, info, names)
		}
	}
	if held, err := jfs.ReadDir("mbox/index.lock"); err == nil && len(held) > 0 {
		t.Fatalf("%s: the compaction lock is still held at the end: %v", replay, held)
	}
	j, err := engine.Open(ctx, engine.Options{FS: jfs, Dir: "mbox", Host: "judge", Rand: rand.New(rand.NewPCG(9, 9))})
	if err != nil {
		t.Fatalf("%s: judge: %v", replay, err)
	}
	if _, err := j.Committed(ctx, engine.Key{Owner: 1, N: 1}); err != nil {
		t.Fatalf("%s: judge flush: %v", replay, err)
	}
	j.Close()
	in, err := engine.Inspect(ctx, jfs, "mbox")
	if err != nil {
		t.Fatalf("%s: inspect: %v", replay, err)
	}
	if in.Base == 0 {
		t.Fatalf("%s: no snapshot at the end", replay)
	}
	checkEngineHistory(prefixed{t, replay}, in, events)
	return idx
}
