package proofs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/appendlog"
	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/internal/explore"
	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
)

const (
	alDir      = "idx"
	alWriter   = "w"
	alMaxReads = 96
)

// lrec is a record of the log model: its type, payload and the index of
// the record it continues (-1: none).
type lrec struct {
	typ     uint8
	payload string
	prev    int
}

// lstate is a committed state of a log: its records in order. Refs follow
// from the payload sizes (frames are back to back from DataStart).
type lstate []lrec

func (s lstate) refs() []appendlog.Ref {
	out := make([]appendlog.Ref, len(s))
	off := int64(appendlog.DataStart)
	for i, r := range s {
		out[i] = appendlog.Ref(off)
		off += appendlog.FrameSize(len(r.payload))
	}
	return out
}

func (s lstate) used() int64 {
	off := int64(appendlog.DataStart)
	for _, r := range s {
		off += appendlog.FrameSize(len(r.payload))
	}
	return off
}

func (s lstate) String() string {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range s {
		if i > 0 {
			b.WriteString(" ")
		}
		tag, _, _ := strings.Cut(r.payload, "|")
		fmt.Fprintf(&b, "%s/%d", tag, len(r.payload))
		if r.prev >= 0 {
			fmt.Fprintf(&b, "<-%d", r.prev)
		}
	}
	b.WriteString("]")
	return b.String()
}

func (s lstate) equal(t lstate) bool { return slices.Equal(s, t) }

func (s lstate) hasPrefix(p lstate) bool { return len(p) <= len(s) && slices.Equal(s[:len(p)], p) }

// chain returns the indexes of the chain that starts at record i.
func (s lstate) chain(i int) []int {
	out := []int{i}
	for steps := 0; steps < len(s); steps++ {
		next := -1
		for j := i + 1; j < len(s); j++ {
			if s[j].prev == i {
				next = j
				break
			}
		}
		if next < 0 {
			break
		}
		out = append(out, next)
		i = next
	}
	return out
}

func lconcat(a, b lstate) lstate { return append(append(lstate(nil), a...), b...) }

// alPayload is a payload of n bytes tagged with tag.
func alPayload(tag string, n int) string {
	p := tag + "|" + strings.Repeat(tag[len(tag)-1:], max(n-len(tag)-1, 0))
	return p[:max(n, len(tag)+1)]
}

// alGroup returns the records operation i of kind adds to state w.
//
//	single  one 200-byte record: group commit of 1
//	group   three records (100, 700, 300 bytes) in one commit, crossing
//	        sector and page boundaries: group commit of several
//	chain   a continuation of the tail of the chain that starts at the
//	        base record (its next word is set in place after the group's
//	        sync: the two-sync commit) and one more record
//	pair    two records, the first ending on a sector boundary
//	retry   (commitOp) the first record of the last commit that did not
//	        return nil, appended again with the same bytes: what a caller
//	        that retries does, and the bytes a zombie needs
func alGroup(kind string, i int, w lstate) lstate {
	tag := func(j int) string { return fmt.Sprintf("op%d.%d", i, j) }
	switch kind {
	case "single":
		return lstate{{1, alPayload(tag(0), 200), -1}}
	case "group":
		return lstate{{1, alPayload(tag(0), 100), -1}, {1, alPayload(tag(1), 700), -1}, {1, alPayload(tag(2), 300), -1}}
	case "chain":
		ch := w.chain(0)
		return lstate{{2, alPayload(tag(0), 150), ch[len(ch)-1]}, {1, alPayload(tag(1), 60), -1}}
	case "pair":
		// After the base record (whose frame ends at 4264) the first frame
		// ends exactly on the sector boundary 4608, so a crash on a local
		// disk can keep the second record and lose the first.
		return lstate{{1, alPayload(tag(0), 296), -1}, {1, alPayload(tag(1), 700), -1}}
	}
	panic("unknown operation kind " + kind)
}

// alBase is the state set up before the scenario is armed: one record that
// chains continue.
var alBase = lstate{{3, alPayload("base", 120), -1}}

// alOp is one Commit of the history (or a recovery).
type alOp struct {
	kind       string
	base       lstate // the writer's state when it began
	delta      lstate // what it adds
	begin, end int    // ticks; end 0: never returned
	err        error
}

// alObs is one observation by a reader: a Refresh (persistent reader) or
// a fresh open, then a Scan and the chain from the base record.
type alObs struct {
	reader     string // "persistent.HOST.PHASE", "fresh.HOST" or "recovery"
	host       string
	fresh      bool // a freshly opened Reader
	v3         bool // on an NFSv3 host
	begin, end int
	state      lstate
	chain      []int // indexes of the chain from record 0 as Chain returned it
	info       appendlog.Info
	err        error
}

// alPossible is a state that became possible (committed or maybe committed)
// at a tick.
type alPossible struct {
	tick  int
	state lstate
}

type alHistory struct {
	r          *explore.Run
	w          lstate // the writer's committed state, as far as it knows
	ops        []*alOp
	obs        []alObs
	poss       []alPossible
	recovered  []alObs // what each in-scenario recovery found
	pending    *alOp   // the last commit, while it has not returned nil
	scripted   bool    // the scenario's own crash of the writer happened
	scriptOff  bool    // no more scripted crashes
	srvCrashes []int   // ticks of the server crashes the scenario scripted
	wCrashes   []int   // ticks of the writer crashes the scenario scripted
}

// writerCrashedAfter reports whether the writer's host crashed after
// tick: a reader on that host (one machine, local disk) may have read its
// unsynced data, which the crash took with it.
func (h *alHistory) writerCrashedAfter(tick int) bool {
	c := append([]int(nil), h.wCrashes...)
	if t, ok := h.r.Fired(); ok && h.r.Plan.Kind == explore.CrashHost {
		c = append(c, t)
	}
	return slices.ContainsFunc(c, func(c int) bool { return c > tick })
}

// serverCrashedBefore reports whether the server crashed (the plan's fault
// or a scripted one) before tick.
func (h *alHistory) serverCrashedBefore(tick int) bool {
	return h.r.ServerCrashedBefore(tick) || slices.ContainsFunc(h.srvCrashes, func(c int) bool { return c < tick })
}

// serverCrashedAfter reports whether the server crashed after tick.
func (h *alHistory) serverCrashedAfter(tick int) bool {
	return h.r.ServerCrashedAfter(tick) || slices.ContainsFunc(h.srvCrashes, func(c int) bool { return c > tick })
}

// alScanState reads a log with a Reader (Scan, then Chain from the base
// record) and returns the state it shows. It fails on a ref the model
// does not place there or a prev that names no record.
func alScanState(rd *appendlog.Reader) (lstate, []int, error) {
	var s lstate
	idx := map[appendlog.Ref]int{}
	err := rd.Scan(enumCtx, func(rec appendlog.Record) error {
		prev := -1
		if rec.Prev != 0 {
			p, ok := idx[rec.Prev]
			if !ok {
				return fmt.Errorf("record %d continues %d, which is no record", rec.Ref, rec.Prev)
			}
			prev = p
		}
		idx[rec.Ref] = len(s)
		s = append(s, lrec{rec.Type, string(rec.Payload), prev})
		return nil
	})
	if err != nil {
		return s, nil, err
	}
	for i, ref := range s.refs() {
		if idx[ref] != i {
			return s, nil, fmt.Errorf("record %d is not at the offset its predecessors imply (%d)", i, ref)
		}
	}
	if uint64(len(s)) != rd.Info().Records || s.used() != rd.Info().Used {
		return s, nil, fmt.Errorf("scan found %d records ending at %d, header says %d ending at %d", len(s), s.used(), rd.Info().Records, rd.Info().Used)
	}
	var chain []int
	if len(s) > 0 {
		recs, err := rd.Chain(enumCtx, s.refs()[0])
		if err != nil {
			return s, nil, fmt.Errorf("chain: %w", err)
		}
		for _, rec := range recs {
			chain = append(chain, idx[rec.Ref])
		}
	}
	return s, chain, nil
}

// alOpenScan opens host's log freshly on fsys and scans it.
func alOpenScan(fsys vfs.FS) (lstate, []int, appendlog.Info, error) {
	rd, err := appendlog.OpenReader(enumCtx, fsys, alDir, alWriter, appendlog.Options{Rand: rand.New(rand.NewPCG(2, 2))})
	if err != nil {
		return nil, nil, appendlog.Info{}, err
	}
	s, ch, err := alScanState(rd)
	info := rd.Info()
	if cerr := rd.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return s, ch, info, err
}

// commitOp appends operation i's records on w and commits them.
func (h *alHistory) commitOp(w *appendlog.Writer, i int, kind string) error {
	r := h.r
	var delta lstate
	if kind == "retry" {
		for j := len(h.ops) - 1; j >= 0 && delta == nil; j-- {
			if op := h.ops[j]; op.kind != "recover" && (op.end == 0 || op.err != nil) {
				delta = op.delta[:1:1]
			}
		}
		if delta == nil {
			delta = alGroup("single", i, h.w)
		}
	} else {
		delta = alGroup(kind, i, h.w)
	}
	op := &alOp{kind: kind, base: h.w, delta: delta, begin: r.Tick()}
	h.ops = append(h.ops, op)
	h.pending = op
	next := lconcat(h.w, delta)
	h.poss = append(h.poss, alPossible{op.begin, next})
	refs := next.refs()
	for j, rec := range delta {
		var ref appendlog.Ref
		var err error
		if rec.prev >= 0 {
			ref, err = w.AppendAfter(enumCtx, refs[rec.prev], rec.typ, []byte(rec.payload))
		} else {
			ref, err = w.Append(rec.typ, []byte(rec.payload))
		}
		if err != nil {
			op.end, op.err = r.Tick(), err
			return err
		}
		if want := refs[len(h.w)+j]; ref != want {
			r.Failf("op %d: record %d appended at %d, the model places it at %d", i, j, ref, want)
		}
	}
	err := w.Commit(enumCtx)
	op.end, op.err = r.Tick(), err
	r.Logf("writer: op %d %s: commit: %v", i, kind, err)
	if err == nil {
		h.w, h.pending = next, nil
	}
	return err
}

// reader reads the log on rh until the writer is done (done reports it),
// alternating a long-lived Reader (Refresh, then Scan: its state may be
// stale but never goes back) with a fresh OpenReader (close-to-open: it
// sees every commit that returned before it opened).
func (h *alHistory) reader(rh *nfssim.Host, phase int, done func() bool) {
	r := h.r
	name := fmt.Sprintf("persistent.%s.%d", rh.Name(), phase)
	rd, err := appendlog.OpenReader(enumCtx, rh.FS(), alDir, alWriter, appendlog.Options{Rand: rand.New(rand.NewPCG(3, 3))})
	if err != nil {
		r.Failf("reader: open: %v", err)
		return
	}
	defer rd.Close()
	for j := 0; j < alMaxReads; j++ {
		last := done()
		o := alObs{begin: r.Tick(), host: rh.Name(), v3: rh.Mount().Version == nfssim.V3 && !r.Profile.OneMachine}
		if j%2 == 0 {
			o.reader = name
			if o.info, o.err = rd.Refresh(enumCtx); o.err == nil {
				o.state, o.chain, o.err = alScanState(rd)
			}
		} else {
			o.reader, o.fresh = "fresh."+rh.Name(), true
			o.state, o.chain, o.info, o.err = alOpenScan(rh.FS())
		}
		o.end = r.Tick()
		r.Logf("reader %s: %v chain %v err %v", o.reader, o.state, o.chain, o.err)
		h.obs = append(h.obs, o)
		if last {
			return
		}
	}
}

// recoverOp restarts the log's writer after a crash (Open recovers it) and
// records what it found; it returns the new Writer.
func (h *alHistory) recoverOp(fsys vfs.FS, rng *rand.Rand) (w *appendlog.Writer, err error) {
	r := h.r
	op := &alOp{kind: "recover", base: h.w, begin: r.Tick()}
	h.ops = append(h.ops, op)
	w, err = appendlog.Open(enumCtx, fsys, alDir, alWriter, appendlog.Options{Rand: rng})
	if err != nil {
		op.end, op.err = r.Tick(), err
		return nil, fmt.Errorf("recovery: %w", err)
	}
	o := alObs{reader: "recovery", host: alWriter, begin: op.begin}
	o.state, o.chain, o.info, o.err = alOpenScan(fsys)
	o.end = r.Tick()
	op.end = o.end
	if o.err != nil {
		return nil, fmt.Errorf("scan after recovery: %w", o.err)
	}
	if o.info != w.Info() {
		return nil, fmt.Errorf("recovered writer says %+v, a reader on its host %+v", w.Info(), o.info)
	}
	r.Logf("recovery: %v", o.state)
	h.recovered = append(h.recovered, o)
	// What recovery found must be what the writer had committed, or that
	// plus the commit the crash interrupted; from now on it is the state.
	if !h.maybe(o.state) {
		return nil, fmt.Errorf("recovery found %v, which no commit produced (writer had %v)", o.state, h.w)
	}
	h.w, h.pending = o.state, nil
	return w, nil
}

// maybe reports whether s may be the committed state now: the writer's
// state, or that plus the commit that has not returned nil.
func (h *alHistory) maybe(s lstate) bool {
	return s.equal(h.w) || (h.pending != nil && s.equal(lconcat(h.pending.base, h.pending.delta)))
}

// since returns the tick at which s first became possible (a commit that
// produces it began), or 0.
func (h *alHistory) since(s lstate) int {
	for _, p := range h.poss {
		if p.state.equal(s) {
			return p.tick
		}
	}
	return 0
}

// possibleBy reports whether some commit that had begun by tick produces s.
func (h *alHistory) possibleBy(s lstate, tick int) bool {
	for _, p := range h.poss {
		if p.tick <= tick && p.state.equal(s) {
			return true
		}
	}
	return false
}

// appendlogScenario: host w's log holds one base record before the
// scenario; w then commits one group per kind while a reader on host r (on
// w itself for a local disk) reads the log again and again. With crashKeep
// set, the scenario itself crashes w at the first commit's Datasync,
// keeping the dirty units *crashKeep selects (unit 0 is the header copy,
// the others the frames), restarts it, recovers the log (Open) and makes
// the remaining commits: the enumerated fault can then also land anywhere
// in the recovery.
func appendlogScenario(name string, kinds []string, crashKeep *uint64) explore.Scenario {
	return explore.Scenario{
		Name:    name,
		Ops:     len(kinds),
		Writers: []string{alWriter},
		Run: func(r *explore.Run) (func() error, error) {
			w := r.AddHost(alWriter)
			rh := r.ReaderHost("r", w)
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
			recoverRand, checkRand := r.Rand(), r.Rand()
			if crashKeep != nil {
				r.Script(func(p nfssim.Point) nfssim.Fault {
					if h.scriptOff || p.Host != alWriter || p.Kind != nfssim.PointCall || p.Call != "Datasync" {
						return nfssim.Fault{}
					}
					h.scripted, h.scriptOff = true, true
					h.wCrashes = append(h.wCrashes, r.Tick())
					return nfssim.Fault{Kind: nfssim.CrashHost, Keep: *crashKeep}
				})
			}
			r.Arm()
			phase := func(n int, open func() (*appendlog.Writer, error), kinds []string, first int) error {
				done := false
				r.Go(w, "writer", func() {
					defer func() { done = true }()
					lw, err := open()
					if err != nil {
						r.Failf("writer: %w", err)
						return
					}
					for k, kind := range kinds {
						if err := h.commitOp(lw, first+k, kind); err != nil {
							return
						}
					}
				})
				r.Go(rh, "reader", func() { h.reader(rh, n, func() bool { return done }) })
				return r.Sim.Run(r.MaxSteps())
			}
			if crashKeep == nil {
				if err := phase(1, func() (*appendlog.Writer, error) { return lw, nil }, kinds, 1); err != nil {
					return nil, err
				}
				return func() error { return h.check(w, checkRand) }, nil
			}
			if err := phase(1, func() (*appendlog.Writer, error) { return lw, nil }, kinds[:1], 1); err != nil {
				return nil, err
			}
			h.scriptOff = true
			// The writer is down unless the enumerated fault took the
			// scripted point (a server crash there): then it goes on.
			open := func() (*appendlog.Writer, error) { return lw, nil }
			if w.Down() {
				w.Restart()
				r.Logf("writer restarted")
				open = func() (*appendlog.Writer, error) { return h.recoverOp(w.FS(), recoverRand) }
			}
			if err := phase(2, open, kinds[1:], 2); err != nil {
				return nil, err
			}
			return func() error { return h.check(w, checkRand) }, nil
		},
	}
}

// check is the appendlog checker (invariants L1-L8 of docs/design.md):
//
//   - without a crash of the writer every commit returns nil;
//   - a reader only returns a state that a commit begun by then produces,
//     whole: records at the offsets the model places them, each chain a
//     prefix of the model's chain;
//   - a long-lived Reader never goes back; a freshly opened one sees every
//     commit that returned before it opened (close-to-open);
//   - after recovery the log holds the last acknowledged state or that
//     plus the commit that never returned, and every state a reader (or an
//     in-scenario recovery) returned is a prefix of it: nothing a reader
//     saw disappears, and nothing recovery dropped comes back (a zombie);
//     a server crash excepted for what it saw before it (N10);
//   - after recovery every continuation is linked, the log Checks, the
//     writer can commit again, and that commit and every acknowledged one
//     survive a crash of every host and of the server.
func (h *alHistory) check(w *nfssim.Host, rng *rand.Rand) (err error) {
	r := h.r
	crashed := h.scripted
	if _, ok := r.Fired(); ok && r.Plan.Kind == explore.CrashHost {
		crashed = true
	}
	for i, op := range h.ops {
		if !crashed && (op.end == 0 || op.err != nil) {
			return fmt.Errorf("operation %d (%s) failed without a crash of its host: %v", i+1, op.kind, op.err)
		}
	}
	last := map[string]alObs{}
	for _, o := range h.obs {
		if o.err != nil && !o.fresh && h.serverCrashedBefore(o.end) {
			// The long-lived Reader had returned a commit that was still
			// an unstable write when the server crashed (N10): until the
			// writer resends it, the Reader reports ErrRegressed (its
			// header went back) or ErrConflict (the writer died too, and
			// its recovered successor wrote that generation again).
			// Tolerated, and counted. A *CorruptError is tolerated here
			// too but is a finding (issue 4 report): the log is not
			// damaged, this Reader must reopen, so it should be
			// ErrRegressed. Two paths still return it after 3d56630:
			// Refresh's "used went from X back to Y" (ErrHeader) when the
			// dead writer's successor committed other data, and Scan's
			// "file ends at X, before Y" (ErrFrame) while the lost
			// commit is still this Reader's state.
			switch {
			case errors.Is(o.err, atomicrec.ErrRegressed):
				r.Note("N10 reader ErrRegressed")
				continue
			case errors.Is(o.err, atomicrec.ErrConflict):
				r.Note("N10 reader ErrConflict")
				continue
			case errors.Is(o.err, appendlog.ErrCorrupt):
				r.Note("N10 reader ErrCorrupt")
				continue
			}
		}
		if o.err != nil {
			return fmt.Errorf("reader %s (ticks %d-%d): %v", o.reader, o.begin, o.end, o.err)
		}
		if !h.possibleBy(o.state, o.end) {
			return fmt.Errorf("reader %s (ticks %d-%d) returned %v, which no commit begun by then produces", o.reader, o.begin, o.end, o.state)
		}
		if want := o.state.chain(0); !slices.Equal(o.chain, want[:min(len(want), len(o.chain))]) {
			return fmt.Errorf("reader %s (ticks %d-%d): chain %v is not a prefix of %v in %v", o.reader, o.begin, o.end, o.chain, want, o.state)
		}
		if o.fresh {
			for i, op := range h.ops {
				if op.kind != "recover" && op.end != 0 && op.err == nil && op.end < o.begin && !o.state.hasPrefix(lconcat(op.base, op.delta)) {
					if o.v3 {
						// NFSv3 compares mtime, ctime and size on open; the
						// server stamps them with 4 ms granularity, so a
						// host that cached the file between a commit's
						// frame and header WRITEs of one tick keeps the old
						// header page: close-to-open is not fresh on v3
						// (N3). Counted, not failed: freshness is the
						// engine's job (brief §2.5), not appendlog's.
						r.Note("N3 stale v3 reopen")
						break
					}
					return fmt.Errorf("%s reader (ticks %d-%d) returned %v, without commit %d that returned at tick %d", o.reader, o.begin, o.end, o.state, i+1, op.end)
				}
			}
		} else if p, ok := last[o.reader]; ok && !o.state.hasPrefix(p.state) && !h.serverCrashedBefore(o.end) && !(o.host == alWriter && h.writerCrashedAfter(p.begin)) {
			return fmt.Errorf("reader %s went back from %v to %v (ticks %d-%d)", o.reader, p.state, o.state, o.begin, o.end)
		}
		last[o.reader] = o
	}
	// Recovery by the writer's host, then what a fresh host sees.
	if w.Down() {
		w.Restart()
	}
	lw, err := appendlog.Open(enumCtx, w.FS(), alDir, alWriter, appendlog.Options{Rand: rng})
	if err != nil {
		return fmt.Errorf("recovery: %v", err)
	}
	if err := lw.Check(enumCtx); err != nil {
		return fmt.Errorf("check after recovery: %v", err)
	}
	final, chain, info, err := alOpenScan(r.FreshHost().FS())
	switch {
	case err != nil:
		return fmt.Errorf("after recovery: %v", err)
	case info != lw.Info():
		return fmt.Errorf("after recovery: a fresh host sees %+v, the recovered writer %+v", info, lw.Info())
	case !h.maybe(final):
		return fmt.Errorf("after recovery: %v; the writer had committed %v (pending: %v)", final, h.w, h.pending != nil)
	case !slices.Equal(chain, final.chain(0)):
		return fmt.Errorf("after recovery: chain %v, want %v: a continuation is not linked", chain, final.chain(0))
	}
	for _, o := range append(append([]alObs(nil), h.obs...), h.recovered...) {
		// A reader may have cached a commit while it was an unstable
		// write: exempt what it returned if the server crashed after that
		// commit began (N10), even if the read came later from its cache.
		if o.host == alWriter && h.writerCrashedAfter(o.begin) {
			continue // read on the writer's machine, which then crashed
		}
		if o.err == nil && !final.hasPrefix(o.state) && !h.serverCrashedAfter(h.since(o.state)) {
			return fmt.Errorf("%s (ticks %d-%d) returned %v, which is not part of the recovered %v", o.reader, o.begin, o.end, o.state, final)
		}
	}
	// The recovered writer commits again; then a crash of everything.
	post := lconcat(final, lstate{{4, alPayload("post", 50), -1}})
	if _, err := lw.Append(4, []byte(post[len(post)-1].payload)); err != nil {
		return err
	}
	if err := lw.Commit(enumCtx); err != nil {
		return fmt.Errorf("commit after recovery: %v", err)
	}
	w.Crash(nfssim.Fault{})
	r.Sim.CrashServer(0)
	w.Restart()
	lw, err = appendlog.Open(enumCtx, w.FS(), alDir, alWriter, appendlog.Options{Rand: rng})
	if err != nil {
		return fmt.Errorf("recovery after a crash of everything: %v", err)
	}
	got, chain, info, err := alOpenScan(r.FreshHost().FS())
	switch {
	case err != nil:
		return fmt.Errorf("after a crash of everything: %v", err)
	case !got.equal(post) || info != lw.Info():
		return fmt.Errorf("after a crash of everything: %v (%+v), want the acknowledged %v (%+v)", got, info, post, lw.Info())
	case !slices.Equal(chain, got.chain(0)):
		return fmt.Errorf("after a crash of everything: chain %v, want %v", chain, got.chain(0))
	}
	return nil
}

func alKeep(m uint64) *uint64 { return &m }

func appendlogScenarios() []explore.Scenario {
	return []explore.Scenario{
		appendlogScenario("single1", []string{"single"}, nil),
		appendlogScenario("group1", []string{"group"}, nil),
		appendlogScenario("chain1", []string{"chain"}, nil),
		appendlogScenario("single2", []string{"single", "single"}, nil),
		appendlogScenario("group-chain2", []string{"group", "chain"}, nil),
		appendlogScenario("chain2", []string{"chain", "chain"}, nil),
		// The scripted crash keeps the header copy only: a valid header
		// whose group is missing, which recovery must overwrite.
		appendlogScenario("crash-header-recover2", []string{"group", "single"}, alKeep(0b1)),
		// It keeps the frames only: garbage past used_file_size, which the
		// next commit overwrites.
		appendlogScenario("crash-frames-recover2", []string{"group", "single"}, alKeep(^uint64(1))),
		// It keeps everything: the commit is complete on the server but
		// only as unstable writes (N10), which recovery finds valid.
		appendlogScenario("crash-unstable-recover2", []string{"group", "single"}, alKeep(^uint64(0))),
		// It keeps the header and the second record but loses the first
		// (a local disk's sector; NFS keeps or loses their page whole);
		// the recovered writer retries the first record with the same
		// bytes. If recovery left the uncommitted header in place, a crash
		// of the retry that keeps its frame but not its header would
		// complete that header's group: both records back (a zombie).
		appendlogScenario("crash-zombie-retry2", []string{"pair", "retry"}, alKeep(^uint64(0b10))),
		appendlogScenario("single-group-chain3", []string{"single", "group", "chain"}, nil),
		appendlogScenario("chain3", []string{"chain", "chain", "chain"}, nil),
		appendlogScenario("crash-header-recover3", []string{"group", "chain", "group"}, alKeep(0b1)),
		appendlogScenario("crash-frames-recover3", []string{"chain", "group", "single"}, alKeep(^uint64(1))),
		appendlogScenario("crash-unstable-recover3", []string{"group", "chain", "single"}, alKeep(^uint64(0))),
	}
}

// TestCrashEnumAppendlog explores every crash point, every subset of the
// writer's dirty units (sector tears on the local disk, page/wsize tears
// on NFS, every write-back order), every lost reply (with and without the
// DRC) and every server crash of 1-3 appendlog commits (group commit of 1
// and of 3 records, chained records, a writer that crashes and recovers)
// with a reader on another host (invariants L1-L8 of docs/design.md).
func TestCrashEnumAppendlog(t *testing.T) {
	crashenumExplore(t, appendlogScenarios())
}
