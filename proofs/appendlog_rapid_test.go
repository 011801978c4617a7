package proofs

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/nfsindex/nfsindex/appendlog"
	"github.com/nfsindex/nfsindex/internal/explore"
	"github.com/nfsindex/nfsindex/nfssim"
)

// TestRapidAppendlog is the property test of appendlog (L1-L3, L5-L7):
// one writer host commits a random sequence of groups (single records,
// groups of three, chained continuations) while 1-2 reader hosts (NFSv3 or
// v4.2, each at its own speed) read the log with a long-lived Reader and
// with fresh ones; up to three faults land at random points (crashes of
// the writer keeping a random subset of its dirty pages, lost replies
// with the DRC on or off, server crashes). After each crash of the writer
// it restarts, recovers the log and goes on. The history is checked
// against the sequential model of the log (alHistory.check). rapid prints
// the -rapid.seed that replays a failure.
func TestRapidAppendlog(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		kinds := rapid.SliceOfN(rapid.SampledFrom([]string{"single", "group", "chain"}), 1, 5).Draw(rt, "ops")
		faults := rapidDrawFaults(rt, 250)
		prof := rapidDrawProfile(rt)
		readers := rapidDrawReaders(rt)
		s := explore.Scenario{
			Name:    "rapid",
			Ops:     len(kinds),
			Writers: []string{alWriter},
			Run: func(r *explore.Run) (func() error, error) {
				return rapidAppendlogRun(r, kinds, faults, readers)
			},
		}
		if err := explore.RunOnce(s, prof, explore.Options{Seed: seed}, explore.Plan{}); err != nil {
			rt.Fatal(err)
		}
	})
}

func rapidAppendlogRun(r *explore.Run, kinds []string, faults []rapidFault, readerMounts []nfssim.Mount) (func() error, error) {
	w := r.AddHost(alWriter)
	readers, err := rapidAddReaders(r, readerMounts)
	if err != nil {
		return nil, err
	}
	if err := w.FS().Mkdir(alDir, 0o755); err != nil {
		return nil, err
	}
	lw, err := appendlog.Create(enumCtx, w.FS(), alDir, alWriter, appendlog.Options{Rand: r.Rand()})
	if err != nil {
		return nil, err
	}
	for _, rec := range alBase {
		if _, err := lw.Append(rec.typ, []byte(rec.payload)); err != nil {
			return nil, err
		}
	}
	if err := lw.Commit(enumCtx); err != nil {
		return nil, err
	}
	h := &alHistory{r: r, w: alBase, poss: []alPossible{{0, alBase}}}
	r.Script(rapidScriptFaults(alWriter, faults, func(f rapidFault) {
		switch f.Kind {
		case explore.CrashHost:
			h.scripted = true
			h.wCrashes = append(h.wCrashes, r.Tick())
		case explore.CrashServer:
			h.srvCrashes = append(h.srvCrashes, r.Tick())
		}
	}))
	r.Arm()
	next := 0
	for phase := 1; phase <= len(faults)+1 && next < len(kinds); phase++ {
		open := func() (*appendlog.Writer, error) { return lw, nil }
		if w.Down() {
			w.Restart()
			rng := r.Rand()
			open = func() (*appendlog.Writer, error) { return h.recoverOp(w.FS(), rng) }
		}
		done := false
		r.Go(w, "writer", func() {
			defer func() { done = true }()
			nw, err := open()
			if err != nil {
				r.Failf("writer: %w", err)
				return
			}
			lw = nw
			for next < len(kinds) {
				i := next
				next++
				if err := h.commitOp(lw, i+1, kinds[i]); err != nil {
					return
				}
			}
		})
		for _, rh := range readers {
			r.Go(rh, "reader", func() { h.reader(rh, phase, func() bool { return done }) })
		}
		if err := r.Sim.Run(r.MaxSteps()); err != nil {
			return nil, err
		}
	}
	rng := r.Rand()
	return func() error { return h.check(w, rng) }, nil
}
