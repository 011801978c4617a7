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

// engineScenario is a small multi-host schedule: each host runs its ops
// (0 append, 1 flag, 2 expunge, 3 sync, 4 compact, 5 a group commit of
// three transactions) as one nfssim task.
type engineScenario struct {
	name  string
	hosts [][]int
}

var engineScenarios = []engineScenario{
	{"append|append", [][]int{{0}, {0}}},
	{"append,flag|sync", [][]int{{0, 1}, {3}}},
	{"append,compact|append", [][]int{{0, 4}, {0}}},
	{"append|compact|sync", [][]int{{0}, {4}, {3}}},
	{"group|append", [][]int{{5}, {0}}},
}

var deepScenarios = []engineScenario{
	{"append,flag,compact|append,expunge", [][]int{{0, 1, 4}, {0, 2}}},
	{"append,append,append|compact,sync|append", [][]int{{0, 0, 0}, {4, 3}, {0}}},
	{"group,compact|group", [][]int{{5, 4}, {5}}},
}

// TestEngineCrashPoints enumerates every fault point of each scenario:
// the first host crashes there (losing or keeping its dirty data), stops
// there forever, loses the reply of the RPC there (with no duplicate
// request cache), or the server crashes there. Afterwards every
// acknowledged commit is in the order exactly once, the order has no
// hole, every host that kept running finished all its work (nobody waits
// for a stopped host), and states agree (invariants I1-I5). With
// NFSINDEX_DEEP=1 it also runs the 3-operation scenarios.
func TestEngineCrashPoints(t *testing.T) {
	scenarios := engineScenarios
	if crashenumDeepMode() {
		scenarios = append(scenarios, deepScenarios...)
	}
	total := 0
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			points, _ := runEngineScenario(t, sc, -1, nfssim.Fault{}, 1024)
			states := 0
			for k := range points {
				for _, f := range []struct {
					fault nfssim.Fault
					drc   int
				}{
					{nfssim.Fault{Kind: nfssim.CrashHost}, 1024},
					{nfssim.Fault{Kind: nfssim.CrashHost, Keep: ^uint64(0)}, 1024},
					{nfssim.Fault{Kind: nfssim.PauseHost}, 1024},
					{nfssim.Fault{Kind: nfssim.DropReply}, 0},
					{nfssim.Fault{Kind: nfssim.CrashServer}, 1024},
				} {
					runEngineScenario(t, sc, k, f.fault, f.drc)
					states++
				}
			}
			t.Logf("%s: %d fault points, %d states explored", sc.name, points, states)
			total += states
		})
	}
	t.Logf("engine crash-point enumeration: %d states", total)
}

// runEngineScenario runs sc with fault f at point k of host mx1 (k < 0:
// no fault) and checks the outcome; it returns the number of points.
func runEngineScenario(t *testing.T, sc engineScenario, k int, f nfssim.Fault, drc int) (int, bool) {
	t.Helper()
	ctx := context.Background()
	cfg := nfssim.DefaultConfig(uint64(k + 2))
	cfg.Server.DRCSize = drc
	hit := false
	cfg.Fault = func(p nfssim.Point) nfssim.Fault {
		if p.Seq == k && (p.Host == "mx1" || f.Kind == nfssim.CrashServer) {
			if f.Kind == nfssim.DropReply && p.Kind != nfssim.PointRPC {
				return nfssim.Fault{}
			}
			hit = true
			return f
		}
		return nfssim.Fault{}
	}
	s := nfssim.New(cfg)
	defer s.Close()
	var events []engineEvent
	var failures []string
	finished := map[string]bool{}
	// Set up the mailbox with two messages first, fault-free? No: the
	// faults may hit the set-up too; everything counts.
	for i, ops := range sc.hosts {
		name := fmt.Sprintf("mx%d", i+1)
		h := s.Host(name)
		s.Go(h, name, func() {
			m, err := engine.Open(ctx, engine.Options{FS: h.FS(), Dir: "mbox", Host: name,
				Rand: rand.New(rand.NewPCG(uint64(i), 3))})
			if err != nil {
				if !errors.Is(err, nfssim.ErrHostDown) {
					failures = append(failures, fmt.Sprintf("%s open: %v", name, err))
				}
				return
			}
			defer m.Close()
			for _, o := range ops {
				start := len(events)
				tx := m.Begin()
				v := m.View()
				switch o {
				case 0:
					tx.Append(engine.NewMessage{Fields: map[string][]byte{"f": []byte(name)}})
				case 1, 2:
					if v.Len() == 0 {
						continue
					}
					msg, _ := v.BySeq(1)
					if o == 1 {
						tx.SetFlags(msg.UID, engine.Seen, 0)
					} else {
						tx.Expunge(msg.UID)
					}
				case 3:
					if err := m.Sync(ctx); err != nil {
						if !errors.Is(err, nfssim.ErrHostDown) {
							failures = append(failures, fmt.Sprintf("%s sync: %v", name, err))
						}
						return
					}
					applied, dig := m.Digest()
					events = append(events, engineEvent{host: name, kind: "sync", seq: applied, digest: dig, start: start})
					continue
				case 4:
					if _, err := m.Compact(ctx); err != nil {
						if !errors.Is(err, nfssim.ErrHostDown) {
							failures = append(failures, fmt.Sprintf("%s compact: %v", name, err))
						}
						return
					}
					continue
				case 5:
					evs, err := commitGroup(ctx, m, name, 3, rand.New(rand.NewPCG(uint64(i), 5)), start)
					events = append(events, evs...)
					if err != nil {
						if !errors.Is(err, nfssim.ErrHostDown) {
							failures = append(failures, fmt.Sprintf("%s group commit: %v", name, err))
						}
						return
					}
					continue
				}
				res, err := tx.Commit(ctx)
				if err != nil {
					if !errors.Is(err, nfssim.ErrHostDown) {
						failures = append(failures, fmt.Sprintf("%s commit: %v", name, err))
					}
					return
				}
				_, dig := m.Digest()
				events = append(events, engineEvent{host: name, kind: "commit", key: tx.Key(), seq: res.Seq, uids: res.UIDs, digest: dig, start: start})
			}
			finished[name] = true
		})
	}
	replay := fmt.Sprintf("go test ./proofs -run 'TestEngineCrashPoints/%s' (point %d, fault %+v, drc %d)", sc.name, k, f, drc)
	if err := s.Run(0); err != nil {
		t.Fatalf("%s: run: %v", replay, err)
	}
	for _, msg := range failures {
		t.Fatalf("%s: %s", replay, msg)
	}
	for i := range sc.hosts {
		name := fmt.Sprintf("mx%d", i+1)
		if name == "mx1" && hit && (f.Kind == nfssim.CrashHost || f.Kind == nfssim.PauseHost) {
			continue
		}
		if !finished[name] {
			t.Fatalf("%s: %s did not finish its work (it waited, or failed silently)", replay, name)
		}
	}
	s.Host("mx1").Restart()
	j, err := engine.Open(ctx, engine.Options{FS: s.Host("judge").FS(), Dir: "mbox", Host: "judge",
		Rand: rand.New(rand.NewPCG(9, 9))})
	if err != nil {
		t.Fatalf("%s: judge: %v", replay, err)
	}
	if _, err := j.Committed(ctx, engine.Key{Owner: 1, N: 1}); err != nil {
		t.Fatalf("%s: judge flush: %v", replay, err)
	}
	j.Close()
	in, err := engine.Inspect(ctx, s.Host("judge").FS(), "mbox")
	if err != nil {
		t.Fatalf("%s: inspect: %v", replay, err)
	}
	checkEngineHistory(prefixed{t, replay}, in, events)
	return s.Points(), hit
}

// prefixed adds the replay line to every failure.
type prefixed struct {
	t      *testing.T
	replay string
}

func (p prefixed) Fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s: %s", p.replay, fmt.Sprintf(format, args...))
}
