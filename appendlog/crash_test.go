package appendlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/nfsindex/nfsindex/internal/atomicrectest"
)

// mrec is a record of the model.
type mrec struct {
	Ref     Ref
	Type    uint8
	Payload string
	Prev    Ref
}

func render(recs []mrec) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%d:%d:%d:%q ", r.Ref, r.Type, r.Prev, r.Payload)
	}
	return b.String()
}

// observe opens the log as its writer would after a crash (recovery), and
// returns the recovered records, checking that the log verifies and that
// every continuation is linked from its predecessor.
func observe(t tb, m *atomicrectest.FS) (*Writer, []mrec) {
	t.Helper()
	w, err := Open(ctx, m, "idx", host, Options{})
	if err != nil {
		t.Fatalf("recovery: %v", err)
	}
	if err := w.Check(ctx); err != nil {
		t.Fatalf("recovered log does not check: %v", err)
	}
	r := mustOpenReader(t, m)
	var recs []mrec
	if err := r.Scan(ctx, func(rec Record) error {
		recs = append(recs, mrec{rec.Ref, rec.Type, string(rec.Payload), rec.Prev})
		if rec.Prev != 0 {
			ch, err := r.Chain(ctx, rec.Prev)
			if err != nil || len(ch) < 2 || ch[1].Ref != rec.Ref {
				return fmt.Errorf("continuation %d of %d is not linked after recovery: %+v, %v", rec.Ref, rec.Prev, ch, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if r.Info() != w.Info() {
		t.Fatalf("reader sees %+v, recovered writer %+v", r.Info(), w.Info())
	}
	return w, recs
}

// TestCrashEveryPieceSubset enumerates, for a small scenario, every subset
// of the unsynced 512-byte pieces at three crash points (N7: any subset
// and order reaches the disk; N8: sector tears): during the group's sync,
// during the link sync, and during the commit after a recovery. Each
// recovered log is exactly one of the committed states.
func TestCrashEveryPieceSubset(t *testing.T) {
	states := 0
	for _, failAt := range []int{1, 2} { // which sync of the second Commit fails
		m := atomicrectest.New()
		w := mustCreate(t, m)
		head := mustAppend(t, w, 1, "head")
		mustCommit(t, w)
		w1 := []mrec{{head, 1, "head", 0}}
		c, err := w.AppendAfter(ctx, head, 2, bytes.Repeat([]byte("c"), 600))
		if err != nil {
			t.Fatal(err)
		}
		o := mustAppend(t, w, 3, "other")
		w2 := append(append([]mrec(nil), w1...), mrec{c, 2, strings.Repeat("c", 600), head}, mrec{o, 3, "other", 0})
		m.FailSyncAt = failAt
		if err := w.Commit(ctx); !errors.Is(err, ErrBroken) {
			t.Fatalf("commit with failing sync %d = %v", failAt, err)
		}
		for mask := 0; ; mask++ {
			cm, n := m.CrashKeep(512, func(i int) bool { return mask&(1<<i) != 0 })
			if mask >= 1<<n {
				break
			}
			states++
			w3, got := observe(t, cm)
			switch g := render(got); {
			case failAt == 1 && g == render(w1):
			case g == render(w2):
			default:
				t.Fatalf("sync %d failed, crash subset %b: recovered %s\nwant %s\n  or %s", failAt, mask, g, render(w1), render(w2))
			}
			// Recovery then a commit of different records over the
			// garbage, crashed again in every way: still a committed
			// state, never the first attempt's records (a zombie).
			pre := got
			x := mustAppend(t, w3, 4, strings.Repeat("z", 700))
			post := append(append([]mrec(nil), pre...), mrec{x, 4, strings.Repeat("z", 700), 0})
			cm.FailSyncAt = 1
			if err := w3.Commit(ctx); !errors.Is(err, ErrBroken) {
				t.Fatal(err)
			}
			for mask2 := 0; ; mask2++ {
				cm2, n2 := cm.CrashKeep(512, func(i int) bool { return mask2&(1<<i) != 0 })
				if mask2 >= 1<<n2 {
					break
				}
				states++
				_, got2 := observe(t, cm2)
				if g := render(got2); g != render(pre) && g != render(post) {
					t.Fatalf("second crash %b after %b: recovered %s\nwant %s\n  or %s", mask2, mask, g, render(pre), render(post))
				}
			}
		}
	}
	t.Logf("explored %d crash states", states)
}

// TestCrashAfterCommitReturned: whatever the crash keeps of unsynced
// writes, a Commit that returned nil is there after recovery.
func TestCrashAfterCommitReturned(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	m := atomicrectest.New()
	w := mustCreate(t, m)
	var want []mrec
	var last Ref
	for i := 0; i < 40; i++ {
		p := strings.Repeat(fmt.Sprint(i), rng.IntN(300))
		var ref Ref
		var prev Ref
		if i%3 == 2 && last != 0 {
			var err error
			ref, err = w.AppendAfter(ctx, last, 2, []byte(p))
			if err != nil {
				t.Fatal(err)
			}
			prev = last
		} else {
			ref = mustAppend(t, w, 1, p)
		}
		want = append(want, mrec{ref, map[bool]uint8{true: 2, false: 1}[prev != 0], p, prev})
		last = ref
		mustCommit(t, w)
		// Leave some unsynced garbage after the commit, then crash.
		mustAppend(t, w, 9, "garbage that was never committed")
		f := w.lf.f
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xAB}, 100), w.Info().Used); err != nil {
			t.Fatal(err)
		}
		cm := m.Crash(rng, []int{1, 512, 4096}[i%3])
		_, got := observe(t, cm)
		if render(got) != render(want) {
			t.Fatalf("after commit %d and a crash: %s\nwant %s", i, render(got), render(want))
		}
		w.buf, w.bufRecs, w.gh = w.buf[:0], 0, newGroupHasher() // drop the pending garbage record
	}
}

// TestRapidLogModel runs random sequences of appends, continuations,
// commits, failed commits, crashes (random torn subsets of unsynced
// writes, at 1, 512 and 4096 bytes) and reads against a model: after a
// crash the log holds exactly the committed records, or those plus the
// group whose commit failed; every Commit that returned nil survives;
// readers never see anything else.
func TestRapidLogModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(rt, "seed"), 1))
		m := atomicrectest.New()
		w, err := Create(ctx, m, "idx", host, Options{Rand: rand.New(rand.NewPCG(rng.Uint64(), 2))})
		if err != nil {
			rt.Fatal(err)
		}
		var committed, pending []mrec
		var uncertain []mrec // a group whose Commit failed: maybe committed
		tails := map[Ref]bool{}
		n := 0
		payload := func(rt *rapid.T) string {
			n++
			return strings.Repeat(fmt.Sprint(n%10), rapid.IntRange(0, 700).Draw(rt, "size"))
		}
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				if w == nil {
					rt.Skip("writer broken")
				}
				p := payload(rt)
				ref, err := w.Append(1, []byte(p))
				if err != nil {
					rt.Fatal(err)
				}
				pending = append(pending, mrec{ref, 1, p, 0})
				tails[ref] = true
			},
			"append-after": func(rt *rapid.T) {
				if w == nil || len(tails) == 0 {
					rt.Skip("nothing to continue")
				}
				var cands []Ref
				for r := range tails {
					cands = append(cands, r)
				}
				sortRefs(cands)
				prev := rapid.SampledFrom(cands).Draw(rt, "prev")
				p := payload(rt)
				ref, err := w.AppendAfter(ctx, prev, 2, []byte(p))
				if err != nil {
					rt.Fatal(err)
				}
				delete(tails, prev)
				tails[ref] = true
				pending = append(pending, mrec{ref, 2, p, prev})
			},
			"commit": func(rt *rapid.T) {
				if w == nil {
					rt.Skip("writer broken")
				}
				if err := w.Commit(ctx); err != nil {
					rt.Fatal(err)
				}
				committed, pending = append(committed, pending...), nil
			},
			"commit-fails": func(rt *rapid.T) {
				if w == nil || len(pending) == 0 {
					rt.Skip("nothing to commit")
				}
				m.FailSyncAt = rapid.IntRange(1, 2).Draw(rt, "failing sync")
				if err := w.Commit(ctx); err == nil {
					m.FailSyncAt = 0 // no second sync happened: it committed
					committed, pending = append(committed, pending...), nil
					return
				}
				m.FailSyncAt = 0
				uncertain, pending = pending, nil
				w = nil // broken: only a crash or reopen brings it back
			},
			"read": func(rt *rapid.T) {
				r, err := OpenReader(ctx, m, "idx", host, Options{})
				if err != nil {
					rt.Fatal(err)
				}
				var got []mrec
				if err := r.Scan(ctx, func(rec Record) error {
					got = append(got, mrec{rec.Ref, rec.Type, string(rec.Payload), rec.Prev})
					return nil
				}); err != nil {
					rt.Fatal(err)
				}
				g := render(got)
				if g != render(committed) && (uncertain == nil || g != render(append(append([]mrec(nil), committed...), uncertain...))) {
					rt.Fatalf("reader saw %s\nwant %s", g, render(committed))
				}
			},
			"crash": func(rt *rapid.T) {
				tear := rapid.SampledFrom([]int{1, 512, 4096}).Draw(rt, "tear")
				m = m.Crash(rng, tear)
				var got []mrec
				w, got = observe(rt, m)
				g := render(got)
				switch {
				case g == render(committed):
				case uncertain != nil && g == render(append(append([]mrec(nil), committed...), uncertain...)):
					committed = append(committed, uncertain...)
				default:
					rt.Fatalf("after crash (tear %d): %s\nwant %s\nor that plus %s", tear, g, render(committed), render(uncertain))
				}
				uncertain, pending = nil, nil
				tails = map[Ref]bool{}
				for _, r := range committed {
					tails[r.Ref] = true
				}
				for _, r := range committed {
					delete(tails, r.Prev)
				}
			},
		})
	})
}

func sortRefs(r []Ref) {
	for i := 1; i < len(r); i++ {
		for j := i; j > 0 && r[j] < r[j-1]; j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
}
