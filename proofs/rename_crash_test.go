package proofs

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/rename"
	"github.com/nfsindex/nfsindex/vfs"
)

// The crash-point and lost-reply enumeration of compaction by rename
// (package rename) on three hosts: two compactors and a reader, on
// nfssim. It proves, for every fault it injects:
//
//   - R1: the file at the name is always a complete version: every read
//     and the final state are a whole, checksummed payload of one claim;
//   - R2: no reader ever sees the generation go back;
//   - R3: at most one claim's install of a given generation wins;
//   - R4: no acknowledged compaction is lost: once Commit returned nil for
//     generation g, the name holds g or newer from then on, after every
//     crash (checked from a host with no stale cache), and on NFSv4 every
//     read that starts after it sees it;
//   - R5: no host waits and no claim is taken over while fresh: a fresh
//     claim makes Begin return ErrBusy at once (whatever the host's clock
//     says, N18), and once the server's clock has moved StaleAge past a
//     stopped claimant, a new compaction succeeds and Sweep leaves no
//     litter;
//   - R6: callers learn the truth: a lost reply or a server crash never
//     turns a compaction into an error other than ErrBusy/ErrFenced, and
//     ErrLost happens only to a claimant that was declared stale.
//
// The faults (one per run, at one point of the fault-free run's numbering,
// nfssim.Point, counted from the end of the setup): a crash of the point's
// host with every subset of its dirty units (nfssim.Fault.Keep, up to 2^10
// subsets), a lost reply at every RPC with the duplicate request cache on
// and off, a crash of the server, and a pause of a compactor that wakes
// after another host took its claim over. Run with -v for the states
// explored; NFSINDEX_DEEP=1 (or -rename.deep) explores more seeds and
// variants.

var (
	renameSeeds = flag.Int("rename.seeds", 0, "seeds per variant of the rename enumeration (0: 2, or 6 in deep mode)")
	renameDeep  = flag.Bool("rename.deep", false, "explore more seeds and variants, as NFSINDEX_DEEP=1 does")
	renameOnly  = flag.String("rename.plan", "", "replay one run of TestCrashEnumRename: variant/seed/plan as printed by a failure")
)

const (
	rnName     = "index"
	rnStaleAge = 2 * time.Minute
	// rnPayloadSize spans three pages after the header page: with the
	// header, four dirty units at a crash (N7).
	rnPayloadSize = 3*4096 - 100
	rnHealGen     = 10 // the generation of the compaction after the faults
	rnMaxKeepBits = 10
)

var rnCtx = context.Background()

// rnPayload is the payload a host writes for a generation: each claim's
// bytes are its own, so a mix of two is never a valid payload.
func rnPayload(gen uint64, host string) []byte {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", gen, host)
	x := h.Sum64()
	b := make([]byte, rnPayloadSize)
	for i := range b {
		x = x*6364136223846793005 + 1442695040888963407
		b[i] = byte(x >> 56)
	}
	return b
}

// rnVariant is one configuration of the scenario.
type rnVariant struct {
	name string
	// gens are the generations the two compactors install; equal ones
	// exercise R3.
	gens        [2]uint64
	v4          bool
	noExclusive bool // the server falls back to GUARDED creates (N13)
	preserve    bool // the server keeps unlinked open files readable (N15)
	// first: no version is installed before the race; the compactors'
	// lookups cache the name as absent (N4).
	first bool
	// holders: each compactor's host also runs a reader that holds a
	// Version open across the installs. Were the name itself held open,
	// the installing client would silly-rename it first (N17), a rename
	// of the name that no lock fences (TestSillyRenameOfHeldNameMovesNewerVersion);
	// a Version holds only its own pin, so every R holds as without it.
	holders  bool
	deepOnly bool
}

func rnVariants() []rnVariant {
	return []rnVariant{
		{name: "v3", gens: [2]uint64{2, 3}},
		{name: "v3-same-gen", gens: [2]uint64{2, 2}},
		{name: "v3-older-second", gens: [2]uint64{3, 2}},
		{name: "v4", gens: [2]uint64{2, 3}, v4: true},
		{name: "v3-first", gens: [2]uint64{2, 3}, first: true},
		{name: "v3-holders", gens: [2]uint64{2, 3}, holders: true},
		{name: "v3-guarded", gens: [2]uint64{2, 3}, noExclusive: true},
		{name: "v4-preserve", gens: [2]uint64{3, 2}, v4: true, preserve: true, deepOnly: true},
	}
}

// rnPlan is the one fault of a run.
type rnPlan struct {
	Kind  nfssim.FaultKind // NoFault, CrashHost, DropReply, CrashServer, PauseHost
	At    int              // armed point
	Keep  uint64
	NoDRC bool
}

func (p rnPlan) String() string {
	switch p.Kind {
	case nfssim.NoFault:
		return "none"
	case nfssim.CrashHost:
		return fmt.Sprintf("crash-host@%d:keep=%#x", p.At, p.Keep)
	case nfssim.DropReply:
		if p.NoDRC {
			return fmt.Sprintf("drop-reply-nodrc@%d", p.At)
		}
		return fmt.Sprintf("drop-reply@%d", p.At)
	case nfssim.CrashServer:
		return fmt.Sprintf("crash-server@%d", p.At)
	case nfssim.PauseHost:
		return fmt.Sprintf("pause@%d", p.At)
	}
	return "?"
}

func rnParsePlan(s string) (rnPlan, error) {
	if s == "none" {
		return rnPlan{}, nil
	}
	kind, rest, ok := strings.Cut(s, "@")
	if !ok {
		return rnPlan{}, fmt.Errorf("bad plan %q", s)
	}
	var p rnPlan
	switch kind {
	case "crash-host":
		p.Kind = nfssim.CrashHost
	case "drop-reply":
		p.Kind = nfssim.DropReply
	case "drop-reply-nodrc":
		p.Kind, p.NoDRC = nfssim.DropReply, true
	case "crash-server":
		p.Kind = nfssim.CrashServer
	case "pause":
		p.Kind = nfssim.PauseHost
	default:
		return rnPlan{}, fmt.Errorf("bad plan kind %q", kind)
	}
	at, keep, _ := strings.Cut(rest, ":keep=")
	if _, err := fmt.Sscan(at, &p.At); err != nil {
		return rnPlan{}, fmt.Errorf("bad plan point %q", at)
	}
	if keep != "" {
		if _, err := fmt.Sscanf(keep, "%v", &p.Keep); err != nil {
			return rnPlan{}, fmt.Errorf("bad keep %q", keep)
		}
	}
	return p, nil
}

// rnOutcome is what one compaction returned.
type rnOutcome struct {
	host  string
	gen   uint64
	claim uint64
	phase string
	err   error
	done  bool
	tick  int // logical time when Commit (or Begin) returned
}

// rnObs is one read.
type rnObs struct {
	host  string
	start int // logical time when the read started
	info  rename.Info
	err   error
}

// rnWorld is one run: the simulation, the history, the fault.
type rnWorld struct {
	v        rnVariant
	seed     uint64
	plan     rnPlan
	s        *nfssim.Sim
	tick     int
	outcomes []*rnOutcome
	obs      []rnObs
	reader   *rename.Reader
	nrand    uint64

	absentAfterFaults bool // nothing installed when the faults were over (first)
	trace             func(p nfssim.Point, armed bool)

	armed    bool
	n        int            // armed points seen
	points   []nfssim.Point // the armed points (recorded in every run)
	expect   []nfssim.Point // the fault-free run's points, to check determinism
	fired    bool
	paused   string // host paused by the fault
	crashed  string // host crashed by the fault
	mismatch string
}

func (w *rnWorld) fault(p nfssim.Point) nfssim.Fault {
	if w.trace != nil {
		w.trace(p, w.armed)
	}
	if !w.armed {
		return nfssim.Fault{}
	}
	i := w.n
	w.n++
	w.points = append(w.points, p)
	if w.fired || w.plan.Kind == nfssim.NoFault || i != w.plan.At {
		return nfssim.Fault{}
	}
	if i < len(w.expect) {
		e := w.expect[i]
		if e.Host != p.Host || e.Kind != p.Kind || e.RPC != p.RPC || e.Call != p.Call || e.Path != p.Path {
			w.mismatch = fmt.Sprintf("point %d is %v, the fault-free run had %v: the scenario is not deterministic", i, p, e)
			return nfssim.Fault{}
		}
	}
	w.fired = true
	switch w.plan.Kind {
	case nfssim.CrashHost:
		w.crashed = p.Host
		return nfssim.Fault{Kind: nfssim.CrashHost, Keep: w.plan.Keep}
	case nfssim.PauseHost:
		w.paused = p.Host
	}
	return nfssim.Fault{Kind: w.plan.Kind}
}

func (w *rnWorld) opts(host string) rename.Options {
	w.nrand++
	h := fnv.New64a()
	fmt.Fprint(h, host)
	return rename.Options{Host: host, StaleAge: rnStaleAge, Rand: rand.New(rand.NewPCG(w.seed, h.Sum64()+w.nrand))}
}

// compact is one compaction on h: read the installed version (as an
// engine would, to build the new one), claim, write, commit.
func (w *rnWorld) compact(h *nfssim.Host, gen uint64, phase string) *rnOutcome {
	o := &rnOutcome{host: h.Name(), gen: gen, phase: phase}
	w.outcomes = append(w.outcomes, o)
	fsys := h.FS()
	opts := w.opts(h.Name())
	_, _, _ = rename.Load(rnCtx, fsys, rnName, opts)
	c, err := rename.Begin(rnCtx, fsys, rnName, gen, opts)
	if err != nil {
		o.err, o.done = err, true
		w.tick++
		o.tick = w.tick
		return o
	}
	o.claim = c.Info().ClaimID
	if _, err := c.Write(rnPayload(gen, h.Name())); err != nil {
		o.err, o.done = err, true
		w.tick++
		o.tick = w.tick
		_ = c.Abort(rnCtx)
		return o
	}
	_, err = c.Commit(rnCtx)
	w.tick++
	o.err, o.done, o.tick = err, true, w.tick
	return o
}

// read reads the version n times through the world's Reader (which never
// goes back, R2) and checks each payload byte for byte (R1).
func (w *rnWorld) read(h *nfssim.Host, n int) {
	if w.reader == nil {
		w.reader, _ = rename.NewReader(h.FS(), rnName, w.opts(h.Name()))
	}
	for range n {
		w.tick++
		o := rnObs{host: h.Name(), start: w.tick}
		info, data, err := w.reader.Load(rnCtx)
		if errors.Is(err, fs.ErrNotExist) && w.v.first && w.reader.Generation() == 0 {
			continue // nothing installed yet
		}
		o.info, o.err = info, err
		if err == nil && !bytes.Equal(data, rnPayload(info.Generation, info.Host)) {
			o.err = fmt.Errorf("payload of generation %d by %s is not the one that claim wrote", info.Generation, info.Host)
		}
		w.obs = append(w.obs, o)
	}
}

// hold opens the version n times through a Reader of its own host and
// reads it in two halves with time passing between them, so installs
// happen while it is open. ESTALE on the second half is the expected
// end of a replaced version on a server that does not keep it (N15): the
// next round reopens. Every whole read is checked (R1) and the Reader
// never goes back (R2).
func (w *rnWorld) hold(h *nfssim.Host, n int) {
	rd, _ := rename.NewReader(h.FS(), rnName, w.opts(h.Name()))
	for range n {
		w.tick++
		o := rnObs{host: h.Name() + "-holder", start: w.tick}
		v, err := rd.Open(rnCtx)
		if err != nil {
			o.err = err
			w.obs = append(w.obs, o)
			continue
		}
		o.info = v.Info()
		buf := make([]byte, v.Info().Size)
		half := len(buf) / 2
		_, err = v.ReadAt(buf[:half], 0)
		if err == nil {
			h.Sleep(2 * time.Millisecond)
			_, err = v.ReadAt(buf[half:], int64(half))
		}
		_ = v.Close()
		switch {
		case errors.Is(err, vfs.ErrStale):
			continue
		case err != nil && err != io.EOF:
			o.err = err
		case !bytes.Equal(buf, rnPayload(o.info.Generation, o.info.Host)):
			o.err = fmt.Errorf("holder read generation %d by %s, not that claim's payload", o.info.Generation, o.info.Host)
		}
		w.obs = append(w.obs, o)
	}
}

func (w *rnWorld) mount(skew time.Duration) nfssim.Mount {
	m := nfssim.DefaultMount()
	m.RSize, m.WSize = 4096, 4096
	m.FlushOnRename = false // do not let the client flush for us (N7)
	m.ClockSkew = skew
	if w.v.v4 {
		m.Version = nfssim.V4
	}
	return m
}

// rnDelays are the start delays of the two compactors, by seed. A
// compaction takes about 8 ms of simulated time (40 RPCs of 200 µs).
var rnDelays = [][2]time.Duration{
	{0, 0},
	{0, 12 * time.Millisecond},
	{12 * time.Millisecond, 0},
	{0, 200 * time.Microsecond},
	{0, 0},
	{200 * time.Microsecond, 0},
}

// rnDebugTrace, when set, sees every point of every run.
var rnDebugTrace func(p nfssim.Point, armed bool)

// rnRun runs the scenario once with plan and checks it.
func rnRun(v rnVariant, seed uint64, plan rnPlan, expect []nfssim.Point) (w *rnWorld, err error) {
	w = &rnWorld{v: v, seed: seed, plan: plan, expect: expect, trace: rnDebugTrace}
	cfg := nfssim.DefaultConfig(seed)
	cfg.Server.Skew = 30 * time.Minute // the server's clock is nobody's (N18)
	cfg.Server.NoExclusive = v.noExclusive
	if v.preserve {
		cfg.Server.Unlinked = nfssim.UnlinkedPreserve
	}
	if plan.NoDRC {
		cfg.Server.DRCSize = 0
	}
	cfg.Fault = w.fault
	w.s = nfssim.New(cfg)
	defer w.s.Close()
	add := func(name string, skew time.Duration) *nfssim.Host {
		if err != nil {
			return nil
		}
		var h *nfssim.Host
		h, err = w.s.AddHost(name, w.mount(skew))
		return h
	}
	// Host clocks an hour off either way: only the server's clock may
	// judge a claim's age (N18).
	c1, c2, r := add("c1", time.Hour), add("c2", -time.Hour), add("r", 0)
	c3, c4, o := add("c3", time.Hour), add("c4", -time.Hour), add("o", 0)
	if err != nil {
		return w, err
	}

	// Setup, not armed: generation 1 is installed.
	if !v.first {
		if out := w.compact(c1, 1, "setup"); out.err != nil {
			return w, fmt.Errorf("setup: %w", out.err)
		}
		w.outcomes = w.outcomes[:0]
	}

	// Phase 1: two compactors and a reader, one fault somewhere.
	w.armed = true
	// The seed picks how the two compactions overlap: at once (one finds
	// the other's claim fresh), one after the other (the second is
	// fenced or installs on top), or partly.
	d := rnDelays[(seed-1)%uint64(len(rnDelays))]
	w.s.Go(c1, "c1", func() { c1.Sleep(d[0]); w.compact(c1, v.gens[0], "race") })
	w.s.Go(c2, "c2", func() { c2.Sleep(d[1]); w.compact(c2, v.gens[1], "race") })
	w.s.Go(r, "r", func() { w.read(r, 3) })
	if v.holders {
		w.s.Go(c1, "c1-holder", func() { w.hold(c1, 2) })
		w.s.Go(c2, "c2-holder", func() { w.hold(c2, 2) })
	}
	if err := w.s.Run(1_000_000); err != nil {
		return w, err
	}
	w.armed = false
	if w.mismatch != "" {
		return w, errors.New(w.mismatch)
	}
	if w.plan.Kind != nfssim.NoFault && !w.fired {
		return w, fmt.Errorf("the plan's point %d was never reached (%d points)", w.plan.At, w.n)
	}
	for _, h := range []*nfssim.Host{c1, c2, r} {
		if h.Down() {
			h.Restart()
		}
	}

	if w.paused != "" {
		// A compactor stopped mid-way. While its claim is fresh, a host
		// whose own clock is an hour ahead must still find it busy.
		held, err := w.lockHeld(o)
		if err != nil {
			return w, err
		}
		if held {
			var out *rnOutcome
			w.s.Go(c3, "c3-fresh", func() {
				_, _, _ = rename.Load(rnCtx, c3.FS(), rnName, w.opts("c3"))
				c, err := rename.Begin(rnCtx, c3.FS(), rnName, rnHealGen-1, w.opts("c3"))
				out = &rnOutcome{host: "c3", gen: rnHealGen - 1, phase: "fresh", err: err, done: true}
				if err == nil {
					out.claim = c.Info().ClaimID
					_ = c.Abort(rnCtx)
				}
			})
			if err := w.s.Run(1_000_000); err != nil {
				return w, err
			}
			if out == nil || !errors.Is(out.err, rename.ErrBusy) {
				return w, fmt.Errorf("R5: a fresh claim of the paused %s was taken over by a host whose clock is an hour ahead: %+v", w.paused, out)
			}
		}
	}

	// The server's clock moves past StaleAge: every stopped claim is stale.
	w.s.Advance(rnStaleAge + time.Minute)
	w.s.Go(r, "r2", func() { w.read(r, 1) })
	if err := w.s.Run(1_000_000); err != nil {
		return w, err
	}
	before, err := w.final(o)
	switch {
	case errors.Is(err, errRNAbsent):
		w.absentAfterFaults = true
		if slices.ContainsFunc(w.outcomes, func(o *rnOutcome) bool { return o.done && o.err == nil }) {
			return w, fmt.Errorf("R4: the name is absent after the faults, yet a compaction was acknowledged")
		}
	case err != nil:
		return w, err
	default:
		if err := w.checkDurable(before, "after the faults"); err != nil {
			return w, err
		}
	}

	// A new compaction on a host whose clock is an hour behind must take
	// any stopped claim over and succeed (R5); the paused compactor then
	// wakes and must not undo it (R4).
	var heal *rnOutcome
	w.s.Go(c4, "heal", func() { heal = w.compact(c4, rnHealGen, "heal") })
	if err := w.s.Run(1_000_000); err != nil {
		return w, err
	}
	if heal == nil || heal.err != nil {
		return w, fmt.Errorf("R5: the compaction after StaleAge failed: %+v", heal)
	}
	if w.paused != "" {
		ph := w.s.Host(w.paused)
		ph.Resume()
		w.s.Go(r, "r3", func() { w.read(r, 1) })
		if err := w.s.Run(1_000_000); err != nil {
			return w, err
		}
		w.s.Go(r, "r4", func() { w.read(r, 1) })
		if err := w.s.Run(1_000_000); err != nil {
			return w, err
		}
	}
	after, err := w.final(o)
	if err != nil {
		return w, err
	}
	if after.Generation != rnHealGen || after.Host != "c4" {
		return w, fmt.Errorf("R4: after the healing compaction the name holds generation %d by %s, want %d by c4", after.Generation, after.Host, rnHealGen)
	}
	if err := w.checkDurable(after, "at the end"); err != nil {
		return w, err
	}
	if err := w.checkClean(o); err != nil {
		return w, err
	}
	return w, w.check()
}

// lockHeld reports whether a claim holds the lock, as the server sees it.
func (w *rnWorld) lockHeld(o *nfssim.Host) (bool, error) {
	var names []string
	var err error
	w.s.Go(o, "oracle", func() {
		fsys := o.FS()
		if f, ferr := fsys.OpenFile(".", vfs.ReadOnly, 0); ferr == nil {
			_ = f.Close()
		}
		names, err = fsys.ReadDir(rnName + rename.LockSuffix)
	})
	if rerr := w.s.Run(1_000_000); rerr != nil {
		return false, rerr
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return len(names) > 0, err
}

// final loads the version from the oracle host, which caches nothing
// stale (it revalidates), and checks it is complete (R1).
func (w *rnWorld) final(o *nfssim.Host) (rename.Info, error) {
	var info rename.Info
	var data []byte
	var err error
	w.s.Go(o, "final", func() { info, data, err = rename.Load(rnCtx, o.FS(), rnName, w.opts("o")) })
	if rerr := w.s.Run(1_000_000); rerr != nil {
		return info, rerr
	}
	if errors.Is(err, fs.ErrNotExist) && w.v.first {
		return info, errRNAbsent // nothing installed yet
	}
	if err != nil {
		return info, fmt.Errorf("R1: the final version does not load: %w", err)
	}
	if !bytes.Equal(data, rnPayload(info.Generation, info.Host)) {
		return info, fmt.Errorf("R1: the final version (generation %d by %s) is not a claim's whole payload", info.Generation, info.Host)
	}
	return info, nil
}

// checkDurable: the version at the name is at least every acknowledged
// generation (R4).
func (w *rnWorld) checkDurable(fin rename.Info, when string) error {
	for _, o := range w.outcomes {
		if o.done && o.err == nil && fin.Generation < o.gen {
			return fmt.Errorf("R4: %s the name holds generation %d, but %s's compaction of generation %d was acknowledged", when, fin.Generation, o.host, o.gen)
		}
	}
	return nil
}

// checkClean: Sweep leaves nothing but the version, an empty lock and
// .nfs files (R5).
func (w *rnWorld) checkClean(o *nfssim.Host) error {
	var names, lock []string
	var err error
	// Pins of readers that crashed are litter after PinMaxAge.
	w.s.Advance(rename.PinMaxAge + time.Minute)
	w.s.Go(o, "sweep", func() {
		fsys := o.FS()
		if _, err = rename.Sweep(rnCtx, fsys, rnName, w.opts("o")); err != nil {
			return
		}
		if f, ferr := fsys.OpenFile(".", vfs.ReadOnly, 0); ferr == nil {
			_ = f.Close()
		}
		if names, err = fsys.ReadDir("."); err != nil {
			return
		}
		lock, err = fsys.ReadDir(rnName + rename.LockSuffix)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	})
	if rerr := w.s.Run(1_000_000); rerr != nil {
		return rerr
	}
	if err != nil {
		return fmt.Errorf("R5: sweep: %w", err)
	}
	for _, n := range names {
		if n != rnName && n != rnName+rename.LockSuffix && !strings.HasPrefix(n, ".nfs") {
			return fmt.Errorf("R5: litter left after Sweep: %q (directory %v)", n, names)
		}
	}
	for _, n := range lock {
		if !strings.HasPrefix(n, ".nfs") {
			return fmt.Errorf("R5: the lock still holds %q after the healing compaction", n)
		}
	}
	return nil
}

// errRNAbsent is final's answer when the name is absent.
var errRNAbsent = errors.New("the name is absent")

// check verifies the history: R1, R2, R3, R4 (freshness), R6.
func (w *rnWorld) check() error {
	winners := map[uint64]uint64{} // generation -> claim id seen installed
	won := func(gen, claim uint64, what string) error {
		if c, ok := winners[gen]; ok && c != claim {
			return fmt.Errorf("R3: two installs of generation %d won: claims %016x and %016x (%s)", gen, c, claim, what)
		}
		winners[gen] = claim
		return nil
	}
	last := map[string]uint64{}
	for _, o := range w.obs {
		if o.err != nil {
			return fmt.Errorf("R1/R2: read on %s: %w", o.host, o.err)
		}
		if o.info.Generation < last[o.host] {
			return fmt.Errorf("R2: reader on %s saw generation %d after %d", o.host, o.info.Generation, last[o.host])
		}
		last[o.host] = o.info.Generation
		if err := won(o.info.Generation, o.info.ClaimID, "read"); err != nil {
			return err
		}
	}
	for _, o := range w.outcomes {
		if !o.done {
			continue // its host crashed under it
		}
		switch {
		case o.err == nil:
			if o.phase == "race" || o.phase == "heal" {
				if err := won(o.gen, o.claim, o.host+" acknowledged"); err != nil {
					return err
				}
			}
			// R4, freshness: on NFSv4 (whose change attribute always
			// shows a directory change) every read that started after
			// the acknowledgment sees it or newer. On v3 a host whose
			// last look at the directory was in the same timestamp tick
			// as the install may keep its old name while the old version
			// is still alive (pinned by a reader, N3+N5): OpenLatest
			// documents it, the Reader never goes back (R2), and R4's
			// durability is checked from a fresh host (checkDurable).
			for _, r := range w.obs {
				if w.v.v4 && r.start > o.tick && r.info.Generation < o.gen {
					return fmt.Errorf("R4: a read started after %s's compaction of generation %d was acknowledged saw generation %d", o.host, o.gen, r.info.Generation)
				}
			}
		case errors.Is(o.err, rename.ErrBusy):
		case errors.Is(o.err, rename.ErrFenced):
			var fe *rename.FencedError
			if !errors.As(o.err, &fe) || fe.Installed.Generation < o.gen {
				return fmt.Errorf("R6: %s was fenced without a newer version installed: %v", o.host, o.err)
			}
		case errors.Is(o.err, rename.ErrLost):
			if o.host != w.paused {
				return fmt.Errorf("R6: %s lost its claim though it never stopped: %v", o.host, o.err)
			}
		default:
			return fmt.Errorf("R6: %s's compaction of generation %d failed: %v", o.host, o.gen, o.err)
		}
	}
	return nil
}

// rnKeeps returns the Keep masks to try for a crash with n dirty units:
// every subset, or with more than rnMaxKeepBits units every subset of the
// first rnMaxKeepBits (the rest lost) plus all kept.
func rnKeeps(n int) []uint64 {
	if n <= rnMaxKeepBits {
		out := make([]uint64, 0, 1<<n)
		for m := uint64(0); m < 1<<n; m++ {
			out = append(out, m)
		}
		return out
	}
	out := make([]uint64, 0, 1<<rnMaxKeepBits+1)
	for m := uint64(0); m < 1<<rnMaxKeepBits; m++ {
		out = append(out, m)
	}
	return append(out, ^uint64(0))
}

// rnPlans lists every fault to try at the points of a fault-free run.
func rnPlans(points []nfssim.Point) []rnPlan {
	var plans []rnPlan
	for i, p := range points {
		for _, k := range rnKeeps(p.DirtyUnits) {
			plans = append(plans, rnPlan{Kind: nfssim.CrashHost, At: i, Keep: k})
		}
		if p.Kind == nfssim.PointRPC {
			plans = append(plans, rnPlan{Kind: nfssim.DropReply, At: i}, rnPlan{Kind: nfssim.DropReply, At: i, NoDRC: true})
		}
		plans = append(plans, rnPlan{Kind: nfssim.CrashServer, At: i})
		if p.Host == "c1" || p.Host == "c2" {
			plans = append(plans, rnPlan{Kind: nfssim.PauseHost, At: i})
		}
	}
	return plans
}

// TestCrashEnumRename enumerates, for each variant and seed, every fault of
// rnPlans at every point of the fault-free run of two compactors and a
// reader, and checks R1-R6 after each (docs/design.md, rename invariants
// R1-R6). A failure prints the replay flag.
func TestCrashEnumRename(t *testing.T) {
	deep := *renameDeep || rnEnvDeep()
	seeds := *renameSeeds
	if seeds <= 0 {
		seeds = 2
		if deep {
			seeds = 6
		}
	}
	if *renameOnly != "" {
		rnReplay(t, *renameOnly)
		return
	}
	var mu sync.Mutex
	total := 0
	t.Run("variants", func(t *testing.T) {
		for _, v := range rnVariants() {
			if v.deepOnly && !deep {
				continue
			}
			t.Run(v.name, func(t *testing.T) {
				t.Parallel()
				states := 0
				byKind := map[string]int{}
				outcomes := map[string]int{}
				for seed := uint64(1); seed <= uint64(seeds); seed++ {
					w, err := rnRun(v, seed, rnPlan{}, nil)
					if err != nil {
						t.Fatalf("fault-free run: %v\nreplay: go test ./proofs -run 'TestCrashEnumRename' -rename.plan '%s/%d/none'", err, v.name, seed)
					}
					points := w.points
					states++
					for _, p := range rnPlans(points) {
						w, err := rnRun(v, seed, p, points)
						if err != nil {
							t.Fatalf("%v\nreplay: go test ./proofs -run 'TestCrashEnumRename' -v -rename.plan '%s/%d/%s'", err, v.name, seed, p)
						}
						states++
						byKind[rnKindName(p)]++
						for _, o := range w.outcomes {
							if o.phase == "race" {
								outcomes[rnOutcomeClass(o)]++
							}
						}
						if w.absentAfterFaults {
							outcomes["absent-after-faults"]++
						}
					}
				}
				t.Logf("%s: explored %d states over %d seeds (%v); compactions: %v", v.name, states, seeds, rnKinds(byKind), rnKinds(outcomes))
				mu.Lock()
				total += states
				mu.Unlock()
			})
		}
	})
	t.Logf("rename: explored %d states in all", total)
}

// rnOutcomeClass names how a compaction ended, for the log.
func rnOutcomeClass(o *rnOutcome) string {
	switch {
	case !o.done:
		return "crashed"
	case o.err == nil:
		return "installed"
	case errors.Is(o.err, rename.ErrBusy):
		return "busy"
	case errors.Is(o.err, rename.ErrFenced):
		return "fenced"
	case errors.Is(o.err, rename.ErrLost):
		return "lost"
	case errors.Is(o.err, rename.ErrUnknown):
		return "unknown"
	}
	return "error"
}

func rnKindName(p rnPlan) string {
	s := p.String()
	k, _, _ := strings.Cut(s, "@")
	return k
}

func rnKinds(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

func rnReplay(t *testing.T, spec string) {
	parts := strings.SplitN(spec, "/", 3)
	if len(parts) != 3 {
		t.Fatalf("-rename.plan %q: want variant/seed/plan", spec)
	}
	i := slices.IndexFunc(rnVariants(), func(v rnVariant) bool { return v.name == parts[0] })
	if i < 0 {
		t.Fatalf("-rename.plan: unknown variant %q", parts[0])
	}
	var seed uint64
	if _, err := fmt.Sscan(parts[1], &seed); err != nil {
		t.Fatalf("-rename.plan: bad seed %q", parts[1])
	}
	plan, err := rnParsePlan(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	v := rnVariants()[i]
	w, err := rnRun(v, seed, rnPlan{}, nil)
	if err != nil && plan.Kind != nfssim.NoFault {
		t.Fatalf("fault-free run: %v", err)
	}
	points := w.points
	if plan.Kind != nfssim.NoFault {
		w, err = rnRun(v, seed, plan, points)
	}
	for i, p := range w.points {
		t.Logf("point %d: %v", i, p)
	}
	for _, o := range w.outcomes {
		t.Logf("outcome: %s %s gen %d claim %016x tick %d: %v", o.phase, o.host, o.gen, o.claim, o.tick, o.err)
	}
	for _, o := range w.obs {
		t.Logf("read on %s at %d: gen %d by %s claim %016x: %v", o.host, o.start, o.info.Generation, o.info.Host, o.info.ClaimID, o.err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// rnEnvDeep reads NFSINDEX_DEEP=1 the package's one way.
func rnEnvDeep() bool { return crashenumEnvDeep() }
