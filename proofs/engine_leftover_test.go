package proofs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
)

// TestEngineLeftoverTailIsFenced (I3, I4): a compactor (mx1) crashes after
// installing index.2 and before marking tail.1 dead, so tail.1 is left
// live. A committer (mx3) is stopped at its SYMLINK of t.1.4, the name
// mx1's seal took. Another compactor (mx2) folds generation 2 into 3; its
// retire removes generation 1's leftovers, the seal t.1.4 among them.
// Then mx3 wakes: its SYMLINK now succeeds, and its publish must meet a
// dead tail.1 (the later compactor marks leftover tails dead before it
// removes their records), so it moves on to generation 3. Were tail.1
// still live, mx3 would acknowledge a commit in a retired generation
// that no snapshot will ever fold: lost. NFSv3 and NFSv4.2.
func TestEngineLeftoverTailIsFenced(t *testing.T) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		leftoverTailRun(t, v)
	}
}

func leftoverTailRun(t *testing.T, v nfssim.Version) {
	ctx := context.Background()
	seed := uint64(v) + 200
	replay := fmt.Sprintf("go test ./proofs -run TestEngineLeftoverTailIsFenced (vers=%v seed %d)", v, seed)
	cfg := nfssim.DefaultConfig(seed)
	armSymlink, mx1Compacting, renames, crashed, paused := false, false, 0, false, false
	cfg.Fault = func(p nfssim.Point) nfssim.Fault {
		switch {
		case p.Host == "mx3" && armSymlink && p.Kind == nfssim.PointRPC && p.RPC == nfssim.SYMLINK:
			armSymlink, paused = false, true
			return nfssim.Fault{Kind: nfssim.PauseHost}
		case p.Host == "mx1" && mx1Compacting && p.Kind == nfssim.PointRPC && p.RPC == nfssim.RENAME:
			renames++ // the claim onto the lock, then the install of index.2
		case p.Host == "mx1" && mx1Compacting && renames >= 2 && !crashed && p.Kind == nfssim.PointCall &&
			p.Call == "OpenFile" && p.Path == "mbox/tail.1":
			crashed = true // retire's mark of tail.1
			return nfssim.Fault{Kind: nfssim.CrashHost}
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
	var events []engineEvent
	var failures []string
	open := func(name string, i uint64) *engine.Mailbox {
		m, err := engine.Open(ctx, engine.Options{FS: hosts[name].FS(), Dir: "mbox", Host: name, NamespaceDurable: true,
			Rand: rand.New(rand.NewPCG(seed, i))})
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s open: %v", name, err))
			return nil
		}
		return m
	}
	commit := func(m *engine.Mailbox, name string, n int) error { return appendMessage(ctx, m, name, n, &events) }
	mx3Done := false
	s.Go(hosts["mx1"], "mx1", func() {
		m := open("mx1", 1)
		if m == nil {
			return
		}
		defer m.Close()
		for n := range 3 {
			if err := commit(m, "mx1", n); err != nil {
				failures = append(failures, fmt.Sprintf("mx1 commit: %v", err))
				return
			}
		}
		hosts["mx1"].Sleep(2 * time.Second) // mx3 is stopped at its SYMLINK by now
		mx1Compacting = true
		if _, err := m.Compact(ctx); !errors.Is(err, nfssim.ErrHostDown) {
			failures = append(failures, fmt.Sprintf("mx1 compact = %v; want its host to crash while retiring", err))
		}
	})
	s.Go(hosts["mx3"], "mx3", func() {
		hosts["mx3"].Sleep(time.Second)
		m := open("mx3", 3)
		if m == nil {
			return
		}
		defer m.Close()
		armSymlink = true
		if err := commit(m, "mx3", 0); err != nil {
			failures = append(failures, fmt.Sprintf("mx3 commit after waking: %v", err))
			return
		}
		mx3Done = true
	})
	s.Go(hosts["mx2"], "mx2", func() {
		hosts["mx2"].Sleep(4 * time.Second)
		m := open("mx2", 2)
		if m == nil {
			return
		}
		defer m.Close()
		if done, err := m.Compact(ctx); err != nil || !done {
			failures = append(failures, fmt.Sprintf("mx2 compact = %v, %v; want a compaction", done, err))
			return
		}
		hosts["mx3"].Resume()
		hosts["mx2"].Sleep(time.Second)
		if err := commit(m, "mx2", 0); err != nil {
			failures = append(failures, fmt.Sprintf("mx2 commit: %v", err))
		}
	})
	if err := s.Run(0); err != nil {
		t.Fatalf("%s: run: %v", replay, err)
	}
	for _, msg := range failures {
		t.Fatalf("%s: %s", replay, msg)
	}
	if !paused || !crashed || !mx3Done {
		t.Fatalf("%s: the schedule did not happen: mx3 paused %v, mx1 crashed retiring %v, mx3 committed %v", replay, paused, crashed, mx3Done)
	}
	in, err := engine.Inspect(ctx, hosts["judge"].FS(), "mbox")
	if err != nil {
		t.Fatalf("%s: inspect: %v", replay, err)
	}
	checkEngineHistory(prefixed{t, replay}, in, events)
}

// appendMessage commits one delivery of message name.n on m and records
// the acknowledged commit in events for checkEngineHistory.
func appendMessage(ctx context.Context, m *engine.Mailbox, name string, n int, events *[]engineEvent) error {
	start := len(*events)
	tx := m.Begin()
	tx.Append(engine.NewMessage{Fields: map[string][]byte{"file": []byte(fmt.Sprintf("%s.%d", name, n))}})
	res, err := tx.Commit(ctx)
	if err != nil {
		return err
	}
	_, dig := m.Digest()
	*events = append(*events, engineEvent{host: name, kind: "commit", key: tx.Key(), seq: res.Seq, uids: res.UIDs, digest: dig, start: start})
	return nil
}
