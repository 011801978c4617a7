package atomicrec

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"pgregory.net/rapid"

	"github.com/nfsindex/nfsindex/internal/atomicrectest"
	"github.com/nfsindex/nfsindex/vfs"
)

// TestRapidModel runs random sequences of updates, unsynced writes, failed
// syncs, reads by a fresh and by a long-lived Record, and crashes that keep
// a random torn subset of the unsynced writes, against a model:
//
//   - a read without a crash returns the last written payload;
//   - after a crash the record holds the last committed payload or one of
//     the payloads written since (never a mixture, never older);
//   - the long-lived reader's generations never decrease.
func TestRapidModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		l := rapid.SampledFrom([]Layout{
			{Offset: 0, PayloadSize: 12},
			{Offset: 24, PayloadSize: 5},
			PageAligned(0, 40, 0),
			{Offset: 504, PayloadSize: 1200}, // copies span three sectors
		}).Draw(rt, "layout")
		seed := rapid.Uint64().Draw(rt, "seed")
		rng := rand.New(rand.NewPCG(seed, 0))
		m := atomicrectest.New()
		openF := func() vfs.File {
			f, err := m.OpenFile("f", vfs.ReadWrite|vfs.Create, 0o644)
			if err != nil {
				rt.Fatal(err)
			}
			return f
		}
		mustNew := func(f vfs.File) *Record {
			r, err := New(f, l, Options{})
			if err != nil {
				rt.Fatal(err)
			}
			return r
		}
		w := mustNew(openF())
		reader := mustNew(openF())
		var (
			current   []byte   // what a read returns now (nil: never written)
			committed []byte   // the last committed payload (nil: none)
			pending   [][]byte // payloads written since, not known durable
			zombies   [][]byte // payloads whose writes failed before the last crash
			lastSeen  uint64
			n         int
		)
		payload := func() []byte {
			n++
			p := []byte(fmt.Sprintf("p%d", n))
			return p[:min(len(p), l.PayloadSize)]
		}
		checkRead := func(r *Record, want [][]byte) Value {
			v, err := r.Read(ctx)
			if len(want) == 0 || want[0] == nil {
				if err == nil {
					rt.Fatalf("read of a never-written record returned %+v", v)
				}
				return v
			}
			if err != nil {
				rt.Fatalf("read: %v", err)
			}
			for _, p := range want {
				if bytes.Equal(v.Payload, p) {
					return v
				}
			}
			rt.Fatalf("read %q (gen %d), want one of %q", v.Payload, v.Gen, want)
			return v
		}
		rt.Repeat(map[string]func(*rapid.T){
			"update": func(rt *rapid.T) {
				p := payload()
				if _, err := w.Update(ctx, p); err != nil {
					rt.Fatal(err)
				}
				current, committed, pending = p, p, nil
			},
			"write-unsynced": func(rt *rapid.T) {
				p := payload()
				if _, err := w.Write(ctx, p); err != nil {
					rt.Fatal(err)
				}
				current = p
				pending = append(pending, p)
			},
			"update-sync-fails": func(rt *rapid.T) {
				p := payload()
				m.FailSyncs = 1
				if _, err := w.Update(ctx, p); err == nil {
					rt.Fatal("update with a failing sync returned nil")
				}
				current = p
				pending = append(pending, p)
			},
			"read-fresh": func(rt *rapid.T) {
				checkRead(mustNew(openF()), [][]byte{current})
			},
			"read-long-lived": func(rt *rapid.T) {
				v := checkRead(reader, [][]byte{current})
				if v.Gen < lastSeen {
					rt.Fatalf("long-lived reader went from gen %d to %d", lastSeen, v.Gen)
				}
				lastSeen = v.Gen
			},
			"crash": func(rt *rapid.T) {
				// The restarted writer recovers at once (Load makes the
				// copy it adopts durable), as a process does at start-up.
				recoverWriter := func(rt *rapid.T) {
					if _, err := w.Load(ctx, nil); err != nil {
						rt.Fatalf("recovery: %v", err)
					}
				}
				tear := rapid.SampledFrom([]int{1, 8, 512, 4096}).Draw(rt, "tear")
				m = m.Crash(rng, tear)
				w, reader, lastSeen = mustNew(openF()), mustNew(openF()), 0
				allowed := append([][]byte(nil), pending...)
				if committed != nil {
					allowed = append(allowed, committed)
				}
				if tear < 512 {
					// Below sector granularity a torn write of an earlier
					// attempt can be completed by a later one (see the
					// nonce in format.go): still never a mixture, but an
					// old failed write may come back. Real disks and NFS
					// servers tear at sector or page granularity.
					allowed = append(allowed, zombies...)
				}
				zombies = append(zombies, pending...)
				if committed == nil {
					// Never committed: blank, a torn first write
					// (ErrCorrupt, see the package doc), or one of the
					// pending writes complete.
					v, err := w.Read(ctx)
					if err != nil {
						current, committed, pending = nil, nil, nil
						m.SetBytes("f", nil) // a creator publishing by rename never sees this
						w, reader = mustNew(openF()), mustNew(openF())
						return
					}
					if !containsBytes(allowed, v.Payload) {
						rt.Fatalf("crash left %q, never written", v.Payload)
					}
					current, committed, pending = v.Payload, v.Payload, nil
					recoverWriter(rt)
					return
				}
				v := checkRead(w, allowed)
				current, committed, pending = v.Payload, v.Payload, nil
				recoverWriter(rt)
				if err := w.Check(ctx); err != nil {
					rt.Fatal(err)
				}
			},
		})
	})
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}
