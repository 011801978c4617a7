package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
)

// openWith opens the mailbox "mbox" on a host of s added with NFS version
// v, with the given FieldCacheBytes.
func openWith(t testing.TB, s *nfssim.Sim, host string, v nfssim.Version, seed uint64, cacheBytes int64) *Mailbox {
	t.Helper()
	mount := nfssim.DefaultMount()
	mount.Version = v
	h, err := s.AddHost(host, mount)
	if err != nil {
		t.Fatal(err)
	}
	return openFS(t, h.FS(), host, seed, cacheBytes)
}

func openFS(t testing.TB, fsys vfs.FS, host string, seed uint64, cacheBytes int64) *Mailbox {
	t.Helper()
	m, err := Open(context.Background(), Options{FS: fsys, Dir: "mbox", Host: host,
		Rand: rand.New(rand.NewPCG(seed, 7)), NamespaceDurable: true, FieldCacheBytes: cacheBytes,
		FieldCompactRatio: -1})
	if err != nil {
		t.Fatalf("open on %s: %v", host, err)
	}
	return m
}

// TestFieldCacheMatchesUncached (RC4): two writers (mx1, mx2) commit
// messages with cached fields of random sizes, replace and expunge some,
// and mx1 rewrites its field logs (CompactFields) while other hosts compact
// the index, so that its old logs are removed. After every round a host
// reading through its field cache (mx2: a small cache that evicts, for
// mx1's logs) and a host without one (mx3) each Sync and read every field
// value, and both read exactly what was committed. References taken before
// a rewrite (a View not synced) read the right value or ErrFieldMoved on
// both, and a host opened after the old log's removal, with a cache, gets
// ErrFieldMoved. NFSv3 and v4.2, several seeds.
func TestFieldCacheMatchesUncached(t *testing.T) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%v/seed=%d", v, seed), func(t *testing.T) { fieldCacheDiff(t, v, seed) })
		}
	}
}

func fieldCacheDiff(t *testing.T, v nfssim.Version, seed uint64) {
	defer func(b int) { relocateBudget = b }(relocateBudget)
	relocateBudget = 200
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(seed))
	t.Cleanup(s.Close)
	mx1 := openWith(t, s, "mx1", v, seed*10+1, -1)
	mx2 := openWith(t, s, "mx2", v, seed*10+2, 256<<10) // 4 blocks: evictions
	mx3 := openWith(t, s, "mx3", v, seed*10+3, -1)
	defer func() { mx1.Close(); mx2.Close(); mx3.Close() }()
	rnd := rand.New(rand.NewPCG(seed, 42))
	want := map[uint32]map[string]string{}
	value := func(who string) []byte {
		b := make([]byte, 8+rnd.IntN(3000))
		for i := range b {
			b[i] = 'a' + byte(rnd.IntN(26))
		}
		copy(b, who)
		return b
	}
	var stale []*View // views not synced since, one per rewrite
	movedChecked := 0
	for round := range 24 {
		for _, w := range []*Mailbox{mx1, mx1, mx2} {
			tx := w.Begin()
			n := 1 + rnd.IntN(20)
			var added []map[string]string
			for range n {
				f := map[string][]byte{"file": value(w.opt.Host), "env": value(w.opt.Host)}
				tx.Append(NewMessage{Fields: f})
				added = append(added, map[string]string{"file": string(f["file"]), "env": string(f["env"])})
			}
			var replaced []uint32
			for uid := range want {
				if rnd.IntN(25) == 0 {
					if rnd.IntN(2) == 0 {
						tx.Expunge(uid)
						delete(want, uid)
					} else {
						val := value(w.opt.Host)
						tx.SetField(uid, "env", val)
						want[uid]["env"] = string(val)
						replaced = append(replaced, uid)
					}
				}
			}
			r := commit(t, tx)
			for i, uid := range r.UIDs {
				want[uid] = added[i]
			}
		}
		if round%6 == 5 {
			stale = append(stale, mx2.View(), mx3.View())
			if done, err := mx1.CompactFields(ctx); err != nil || !done {
				t.Fatalf("round %d: CompactFields = %v, %v", round, done, err)
			}
		}
		if round%6 == 2 && round > 6 {
			if _, err := mx3.Compact(ctx); err != nil { // a snapshot: mx1's next commit removes old logs
				t.Fatalf("round %d: Compact: %v", round, err)
			}
		}
		checkValues(t, "mx2 (cached)", mx2, want)
		checkValues(t, "mx3 (uncached)", mx3, want)
		checkValues(t, "mx1", mx1, want)
		for i, sv := range stale {
			m := mx2
			if i%2 == 1 {
				m = mx3
			}
			sv.All(func(_ int, msg Message) bool {
				ref, ok := msg.Field("file")
				if !ok || ref.Host == "mx2" {
					return true
				}
				got, err := m.FieldValue(ctx, ref)
				switch {
				case errors.Is(err, ErrFieldMoved):
					movedChecked++
				case err != nil:
					t.Fatalf("round %d: stale %+v: %v", round, ref, err)
				case want[msg.UID] != nil && string(got) != want[msg.UID]["file"]:
					t.Fatalf("round %d: stale %+v = %.20q, want %.20q", round, ref, got, want[msg.UID]["file"])
				}
				return true
			})
		}
	}
	// A host opened now, with a cache, has never opened the removed logs.
	mx4 := openWith(t, s, "mx4", v, seed*10+4, 0)
	defer mx4.Close()
	moved := 0
	stale[0].All(func(_ int, msg Message) bool {
		ref, ok := msg.Field("file")
		if !ok || ref.Host != "mx1" {
			return true
		}
		if _, err := mx4.FieldValue(ctx, ref); !errors.Is(err, ErrFieldMoved) {
			t.Fatalf("a reference into the removed log %s: %v, want ErrFieldMoved", ref.Host, err)
		}
		moved++
		return true
	})
	if moved == 0 {
		t.Fatal("no reference into a removed log was checked")
	}
	checkValues(t, "mx4 (cached)", mx4, want)
	if st := mx2.FieldCacheStats(); st.Hits == 0 || st.Evictions == 0 {
		t.Fatalf("mx2's cache was not exercised: %+v", st)
	}
	if st := mx3.FieldCacheStats(); st.Hits+st.Misses != 0 {
		t.Fatalf("mx3 has no cache, yet %+v", st)
	}
	t.Logf("stale references that gave ErrFieldMoved: %d; mx2 cache %+v", movedChecked, mx2.FieldCacheStats())
}
