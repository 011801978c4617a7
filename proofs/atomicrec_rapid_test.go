package proofs

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/internal/explore"
	"github.com/nfsindex/nfsindex/nfssim"
)

// TestRapidAtomicrec is the property test of atomicrec (A1, A3, A9): one
// writer host makes 1-6 Updates of random sizes while 1-2 reader hosts
// (NFSv3 or v4.2, each at its own speed) read the record again and again;
// up to three faults land at random points (crashes of the writer keeping
// a random subset of its dirty pages, lost replies with the DRC on or off,
// server crashes). After each crash the writer restarts, Loads the record
// and goes on. The history is checked against the sequential model of a
// register (regHistory.check); freshness only on v4.2 readers, since a v3
// host may keep a stale page through an mtime that did not tick (N3).
// rapid prints the -rapid.seed that replays a failure.
func TestRapidAtomicrec(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		lay := rapid.SampledFrom(arLayouts).Draw(rt, "layout")
		n := rapid.IntRange(1, 6).Draw(rt, "updates")
		// Full-capacity payloads leave no zero padding: only the checksum
		// tells a copy torn between two writes from a whole one.
		c := lay.l.PayloadSize
		sizes := rapid.SliceOfN(rapid.SampledFrom([]int{c, c, c - 1, c / 2, 0}), n, n).Draw(rt, "sizes")
		faults := rapidDrawFaults(rt, 200)
		prof := rapidDrawProfile(rt)
		readers := rapidDrawReaders(rt)
		s := explore.Scenario{
			Name:    "rapid",
			Ops:     n,
			Writers: []string{"w"},
			Run: func(r *explore.Run) (func() error, error) {
				return rapidAtomicrecRun(r, lay, n, sizes, faults, readers)
			},
		}
		if err := explore.RunOnce(s, prof, explore.Options{Seed: seed}, explore.Plan{}); err != nil {
			rt.Fatal(err)
		}
	})
}

func rapidAtomicrecRun(r *explore.Run, lay arLayout, n int, sizes []int, faults []rapidFault, readerMounts []nfssim.Mount) (func() error, error) {
	w := r.AddHost("w")
	readers, err := rapidAddReaders(r, readerMounts)
	if err != nil {
		return nil, err
	}
	h := &regHistory{r: r, l: lay.l, sizes: sizes}
	rec, err := h.setup(w)
	if err != nil {
		return nil, err
	}
	r.Script(rapidScriptFaults("w", faults, func(f rapidFault) {
		switch f.Kind {
		case explore.CrashHost:
			h.scripted = true
			h.wCrashes = append(h.wCrashes, r.Tick())
		case explore.CrashServer:
			h.srvCrashes = append(h.srvCrashes, r.Tick())
		}
	}))
	r.Arm()
	next := 1
	for session := 1; session <= len(faults)+1 && next <= n; session++ {
		open := func() (*atomicrec.Record, error) { return rec, nil }
		if w.Down() {
			w.Restart()
			rng := r.Rand()
			open = func() (*atomicrec.Record, error) { return h.recoverWriter(w.FS(), rng) }
		}
		done := false
		r.Go(w, "writer", func() {
			defer func() { done = true }()
			nrec, err := open()
			if err != nil {
				r.Failf("writer: %w", err)
				return
			}
			rec = nrec
			for next <= n {
				i := next
				next++
				if h.update(rec, session, i) != nil {
					return
				}
			}
		})
		for _, rh := range readers {
			r.Go(rh, "reader", func() { h.reader(rh, func() bool { return done }) })
		}
		if err := r.Sim.Run(r.MaxSteps()); err != nil {
			return nil, err
		}
	}
	rng := r.Rand()
	return func() error { return h.check(w, rng) }, nil
}
