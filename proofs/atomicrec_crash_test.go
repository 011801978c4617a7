package proofs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/internal/explore"
	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
)

// arLayout is a record geometry the atomicrec scenarios run with.
type arLayout struct {
	name string
	l    atomicrec.Layout
}

// arLayouts: "packed" has both 748-byte copies in one page (two 512-byte
// sectors each, so the local disk tears them); "pages" has 5048-byte copies
// that each span two pages of their own, so NFS writes them as two WRITEs
// at the wsize boundary and a crash keeps either page.
var arLayouts = []arLayout{
	{"packed", atomicrec.Layout{Offset: 0, PayloadSize: 700}},
	{"pages", atomicrec.PageAligned(0, 5000, 4096)},
}

const (
	arFile     = "rec"
	arPost     = 9  // the version the recovered writer writes
	arMaxReads = 96 // bound on a reader's loop
)

// arPayload is the payload of version i (0: the initial value, written
// before the scenario is armed): distinct lengths and bytes per version.
func arPayload(l atomicrec.Layout, i int) []byte {
	n := l.PayloadSize - 37*i
	b := bytes.Repeat([]byte{byte('a' + i)}, n)
	copy(b, fmt.Sprintf("v%d|", i))
	return b
}

// arVersion returns the version whose payload p is, or -1.
func arVersion(l atomicrec.Layout, p []byte) int {
	for i := 0; i <= arPost; i++ {
		if bytes.Equal(p, arPayload(l, i)) {
			return i
		}
	}
	return -1
}

// arOp is one Update of the history.
type arOp struct {
	version    int
	begin, end int // ticks; end 0: never returned (the host crashed)
	err        error
}

// arObs is one read by a reader.
type arObs struct {
	begin, end int
	gen        uint64
	version    int
	err        error
}

type arHistory struct {
	r   *explore.Run
	l   atomicrec.Layout
	ops []*arOp
	obs []arObs
}

// arRead opens the record on fsys (close-to-open: the open revalidates the
// host's cache), reads it with a fresh Record and closes it.
func arRead(fsys vfs.FS, l atomicrec.Layout) (atomicrec.Value, error) {
	f, err := fsys.OpenFile(arFile, vfs.ReadOnly, 0)
	if err != nil {
		return atomicrec.Value{}, err
	}
	rec, err := atomicrec.New(f, l, atomicrec.Options{Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		f.Close()
		return atomicrec.Value{}, err
	}
	v, err := rec.Read(enumCtx)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return v, err
}

// atomicrecScenario: a record initialised before the scenario; the writer
// host w makes n Updates while a reader (on host r, or on w for a local
// disk) reads the record again and again, reopening it each time, until
// the writer is done.
func atomicrecScenario(n int, lay arLayout) explore.Scenario {
	return explore.Scenario{
		Name:    fmt.Sprintf("update%d-%s", n, lay.name),
		Ops:     n,
		Writers: []string{"w"},
		Run: func(r *explore.Run) (func() error, error) {
			w := r.AddHost("w")
			rh := r.ReaderHost("r", w)
			f, err := w.FS().OpenFile(arFile, vfs.ReadWrite|vfs.Create|vfs.Excl, 0o644)
			if err != nil {
				return nil, err
			}
			rec, err := atomicrec.New(f, lay.l, atomicrec.Options{Rand: r.Rand()})
			if err != nil {
				return nil, err
			}
			if _, err := rec.Update(enumCtx, arPayload(lay.l, 0)); err != nil {
				return nil, fmt.Errorf("initial update: %w", err)
			}
			h := &arHistory{r: r, l: lay.l}
			r.Arm()
			writerDone := false
			r.Go(w, "writer", func() {
				defer func() { writerDone = true }()
				for i := 1; i <= n; i++ {
					op := &arOp{version: i, begin: r.Tick()}
					h.ops = append(h.ops, op)
					_, err := rec.Update(enumCtx, arPayload(lay.l, i))
					op.end, op.err = r.Tick(), err
					r.Logf("writer: update %d: %v", i, err)
					if err != nil {
						return
					}
				}
			})
			r.Go(rh, "reader", func() {
				for j := 0; j < arMaxReads; j++ {
					last := writerDone
					o := arObs{begin: r.Tick()}
					v, err := arRead(rh.FS(), lay.l)
					o.end, o.gen, o.err = r.Tick(), v.Gen, err
					o.version = arVersion(lay.l, v.Payload)
					r.Logf("reader: gen %d version %d err %v", o.gen, o.version, err)
					h.obs = append(h.obs, o)
					if last {
						return
					}
				}
			})
			if err := r.Sim.Run(r.MaxSteps()); err != nil {
				return nil, err
			}
			return func() error { return h.check(w) }, nil
		},
	}
}

// check is the atomicrec checker (invariant I-AR in docs/design.md):
//
//   - a reader only ever returns a value some Update wrote whole, with that
//     Update's generation, and only once that Update had begun;
//   - a reader's generations never go back (a server crash excepted: it
//     may drop an unstable write another host already read, N10);
//   - after recovery the record holds the last acknowledged version or the
//     one whose Update never returned, and nothing older than any version
//     a reader returned;
//   - the recovered writer can update again, and that update, and every
//     acknowledged one, survives a crash of every host and of the server.
//
// Without a crash of the writer every Update must return nil.
func (h *arHistory) check(w *nfssim.Host) error {
	r, l := h.r, h.l
	crashed := false
	if _, ok := r.Fired(); ok && r.Plan.Kind == explore.CrashHost {
		crashed = true
	}
	acked, begun := 0, 0
	for _, op := range h.ops {
		begun = op.version
		switch {
		case op.end != 0 && op.err == nil:
			acked = op.version
		case !crashed:
			return fmt.Errorf("update %d failed without a crash of its host: %v", op.version, op.err)
		}
	}
	if !crashed && begun != len(h.ops) {
		return fmt.Errorf("writer stopped after %d updates without a crash", begun)
	}
	// Readers.
	seenGen, seenAt := uint64(0), 0 // the newest generation a reader returned, and when its Update began
	for _, o := range h.obs {
		if o.err != nil {
			return fmt.Errorf("reader (ticks %d-%d): %v", o.begin, o.end, o.err)
		}
		if o.version < 0 || uint64(o.version)+1 != o.gen {
			return fmt.Errorf("reader (ticks %d-%d) returned generation %d with a payload that is not that generation's (version %d)", o.begin, o.end, o.gen, o.version)
		}
		if started := h.begunBy(o.end); o.version > started {
			return fmt.Errorf("reader (ticks %d-%d) returned version %d before its Update began (%d begun)", o.begin, o.end, o.version, started)
		}
		if o.gen < seenGen && !r.ServerCrashedBefore(o.end) {
			return fmt.Errorf("reader went back from generation %d to %d (ticks %d-%d)", seenGen, o.gen, o.begin, o.end)
		}
		if o.gen > seenGen {
			// Since when the value could be in a cache: since its Update
			// began (the initial value: always).
			seenGen, seenAt = o.gen, 0
			if o.version > 0 {
				seenAt = h.ops[o.version-1].begin
			}
		}
	}
	// Recovery: restart the writer if it crashed; a fresh host sees what
	// the server (disk) holds.
	if w.Down() {
		w.Restart()
	}
	v, err := arRead(r.FreshHost().FS(), l)
	if err != nil {
		return fmt.Errorf("after recovery: %v", err)
	}
	ver := arVersion(l, v.Payload)
	if ver < 0 || uint64(ver)+1 != v.Gen {
		return fmt.Errorf("after recovery: generation %d holds a payload of no update", v.Gen)
	}
	if ver < acked || ver > begun {
		return fmt.Errorf("after recovery: version %d; acknowledged up to %d, begun up to %d", ver, acked, begun)
	}
	if v.Gen < seenGen && !r.ServerCrashedAfter(seenAt) {
		return fmt.Errorf("after recovery: generation %d, older than generation %d a reader returned", v.Gen, seenGen)
	}
	// The recovered writer loads what a fresh host sees and updates again.
	f, err := w.FS().OpenFile(arFile, vfs.ReadWrite, 0)
	if err != nil {
		return fmt.Errorf("writer reopen: %v", err)
	}
	rec, err := atomicrec.New(f, l, atomicrec.Options{Rand: r.Rand()})
	if err != nil {
		return err
	}
	c, err := rec.Load(enumCtx, nil)
	if err != nil {
		return fmt.Errorf("writer load after recovery: %v", err)
	}
	if c.Value.Gen != v.Gen || !bytes.Equal(c.Value.Payload, v.Payload) {
		return fmt.Errorf("writer loads generation %d, a fresh host read %d", c.Value.Gen, v.Gen)
	}
	post, err := rec.Update(enumCtx, arPayload(l, arPost))
	if err != nil {
		return fmt.Errorf("update after recovery: %v", err)
	}
	if post.Gen <= v.Gen {
		return fmt.Errorf("update after recovery got generation %d, not above %d", post.Gen, v.Gen)
	}
	if err := rec.Check(enumCtx); err != nil {
		return fmt.Errorf("check after recovery: %v", err)
	}
	// Power failure: every host loses its unsynced data, the server its
	// unstable writes. The acknowledged update must still be there.
	w.Crash(nfssim.Fault{})
	r.Sim.CrashServer(0)
	w.Restart()
	got, err := arRead(r.FreshHost().FS(), l)
	switch {
	case err != nil:
		return fmt.Errorf("after a crash of everything: %v", err)
	case got.Gen != post.Gen || !bytes.Equal(got.Payload, arPayload(l, arPost)):
		return fmt.Errorf("after a crash of everything: generation %d (version %d), want the acknowledged %d", got.Gen, arVersion(l, got.Payload), post.Gen)
	}
	return nil
}

// begunBy returns the highest version whose Update began at or before tick.
func (h *arHistory) begunBy(tick int) int {
	n := 0
	for _, op := range h.ops {
		if op.begin <= tick {
			n = op.version
		}
	}
	return n
}

func atomicrecScenarios() []explore.Scenario {
	var out []explore.Scenario
	for n := 1; n <= 3; n++ {
		for _, lay := range arLayouts {
			out = append(out, atomicrecScenario(n, lay))
		}
	}
	return out
}

// TestCrashEnumAtomicrec explores every crash point, every subset of the
// writer's dirty units (sectors on the local disk, pages on NFS, so every
// tear and write-back order), every lost reply (with and without the
// duplicate request cache) and every server crash of 1-3 atomicrec Updates
// with a reader on another host (I-AR1..I-AR3 in docs/design.md).
func TestCrashEnumAtomicrec(t *testing.T) {
	crashenumExplore(t, atomicrecScenarios())
}

var _ = errors.Is
