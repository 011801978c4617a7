package explore

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/nfsindex/nfsindex/nfssim"
)

// FaultKind is the kind of the one fault a run injects.
type FaultKind int

// Fault kinds, in the order Explore tries them at a point.
const (
	NoFault        FaultKind = iota
	CrashHost                // crash a writer host, keeping Plan.Keep of its dirty units
	DropReply                // lose the reply of an RPC and retransmit it (DRC on)
	DropReplyNoDRC           // the same with the duplicate request cache off
	CrashServer              // crash and restart the server
	numKinds
)

var kindNames = [numKinds]string{"none", "crash-host", "drop-reply", "drop-reply-nodrc", "crash-server"}

func (k FaultKind) String() string {
	if k >= 0 && k < numKinds {
		return kindNames[k]
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Plan is the fault of one run: Kind at armed point Point (0-based,
// counted from Run.Arm), with Keep the dirty units kept by a CrashHost.
type Plan struct {
	Kind  FaultKind
	Point int
	Keep  uint64
}

// String returns the plan in the form ParsePlan reads:
// "none", "crash-host@12:keep=0x5", "drop-reply@3", ...
func (p Plan) String() string {
	switch p.Kind {
	case NoFault:
		return "none"
	case CrashHost:
		return fmt.Sprintf("%s@%d:keep=%#x", p.Kind, p.Point, p.Keep)
	}
	return fmt.Sprintf("%s@%d", p.Kind, p.Point)
}

// ParsePlan parses the output of Plan.String.
func ParsePlan(s string) (Plan, error) {
	if s == "none" || s == "" {
		return Plan{}, nil
	}
	kind, rest, ok := strings.Cut(s, "@")
	if !ok {
		return Plan{}, fmt.Errorf("explore: plan %q: want kind@point[:keep=mask]", s)
	}
	var p Plan
	k := slices.Index(kindNames[:], kind)
	if k <= 0 {
		return Plan{}, fmt.Errorf("explore: plan %q: unknown fault kind %q", s, kind)
	}
	p.Kind = FaultKind(k)
	point, keep, hasKeep := strings.Cut(rest, ":keep=")
	n, err := strconv.Atoi(point)
	if err != nil || n < 0 {
		return Plan{}, fmt.Errorf("explore: plan %q: bad point %q", s, point)
	}
	p.Point = n
	if hasKeep {
		if p.Kind != CrashHost {
			return Plan{}, fmt.Errorf("explore: plan %q: keep applies to crash-host only", s)
		}
		if p.Keep, err = strconv.ParseUint(keep, 0, 64); err != nil {
			return Plan{}, fmt.Errorf("explore: plan %q: bad keep mask: %v", s, err)
		}
	}
	return p, nil
}

// Profile is a file-system model scenarios run under.
type Profile struct {
	// Name names the profile in results and replay commands.
	Name string
	// Config returns the simulation's configuration for a seed. The
	// enumerator sets Fault (and Server.DRCSize for DropReplyNoDRC).
	Config func(seed uint64) nfssim.Config
	// Mount is the mount of every host the scenario adds.
	Mount nfssim.Mount
	// OneMachine makes ReaderHost return the writer's host: readers are
	// processes of the same machine, sharing its page cache, as on a
	// local disk.
	OneMachine bool
}

// NFS is the network profile: Linux's default NFSv3 mount with rsize =
// wsize = 4096, so every write that spans pages is split into separate
// WRITEs at page/wsize boundaries (and, after a crash, kept or lost per
// 4096-byte page); the server serves READs in 512-byte pieces at
// different steps, so a read racing a write sees a mixture (N8).
func NFS() Profile {
	m := nfssim.DefaultMount()
	m.RSize, m.WSize = 4096, 4096
	return Profile{
		Name: "nfs",
		Config: func(seed uint64) nfssim.Config {
			c := nfssim.DefaultConfig(seed)
			c.Server.ReadTearUnit = 512
			return c
		},
		Mount: m,
	}
}

// LocalDisk is nfssim's local-disk model: no latency, crashes that keep or
// lose unsynced data per 512-byte sector (torn sectors, any order), and
// readers on the writer's machine. Its mount turns off the NFS client's
// widening of a write to its whole page (N9): on one machine the widened
// bytes are the disk's own, so keeping or losing them changes nothing,
// and leaving them out keeps a crash's sector subsets within
// Options.MaxKeepBits.
func LocalDisk() Profile {
	m := nfssim.LocalDiskMount()
	m.NoAlignWrite = true
	return Profile{Name: "local", Config: nfssim.LocalDiskConfig, Mount: m, OneMachine: true}
}

// Scenario is a small deterministic program of up to three operations on
// one or more hosts, with its checker.
type Scenario struct {
	// Name names the scenario in results and replay commands.
	Name string
	// Ops is the number of operations under test: the fast suite runs
	// scenarios of 1 and 2, the deep one those of 3.
	Ops int
	// Writers are the hosts whose crashes are enumerated (at their own
	// points, with every subset of their dirty units).
	Writers []string
	// DeepProfiles names the profiles under which a runner should explore
	// this scenario only in its deep mode (as it does for 3 operations):
	// where the subsets of many crash units make it slow.
	DeepProfiles []string
	// Run executes one run on r.Sim: it sets up the state, calls r.Arm
	// where the operations under test begin, runs them (tasks registered
	// with r.Go, then r.Sim.Run) and returns the checker, which the
	// enumerator calls with faults disarmed. The checker recovers (restarts
	// crashed hosts, reopens) and returns an error for any violation. An
	// error from Run itself is a failure too.
	Run func(r *Run) (check func() error, err error)
}

// Run is one execution of a scenario under one Plan.
type Run struct {
	// Sim is the run's simulation, fresh for every run.
	Sim *nfssim.Sim
	// Profile is the file-system model.
	Profile Profile
	// Seed is the run's seed: Sim's and Rand's.
	Seed uint64
	// Plan is the fault this run injects.
	Plan Plan

	rng      *rand.Rand
	armed    bool
	base     int
	tick     int
	points   []nfssim.Point
	expect   *nfssim.Point
	fired    bool
	firedAt  int
	firedPt  nfssim.Point
	script   func(nfssim.Point) nfssim.Fault
	trace    []string
	err      error
	nchecker int
	maxSteps int
	notes    map[string]int
}

// AddHost adds a host with the profile's mount. It panics on a duplicate
// name (a scenario bug).
func (r *Run) AddHost(name string) *nfssim.Host {
	h, err := r.Sim.AddHost(name, r.Profile.Mount)
	if err != nil {
		panic(fmt.Sprintf("explore: %v", err))
	}
	return h
}

// ReaderSlowdown is the RPC latency factor of a ReaderHost: a tenth of a
// writer's, so that a reader's reads (an open that revalidates, READs)
// land between every two RPCs of the writer.
const ReaderSlowdown = 0.1

// ReaderHost returns the host a reader should run on: writer itself under
// a OneMachine profile (where there is no latency and the scheduler
// interleaves the tasks step by step), else a new host called name with
// the profile's mount except that its RPCs take ReaderSlowdown of the
// usual latency and it mounts NFSv4.2: its change attribute notices every
// write, so every open sees the server's bytes of that moment, torn copies
// included. (A v3 reader compares mtimes, which the server stamps with 4 ms
// granularity, so it would mostly keep reading whole, stale pages, N3.)
func (r *Run) ReaderHost(name string, writer *nfssim.Host) *nfssim.Host {
	if r.Profile.OneMachine {
		return writer
	}
	m := r.Profile.Mount
	m.Slowdown = ReaderSlowdown
	m.Version = nfssim.V4
	h, err := r.Sim.AddHost(name, m)
	if err != nil {
		panic(fmt.Sprintf("explore: %v", err))
	}
	return h
}

// FreshHost adds a host with empty caches, for a checker: what the server
// (the disk, on a local-disk profile) holds is all it can see.
func (r *Run) FreshHost() *nfssim.Host {
	r.nchecker++
	return r.AddHost(fmt.Sprintf("check%d", r.nchecker))
}

// Rand returns a generator derived from the seed, for the scenario's own
// choices (atomicrec nonces, appendlog ids). Each call returns a new one,
// drawn from one stream, so the order of calls must be deterministic.
func (r *Run) Rand() *rand.Rand {
	return rand.New(rand.NewPCG(r.rng.Uint64(), r.rng.Uint64()))
}

// Arm starts numbering fault points: a plan's Point counts from here, so
// setup before Arm is never faulted.
func (r *Run) Arm() {
	r.base = r.Sim.Points()
	r.armed = true
}

// Disarm stops injecting faults (the checker runs disarmed).
func (r *Run) Disarm() { r.armed = false }

// Tick returns the next number of the run's event clock. Operations,
// observations and the fault share it, so a checker can tell what happened
// before what. Tasks run one at a time, so it needs no lock.
func (r *Run) Tick() int {
	r.tick++
	return r.tick
}

// Fired reports whether the plan's fault happened, and at which tick.
func (r *Run) Fired() (tick int, ok bool) { return r.firedAt, r.fired }

// FiredPoint returns the point where the plan's fault happened.
func (r *Run) FiredPoint() nfssim.Point { return r.firedPt }

// ServerCrashedBefore reports whether the server crashed (the plan's
// fault) before tick: an unstable write that a reader returned may have
// vanished since (N10), until its writer resends it.
func (r *Run) ServerCrashedBefore(tick int) bool {
	return r.fired && r.Plan.Kind == CrashServer && r.firedAt < tick
}

// ServerCrashedAfter reports whether the server crashed (the plan's fault)
// after tick: what a reader returned from then on may have been an
// unstable write that the crash dropped (N10).
func (r *Run) ServerCrashedAfter(tick int) bool {
	return r.fired && r.Plan.Kind == CrashServer && r.firedAt > tick
}

// Script sets a fault the scenario itself injects at armed points where the
// plan does not fire (a scripted crash followed by recovery, or the random
// faults of a property test). f sees armed point numbers in Point.Seq.
func (r *Run) Script(f func(p nfssim.Point) nfssim.Fault) { r.script = f }

// Logf adds a line to the run's trace, which a Failure prints.
func (r *Run) Logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf("t%d: ", r.tick)+fmt.Sprintf(format, args...))
}

// Go registers fn as a task of host under r.Sim.Run. A panic in fn becomes
// the run's failure (with its seed and plan) instead of killing the test
// binary without them.
func (r *Run) Go(host *nfssim.Host, name string, fn func()) {
	r.Sim.Go(host, name, func() {
		defer func() {
			if p := recover(); p != nil && r.err == nil {
				r.err = fmt.Errorf("task %s on %s panicked: %v\n%s", name, host.Name(), p, debug.Stack())
			}
		}()
		fn()
	})
}

// Note counts an outcome the checker tolerated but wants reported (a
// documented limitation seen in this run); Explore sums the notes of all
// runs into Result.Notes.
func (r *Run) Note(what string) {
	if r.notes == nil {
		r.notes = map[string]int{}
	}
	r.notes[what]++
}

// Failf records a violation found while the run is going on (by a reader
// task, say); the run fails with the first one.
func (r *Run) Failf(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func samePoint(a, b nfssim.Point) bool {
	return a.Kind == b.Kind && a.Host == b.Host && a.RPC == b.RPC && a.Call == b.Call &&
		a.Path == b.Path && a.DirtyUnits == b.DirtyUnits
}

// fault is Config.Fault. It runs with the simulation's lock held: it may
// not call methods of Sim or Host.
func (r *Run) fault(p nfssim.Point) nfssim.Fault {
	if !r.armed {
		return nfssim.Fault{}
	}
	p.Seq -= r.base
	r.points = append(r.points, p)
	if r.Plan.Kind != NoFault && p.Seq == r.Plan.Point && !r.fired {
		if r.expect != nil && !samePoint(*r.expect, p) {
			if r.err == nil {
				r.err = fmt.Errorf("nondeterministic scenario: point %d is %v, was %v in the fault-free run", p.Seq, p, *r.expect)
			}
			return nfssim.Fault{}
		}
		r.tick++
		r.fired, r.firedAt, r.firedPt = true, r.tick, p
		r.trace = append(r.trace, fmt.Sprintf("t%d: fault %v at %v", r.tick, r.Plan, p))
		switch r.Plan.Kind {
		case CrashHost:
			return nfssim.Fault{Kind: nfssim.CrashHost, Keep: r.Plan.Keep}
		case DropReply, DropReplyNoDRC:
			return nfssim.Fault{Kind: nfssim.DropReply}
		case CrashServer:
			return nfssim.Fault{Kind: nfssim.CrashServer}
		}
	}
	if r.script != nil {
		if f := r.script(p); f.Kind != nfssim.NoFault {
			r.trace = append(r.trace, fmt.Sprintf("t%d: scripted fault %d (keep %#x) at %v", r.tick, f.Kind, f.Keep, p))
			return f
		}
	}
	return nfssim.Fault{}
}

// Options tune Explore.
type Options struct {
	// Seed seeds the simulation and the scenario's Rand.
	Seed uint64
	// MaxKeepBits caps the subsets of dirty units tried per crash point:
	// with n <= MaxKeepBits units all 2^n; with more, see keepMasks.
	// Default 10.
	MaxKeepBits int
	// Only, if set, runs this one plan (a replay) instead of enumerating.
	Only *Plan
	// Replay returns the command line that replays a plan, for Failure.
	Replay func(Plan) string
	// MaxSteps bounds each Sim.Run a scenario makes (the scenario reads it
	// with Run.MaxSteps). Default 200000.
	MaxSteps int
}

// Result counts what Explore did.
type Result struct {
	Scenario, Profile string
	Seed              uint64
	// Points is the number of armed points of the fault-free run;
	// WriterPoints those of writer hosts, RPCPoints those that are RPCs.
	Points, WriterPoints, RPCPoints int
	// States is the number of runs checked, the fault-free one included.
	States int
	// ByKind splits States by fault kind (index: FaultKind).
	ByKind [numKinds]int
	// MaxDirtyUnits is the most dirty units a writer had at a point;
	// CappedPoints the points where it exceeded MaxKeepBits.
	MaxDirtyUnits, CappedPoints int
	// Notes counts, per kind, the runs in which a checker noted a
	// tolerated outcome (Run.Note).
	Notes map[string]int
}

// String is the summary line of one exploration.
func (r Result) String() string {
	return fmt.Sprintf("%s/%s seed %d: %d points (%d writer, %d RPC), %d states = %d fault-free + %d crash-host + %d drop-reply + %d drop-reply-nodrc + %d crash-server; max dirty units %d, capped points %d",
		r.Scenario, r.Profile, r.Seed, r.Points, r.WriterPoints, r.RPCPoints, r.States,
		r.ByKind[NoFault], r.ByKind[CrashHost], r.ByKind[DropReply], r.ByKind[DropReplyNoDRC], r.ByKind[CrashServer],
		r.MaxDirtyUnits, r.CappedPoints) + r.notesString()
}

func (r Result) notesString() string {
	if len(r.Notes) == 0 {
		return ""
	}
	keys := make([]string, 0, len(r.Notes))
	for k := range r.Notes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("; noted:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s in %d runs", k, r.Notes[k])
	}
	return b.String()
}

// Failure is a run whose checker (or scenario) found a violation.
type Failure struct {
	Scenario, Profile string
	Seed              uint64
	Plan              Plan
	// Point is where the fault fired (zero if it did not).
	Point nfssim.Point
	// Err is the violation.
	Err error
	// Trace is the run's log.
	Trace []string
	// Replay is the command line that replays this run.
	Replay string
}

func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "explore: %s/%s seed %d plan %s: %v", f.Scenario, f.Profile, f.Seed, f.Plan, f.Err)
	if f.Plan.Kind != NoFault {
		fmt.Fprintf(&b, "\n  fault at point %v", f.Point)
	}
	if f.Replay != "" {
		fmt.Fprintf(&b, "\n  replay: %s", f.Replay)
	}
	if len(f.Trace) > 0 {
		b.WriteString("\n  trace:")
		for _, l := range f.Trace {
			b.WriteString("\n    " + l)
		}
	}
	return b.String()
}

// Unwrap returns the violation.
func (f *Failure) Unwrap() error { return f.Err }

// MaxSteps is the step bound a scenario passes to Sim.Run.
func (r *Run) MaxSteps() int { return r.maxSteps }

// Explore runs s under p: fault-free first, to number the armed points,
// then once per point and fault (see the package doc). It stops at the
// first violation and returns it as a *Failure.
func Explore(s Scenario, p Profile, o Options) (Result, error) {
	if o.MaxKeepBits <= 0 {
		o.MaxKeepBits = 10
	}
	res := Result{Scenario: s.Name, Profile: p.Name, Seed: o.Seed}
	note := func(r *Run) {
		for k := range r.notes {
			if res.Notes == nil {
				res.Notes = map[string]int{}
			}
			res.Notes[k]++
		}
	}
	if o.Only != nil {
		res.States, res.ByKind[o.Only.Kind] = 1, 1
		r, err := runOne(s, p, o, *o.Only, nil, false)
		note(r)
		return res, err
	}
	base, err := runOne(s, p, o, Plan{}, nil, false)
	res.States++
	res.ByKind[NoFault]++
	if err != nil {
		return res, err
	}
	note(base)
	res.Points = len(base.points)
	try := func(plan Plan, at nfssim.Point) error {
		res.States++
		res.ByKind[plan.Kind]++
		r, err := runOne(s, p, o, plan, &at, true)
		note(r)
		return err
	}
	for k, pt := range base.points {
		if pt.Kind == nfssim.PointRPC {
			res.RPCPoints++
		}
		if slices.Contains(s.Writers, pt.Host) {
			res.WriterPoints++
			res.MaxDirtyUnits = max(res.MaxDirtyUnits, pt.DirtyUnits)
			masks, capped := keepMasks(pt.DirtyUnits, o.MaxKeepBits)
			if capped {
				res.CappedPoints++
			}
			for _, m := range masks {
				if err := try(Plan{Kind: CrashHost, Point: k, Keep: m}, pt); err != nil {
					return res, err
				}
			}
		}
		if pt.Kind == nfssim.PointRPC {
			for _, kind := range []FaultKind{DropReply, DropReplyNoDRC} {
				if err := try(Plan{Kind: kind, Point: k}, pt); err != nil {
					return res, err
				}
			}
		}
		if err := try(Plan{Kind: CrashServer, Point: k}, pt); err != nil {
			return res, err
		}
	}
	return res, nil
}

// RunOnce runs s under p once with plan (which may never fire: a property
// test draws points blindly) and returns the run's failure, if any.
func RunOnce(s Scenario, p Profile, o Options, plan Plan) error {
	_, err := runOne(s, p, o, plan, nil, false)
	return err
}

func runOne(s Scenario, p Profile, o Options, plan Plan, expect *nfssim.Point, mustFire bool) (r *Run, err error) {
	cfg := p.Config(o.Seed)
	if plan.Kind == DropReplyNoDRC {
		cfg.Server.DRCSize = 0
	}
	r = &Run{Profile: p, Seed: o.Seed, Plan: plan, expect: expect,
		rng: rand.New(rand.NewPCG(o.Seed, 0x6578706c6f7265))} // "explore"
	r.maxSteps = o.MaxSteps
	if r.maxSteps <= 0 {
		r.maxSteps = 200_000
	}
	cfg.Fault = r.fault
	r.Sim = nfssim.New(cfg)
	fail := func(e error) error {
		f := &Failure{Scenario: s.Name, Profile: p.Name, Seed: o.Seed, Plan: plan, Point: r.firedPt, Err: e, Trace: r.trace}
		if o.Replay != nil {
			f.Replay = o.Replay(plan)
		}
		return f
	}
	defer func() {
		if x := recover(); x != nil {
			err = fail(fmt.Errorf("panic: %v\n%s", x, debug.Stack()))
		}
	}()
	defer r.Sim.Close()
	check, err := s.Run(r)
	r.armed = false
	switch {
	case err != nil:
	case r.err != nil:
		err = r.err
	case mustFire && plan.Kind != NoFault && !r.fired:
		err = fmt.Errorf("the planned fault never fired (%d armed points)", len(r.points))
	case check != nil:
		err = check()
		if err == nil {
			err = r.err
		}
	}
	if err != nil {
		return r, fail(err)
	}
	return r, nil
}

// keepMasks returns the Keep masks to try for a crash with n dirty units.
// With n <= maxBits (and n <= 64) it is every subset, 2^n masks. Beyond
// that, capped is true and the masks are: every union of maxBits
// contiguous groups of units (so every prefix and suffix of the unit order
// at group granularity, and every subset of groups), every single unit
// alone, and every single unit missing. Units past 64 are always lost
// (nfssim's Keep is 64 bits).
func keepMasks(n, maxBits int) (masks []uint64, capped bool) {
	if n <= maxBits && n < 64 {
		masks = make([]uint64, 0, 1<<n)
		for m := uint64(0); m < 1<<n; m++ {
			masks = append(masks, m)
		}
		return masks, false
	}
	n = min(n, 64)
	groups := make([]uint64, maxBits)
	for i := 0; i < n; i++ {
		groups[i*maxBits/n] |= 1 << uint(i)
	}
	all := uint64(1)<<uint(n) - 1
	if n == 64 {
		all = ^uint64(0)
	}
	seen := map[uint64]bool{}
	add := func(m uint64) {
		if !seen[m] {
			seen[m] = true
			masks = append(masks, m)
		}
	}
	for sub := 0; sub < 1<<maxBits; sub++ {
		var m uint64
		for g := 0; g < maxBits; g++ {
			if sub>>g&1 == 1 {
				m |= groups[g]
			}
		}
		add(m)
	}
	for i := 0; i < n; i++ {
		add(1 << uint(i))
		add(all &^ (1 << uint(i)))
	}
	slices.Sort(masks)
	return masks, true
}
