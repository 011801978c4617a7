package rename

import (
	"errors"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
)

// TestN13_FutureGarbageTimesAreStale is TestN13_GarbageTimesAreStale for
// the other half of the rule: the verifier a v3 exclusive create leaves in
// the times can read as a date after the server's clock (knfsd stores 32
// bits of it), and a claim stamped StaleAge or more in the future is stale
// too, or a crashed legacy locker would block compaction until that date.
// The seeds are searched for one whose garbage time is in the future.
func TestN13_FutureGarbageTimesAreStale(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		s := newSim(t, func(c *nfssim.Config) {
			c.Seed = seed
			c.Fault = func(p nfssim.Point) nfssim.Fault {
				if p.Kind == nfssim.PointRPC && p.Host == "legacy" && p.RPC == nfssim.SETATTR {
					return nfssim.Fault{Kind: nfssim.CrashHost}
				}
				return nfssim.Fault{}
			}
		})
		legacy := addHost(t, s, "legacy", nil)
		b := addHost(t, s, "mx2", nil).FS()
		if _, err := legacy.FS().OpenFile("index.lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644); !errors.Is(err, nfssim.ErrHostDown) {
			t.Fatalf("seed %d: the legacy locker did not crash at its SETATTR: %v", seed, err)
		}
		st, err := b.Stat("index.lock")
		if err != nil {
			t.Fatal(err)
		}
		if st.ModTime.Sub(s.ServerTime()) < testStaleAge {
			continue // a garbage time in the past: TestN13_GarbageTimesAreStale's case
		}
		// Taken over at once, without waiting until that date.
		replace(t, b, "index", 1, "mx2", 1)
		mustLoad(t, b, "index", 1, "mx2")
		return
	}
	t.Fatal("no seed in 1..200 gave a garbage time in the future: the simulator no longer models N13's verifier times")
}

// TestBusyErrorReportsHolderAge: the age a BusyError reports for a fresh
// holder is its age by the server's clock, between 0 and StaleAge (the
// sign is documented: negative only for times in the future).
func TestBusyErrorReportsHolderAge(t *testing.T) {
	s := newSim(t, nil)
	a, b := addHost(t, s, "mx1", nil).FS(), addHost(t, s, "mx2", nil).FS()
	c, err := Begin(ctx, a, "index", 1, topts("mx1", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort(ctx)
	s.Advance(testStaleAge / 2)
	_, err = Begin(ctx, b, "index", 2, topts("mx2", 2))
	var be *BusyError
	if !errors.As(err, &be) || len(be.Holders) != 1 {
		t.Fatalf("Begin while mx1 holds the claim = %v, want a *BusyError naming one holder", err)
	}
	if h := be.Holders[0]; h.Stale || h.Age < testStaleAge/2 || h.Age >= testStaleAge || h.Host != "mx1" {
		t.Fatalf("holder reported as %+v: want mx1, fresh, aged [%v, %v)", h, testStaleAge/2, testStaleAge)
	}
}
