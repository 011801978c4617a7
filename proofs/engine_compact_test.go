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
	seqs := map[uint64]engine.Key{}
	for _, ev := range events {
		if k, dup := seqs[ev.seq]; dup && k != ev.key {
			t.Fatalf("%s: I3: seq %d acknowledged to %v and to %v", replay, ev.seq, k, ev.key)
		}
		seqs[ev.seq] = ev.key
	}
	checkEngineHistory(prefixed{t, replay}, in, events)
}
