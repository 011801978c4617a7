package explore

import (
	"errors"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
)

func TestPlanRoundTrip(t *testing.T) {
	for _, p := range []Plan{{}, {Kind: CrashHost, Point: 12, Keep: 0x5}, {Kind: DropReply, Point: 3},
		{Kind: DropReplyNoDRC, Point: 0}, {Kind: CrashServer, Point: 7}, {Kind: CrashHost, Point: 1, Keep: ^uint64(0)}} {
		got, err := ParsePlan(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePlan(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	for _, bad := range []string{"crash-host", "nope@1", "drop-reply@x", "drop-reply@1:keep=3", "crash-host@1:keep=zz", "none@1"} {
		if _, err := ParsePlan(bad); err == nil {
			t.Errorf("ParsePlan(%q) accepted", bad)
		}
	}
}

func TestKeepMasksAllSubsets(t *testing.T) {
	for n := 0; n <= 10; n++ {
		masks, capped := keepMasks(n, 10)
		if capped || len(masks) != 1<<n {
			t.Fatalf("n=%d: %d masks (capped %v), want %d", n, len(masks), capped, 1<<n)
		}
		seen := map[uint64]bool{}
		for _, m := range masks {
			if m>>uint(n) != 0 || seen[m] {
				t.Fatalf("n=%d: mask %#x out of range or repeated", n, m)
			}
			seen[m] = true
		}
	}
}

func TestKeepMasksCapped(t *testing.T) {
	for _, n := range []int{11, 20, 64, 100} {
		masks, capped := keepMasks(n, 10)
		if !capped {
			t.Fatalf("n=%d: not capped", n)
		}
		units := min(n, 64)
		all := ^uint64(0) >> uint(64-units)
		seen := map[uint64]bool{}
		for _, m := range masks {
			if m&^all != 0 || seen[m] {
				t.Fatalf("n=%d: mask %#x out of range or repeated", n, m)
			}
			seen[m] = true
		}
		// Every prefix of the unit order at group granularity, every
		// unit alone and every unit missing are there.
		for i := 0; i < units; i++ {
			if !seen[1<<uint(i)] || !seen[all&^(1<<uint(i))] {
				t.Fatalf("n=%d: unit %d alone or missing is not tried", n, i)
			}
		}
		if !seen[0] || !seen[all] {
			t.Fatalf("n=%d: nothing or everything is not tried", n)
		}
		if len(masks) > 1<<10+2*units {
			t.Fatalf("n=%d: %d masks, more than the cap allows", n, len(masks))
		}
		prefixes := 0
		for _, m := range masks {
			if m&(m+1) == 0 { // 0b0..01..1: a prefix
				prefixes++
			}
		}
		if prefixes < 11 {
			t.Fatalf("n=%d: only %d prefixes", n, prefixes)
		}
	}
}

// counter is a scenario whose checker fails exactly when a crash of the
// writer keeps the second dirty unit and loses the first: Explore must find
// it, name the plan, and replay it with Only.
func counter() Scenario {
	return Scenario{
		Name:    "two-pages",
		Ops:     1,
		Writers: []string{"w"},
		Run: func(r *Run) (func() error, error) {
			w := r.AddHost("w")
			f, err := w.FS().OpenFile("f", vfs.ReadWrite|vfs.Create, 0o644)
			if err != nil {
				return nil, err
			}
			r.Arm()
			r.Go(w, "writer", func() {
				if _, err := f.WriteAt([]byte(strings.Repeat("a", 8192)), 0); err != nil {
					return
				}
				f.Datasync()
			})
			if err := r.Sim.Run(r.MaxSteps()); err != nil {
				return nil, err
			}
			return func() error {
				if w.Down() {
					w.Restart()
				}
				g, err := r.FreshHost().FS().OpenFile("f", vfs.ReadOnly, 0)
				if err != nil {
					return err
				}
				defer g.Close()
				b := make([]byte, 8192)
				n, _ := g.ReadAt(b, 0)
				if n == 8192 && b[0] == 0 && b[4096] == 'a' {
					return errors.New("second page without the first")
				}
				return nil
			}, nil
		},
	}
}

func TestExploreFindsAndReplays(t *testing.T) {
	p := LocalDisk()
	p.Config = func(seed uint64) nfssim.Config {
		c := nfssim.LocalDiskConfig(seed)
		c.CrashUnit = 4096
		return c
	}
	res, err := Explore(counter(), p, Options{Seed: 1, Replay: func(pl Plan) string { return "replay " + pl.String() }})
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("Explore = %v, %v; want a *Failure", res, err)
	}
	if f.Plan.Kind != CrashHost || f.Plan.Keep&3 != 2 || !strings.Contains(f.Error(), "replay "+f.Plan.String()) {
		t.Fatalf("failure %v", f)
	}
	t.Logf("found: %v", f.Plan)
	if _, err := Explore(counter(), p, Options{Seed: 1, Only: &f.Plan}); err == nil {
		t.Fatalf("replaying %v passes", f.Plan)
	}
	ok := Plan{Kind: CrashHost, Point: f.Plan.Point, Keep: 3}
	if _, err := Explore(counter(), p, Options{Seed: 1, Only: &ok}); err != nil {
		t.Fatalf("replaying %v: %v", ok, err)
	}
}
