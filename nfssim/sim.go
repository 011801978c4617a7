package nfssim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"
)

// epoch is simulated time zero as wall-clock time, for timestamps.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrHostDown is returned by every call on a host that has crashed or by
// a file opened before the host's last restart. It wraps EIO.
var ErrHostDown = fmt.Errorf("nfssim: host is down: %w", syscall.EIO)

// PointKind says whether a Point is a file system call or an RPC.
type PointKind int

// Point kinds.
const (
	PointCall PointKind = iota // entry of a vfs call on a host
	PointRPC                   // an RPC about to be executed by the server
)

// Point is a place in a run where a fault may be injected: the entry of
// every file system call and every RPC, numbered in the order they happen.
// A proof runs a scenario once to count the points, then once per point
// (and per choice of dirty units) with a fault there.
type Point struct {
	Seq  int // 0-based index of this point in the run
	Kind PointKind
	Host string
	RPC  RPC    // for PointRPC
	Call string // for PointCall: "WriteAt", "Sync", "Rename", ...
	Path string
	// DirtyUnits is the number of units of dirty or in-flight data of the
	// calling host (see Host.DirtyUnits): the bits of Fault.Keep that mean
	// something when the host crashes here.
	DirtyUnits int
}

func (p Point) String() string {
	what := p.Call
	if p.Kind == PointRPC {
		what = p.RPC.String()
	}
	return fmt.Sprintf("#%d %s %s %s (dirty units %d)", p.Seq, p.Host, what, p.Path, p.DirtyUnits)
}

// FaultKind is what happens at a Point.
type FaultKind int

// Fault kinds.
const (
	NoFault FaultKind = iota
	// CrashHost crashes the calling host before the point executes. The
	// host's dirty units selected by Fault.Keep reach the server (as
	// unstable writes) first; the rest are lost.
	CrashHost
	// CrashServer crashes and restarts the server before the point
	// executes: unstable data and the DRC are lost, the write verifier
	// changes (N10, N21).
	CrashServer
	// DropReply (RPC points only) executes the RPC, loses the reply and
	// retransmits it; the duplicate request cache decides whether the
	// retransmission is replayed or executed again (N14).
	DropReply
	// PauseHost stops the calling host forever (until Resume).
	PauseHost
)

// Fault is the answer of Config.Fault.
type Fault struct {
	Kind FaultKind
	// Keep selects, for CrashHost, which dirty units reached the server:
	// bit i for unit i in Host.DirtyUnits order. Units past 64 are lost.
	Keep uint64
	// RandomKeep chooses the kept units with the simulation's PRNG.
	RandomKeep bool
}

// Sim is one simulated NFS server and its client hosts. All methods are
// safe for concurrent use, but a run is deterministic only when a single
// goroutine drives it directly or when hosts' work runs as tasks under
// Run, which decides who takes each step.
type Sim struct {
	mu    sync.Mutex
	cfg   Config
	rng   *rand.Rand
	now   time.Duration
	srv   *server
	hosts map[string]*Host
	order []string // host names in creation order
	seq   int      // next Point number

	// scheduler
	tasks   []*task
	running *task
	back    chan struct{}
	inRun   bool
	steps   int
	bg      bool // background write-back running: no steps, no points
}

// New creates a simulation. Use DefaultConfig for Linux-like knobs.
func New(cfg Config) *Sim {
	if cfg.Server.Granularity <= 0 {
		cfg.Server.Granularity = time.Nanosecond
	}
	if cfg.CrashUnit < 0 {
		cfg.CrashUnit = 0
	}
	s := &Sim{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		hosts: map[string]*Host{},
		back:  make(chan struct{}),
	}
	s.srv = newServer(s)
	return s
}

// Seed returns the seed the simulation was created with.
func (s *Sim) Seed() uint64 { return s.cfg.Seed }

// AddHost creates a client host with its own caches and mount options.
// Host names are the identity the engine sees (gethostname).
func (s *Sim) AddHost(name string, m Mount) (*Host, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.hosts[name]; ok {
		return nil, fmt.Errorf("nfssim: host %q exists", name)
	}
	h := newHost(s, name, m)
	s.hosts[name] = h
	s.order = append(s.order, name)
	return h, nil
}

// Host returns the host with that name, creating it with DefaultMount
// if it does not exist.
func (s *Sim) Host(name string) *Host {
	s.mu.Lock()
	h := s.hosts[name]
	s.mu.Unlock()
	if h != nil {
		return h
	}
	h, err := s.AddHost(name, DefaultMount())
	if err != nil {
		panic(err) // unreachable: the default mount is valid and the name is new
	}
	return h
}

// Now returns the simulated time elapsed since the start of the run.
func (s *Sim) Now() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves simulated time forward, as if nobody did anything for d.
func (s *Sim) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d > 0 {
		s.now += d
	}
}

// ServerTime returns the server's clock as it would stamp a file now.
func (s *Sim) ServerTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.stamp()
}

// CrashServer crashes the server and restarts it after outage: unstable
// data and the duplicate request cache are lost and the write verifier
// changes; the namespace and stable data survive (N10, N21). During the
// outage hard-mounted hosts wait and soft-mounted ones fail.
func (s *Sim) CrashServer(outage time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv.crash(outage)
}

// Points returns how many fault points the run has passed so far.
func (s *Sim) Points() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Counts returns the RPCs sent by all hosts so far.
func (s *Sim) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c Counts
	for _, h := range s.hosts {
		c = c.Add(h.counts)
	}
	return c
}

// ---- scheduler ----

type task struct {
	id      int
	name    string
	host    *Host
	fn      func()
	wake    chan struct{}
	wakeAt  time.Duration
	started bool
	done    bool
	killed  bool
}

// Go registers fn as a task of host to be run by Run. Inside a task every
// file system call and RPC of the host is a step: the scheduler, not the
// Go runtime, decides which task runs next, so a run is a function of the
// seed. A task must not start goroutines that use the simulation.
func (s *Sim) Go(host *Host, name string, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &task{id: len(s.tasks), name: name, host: host, fn: fn, wake: make(chan struct{}), wakeAt: s.now}
	s.tasks = append(s.tasks, t)
}

// ErrStepLimit is returned by Run when the tasks took more steps than the
// limit: a livelock, or a limit set too low.
var ErrStepLimit = errors.New("nfssim: step limit reached")

// Run runs the registered tasks to completion, one step at a time. At each
// step it picks the runnable task with the earliest wake-up time (ties
// broken by the seeded PRNG) and lets it run until its next RPC or call.
// Tasks of paused hosts are left parked; tasks of crashed hosts end at
// their next step. maxSteps bounds the run (0: 10 million).
func (s *Sim) Run(maxSteps int) error {
	if maxSteps <= 0 {
		maxSteps = 10_000_000
	}
	s.mu.Lock()
	if s.inRun {
		s.mu.Unlock()
		return errors.New("nfssim: Run is already running")
	}
	s.inRun = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inRun = false
		s.mu.Unlock()
	}()
	for step := 0; ; step++ {
		s.mu.Lock()
		t := s.pick()
		if t == nil {
			s.mu.Unlock()
			return nil
		}
		if step >= maxSteps && !t.killed {
			s.mu.Unlock()
			return fmt.Errorf("%w (%d steps, seed %d)", ErrStepLimit, step, s.cfg.Seed)
		}
		if t.wakeAt > s.now {
			s.now = t.wakeAt
		}
		s.running = t
		s.steps++
		if !t.killed {
			s.maybeWriteback(t.host)
		}
		start := !t.started
		t.started = true
		s.mu.Unlock()
		if start {
			go s.runTask(t)
		} else {
			t.wake <- struct{}{}
		}
		<-s.back
	}
}

// pick returns the next task to run: killed tasks first (so they exit),
// then the earliest runnable one.
func (s *Sim) pick() *task {
	var cands []*task
	for _, t := range s.tasks {
		if t.done {
			continue
		}
		if t.killed && t.started {
			return t
		}
		if t.killed { // never started: just drop it
			t.done = true
			continue
		}
		if t.host.paused || t.host.down {
			continue
		}
		cands = append(cands, t)
	}
	if len(cands) == 0 {
		return nil
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].wakeAt < cands[j].wakeAt })
	n := 1
	for n < len(cands) && cands[n].wakeAt == cands[0].wakeAt {
		n++
	}
	return cands[s.rng.IntN(n)]
}

func (s *Sim) runTask(t *task) {
	defer func() {
		s.mu.Lock()
		t.done = true
		s.running = nil
		s.mu.Unlock()
		s.back <- struct{}{}
	}()
	t.fn()
}

// yield is called with s.mu held by the running task at a step boundary:
// it sleeps the task for cost of simulated time and lets the scheduler
// choose who runs next. Outside Run it just advances the clock. If the
// task's host crashed meanwhile it ends the task (runtime.Goexit) with
// s.mu still held, for the caller's deferred Unlock.
func (s *Sim) yield(h *Host, cost time.Duration) {
	t := s.running
	if !s.inRun || t == nil || t.host != h {
		s.now += cost
		return
	}
	t.wakeAt = s.now + cost
	s.mu.Unlock()
	s.back <- struct{}{}
	<-t.wake
	s.mu.Lock()
	if t.killed {
		runtime.Goexit()
	}
}

// killTasks marks every task of h killed; they end at their next step.
func (s *Sim) killTasks(h *Host) {
	for _, t := range s.tasks {
		if t.host == h && !t.done {
			t.killed = true
		}
	}
}

// Close ends every task still parked (for example those of paused hosts),
// so no goroutine outlives the simulation.
func (s *Sim) Close() {
	s.mu.Lock()
	for _, t := range s.tasks {
		if !t.done {
			t.killed = true
		}
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		var t *task
		for _, c := range s.tasks {
			if !c.done && c.started {
				t = c
				break
			}
		}
		if t == nil {
			s.mu.Unlock()
			return
		}
		s.running = t
		s.mu.Unlock()
		t.wake <- struct{}{}
		<-s.back
	}
}

// point numbers a fault point and consults Config.Fault. It returns the
// fault to apply (already applied when it is a crash of the server).
func (s *Sim) point(h *Host, kind PointKind, rpc RPC, call, path string) Fault {
	p := Point{Seq: s.seq, Kind: kind, Host: h.name, RPC: rpc, Call: call, Path: path}
	s.seq++
	if s.cfg.Fault == nil {
		return Fault{}
	}
	p.DirtyUnits = len(h.dirtyUnits())
	f := s.cfg.Fault(p)
	switch f.Kind {
	case CrashServer:
		s.srv.crash(0)
	case CrashHost:
		h.crash(f)
	case PauseHost:
		h.paused = true
	}
	return f
}

// latency is the simulated cost of one RPC carrying n payload bytes.
func (s *Sim) latency(h *Host, n int) time.Duration {
	l := s.cfg.Latency
	d := l.RTT
	if l.BytesPerSecond > 0 {
		d += time.Duration(int64(n) * int64(time.Second) / l.BytesPerSecond)
	}
	if l.Jitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(l.Jitter)))
	}
	return time.Duration(float64(d) * h.mount.Slowdown)
}

// maybeWriteback models the kernel's background write-back (N7).
func (s *Sim) maybeWriteback(h *Host) {
	if s.cfg.WritebackProb <= 0 || h.down || s.rng.Float64() >= s.cfg.WritebackProb {
		return
	}
	h.backgroundWriteback()
}
