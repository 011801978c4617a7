package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// env is where a run's workloads execute: the simulator, or a real
// directory (local disk or NFS). Each host has its own counting view of
// the file system; on a real directory they share the operating system's
// (one process is one NFS client, whatever names its mailboxes carry).
type env interface {
	// mode is "sim", "local" or "nfs".
	mode() string
	// fs returns host's view of the file system, rooted at the run's
	// directory.
	fs(host string) *countFS
	// now is the clock latencies are measured with: simulated time under
	// the simulator, wall time otherwise.
	now() time.Duration
	// rpcs returns the RPCs sent so far: by host under the simulator, by
	// the whole mount on NFS (perHost false). ok is false when they are
	// unavailable (a local disk).
	rpcs(host string) (c rpcCounts, ok bool, err error)
	// perHost reports whether rpcs counts one host's RPCs only.
	perHost() bool
	// rpcSource says where RPC counts come from, or why there are none.
	rpcSource() string
	// parallel runs fn once per host, concurrently: as simulator tasks
	// (one runs at a time, in an order the seed decides) or goroutines.
	parallel(hosts []string, fn func(i int, host string)) error
	// namespaceDurable is engine.Options.NamespaceDurable: true on NFS,
	// where a created name is durable when the call returns.
	namespaceDurable() bool
	// sleep lets d pass for the calling host (think time).
	sleep(host string, d time.Duration)
}

// simEnv runs on nfssim: one simulated server, hosts created on first use
// with Linux's default mount options (NFSv3 or v4.2).
type simEnv struct {
	s       *nfssim.Sim
	version nfssim.Version
	mu      sync.Mutex // guards fss; never held across a simulated call
	fss     map[string]*countFS
}

func newSimEnv(seed uint64, version nfssim.Version) *simEnv {
	return &simEnv{s: nfssim.New(nfssim.DefaultConfig(seed)), version: version, fss: map[string]*countFS{}}
}

func (e *simEnv) mode() string { return "sim" }

func (e *simEnv) host(name string) *nfssim.Host {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.fss[name]; !ok {
		m := nfssim.DefaultMount()
		m.Version = e.version
		h, err := e.s.AddHost(name, m)
		if err != nil {
			// AddHost fails only for a name already taken, which fss
			// rules out: a broken invariant of this program.
			panic(fmt.Sprintf("nfsbench: add simulated host %s: %v", name, err))
		}
		e.fss[name] = newCountFS(h.FS())
	}
	return e.s.Host(name)
}

func (e *simEnv) fs(host string) *countFS {
	e.host(host)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fss[host]
}

func (e *simEnv) now() time.Duration { return e.s.Now() }

func (e *simEnv) rpcs(host string) (rpcCounts, bool, error) {
	return rpcCounts(e.host(host).RPCs().Map()), true, nil
}

func (e *simEnv) perHost() bool { return true }

func (e *simEnv) rpcSource() string {
	return fmt.Sprintf("nfssim (exact, NFSv%s, default mount)", e.version)
}

func (e *simEnv) parallel(hosts []string, fn func(i int, host string)) error {
	for i, h := range hosts {
		e.s.Go(e.host(h), h, func() { fn(i, h) })
	}
	return e.s.Run(0)
}

func (e *simEnv) namespaceDurable() bool { return true }

func (e *simEnv) sleep(host string, d time.Duration) {
	if d > 0 {
		e.host(host).Sleep(d)
	}
}

// dirEnv runs on a real directory through vfs/osfs.
type dirEnv struct {
	root   string // the run's directory, as the operating system names it
	os     *osfs.FS
	nfs    *mountCounter // nil unless the directory is on NFS
	noRPCs string        // why RPC counts are unavailable
	fsType string
	// nfsOpts are the NFS mount's options (vers=, rsize=, actimeo...).
	nfsOpts string
	start   time.Time
	mu      sync.Mutex
	fss     map[string]*countFS
}

// newDirEnv opens the run's directory root. mountstats is the path of
// /proc/self/mountstats; an NFS mount whose statistics cannot be read is
// an error, never a silent "unavailable".
func newDirEnv(root, mountstats string) (*dirEnv, error) {
	fsys, err := osfs.New(root)
	if err != nil {
		return nil, err
	}
	e := &dirEnv{root: root, os: fsys, start: time.Now(), fss: map[string]*countFS{}}
	m, err := findMount(mountstats, root)
	switch {
	case err != nil:
		// Not being able to tell is fatal only if the directory is on
		// NFS, which statfs answers without mountstats.
		if onNFS(root) {
			fsys.Close()
			return nil, fmt.Errorf("%s is on NFS but its RPC counts cannot be read: %w", root, err)
		}
		e.noRPCs = "unavailable: " + err.Error()
	case m == nil:
		e.noRPCs = "unavailable: no mount in " + mountstats + " holds " + root
	case !m.isNFS():
		e.fsType = m.FSType
		e.noRPCs = fmt.Sprintf("unavailable: not NFS (%s is on %s, %s)", root, m.MountPoint, m.FSType)
	case len(m.Ops) == 0:
		fsys.Close()
		return nil, fmt.Errorf("%w: the NFS mount %s in %s has no per-op statistics", errMountstats, m.MountPoint, mountstats)
	default:
		e.fsType, e.nfsOpts = m.FSType, m.Opts
		e.nfs = &mountCounter{path: mountstats, mountPoint: m.MountPoint, device: m.Device}
	}
	return e, nil
}

func (e *dirEnv) close() error { return e.os.Close() }

func (e *dirEnv) mode() string {
	if e.nfs != nil {
		return "nfs"
	}
	return "local"
}

func (e *dirEnv) fs(host string) *countFS {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.fss[host]
	if !ok {
		c = newCountFS(e.os)
		e.fss[host] = c
	}
	return c
}

func (e *dirEnv) now() time.Duration { return time.Since(e.start) }

func (e *dirEnv) rpcs(string) (rpcCounts, bool, error) {
	if e.nfs == nil {
		return nil, false, nil
	}
	c, err := e.nfs.counts()
	return c, err == nil, err
}

func (e *dirEnv) perHost() bool { return false }

func (e *dirEnv) rpcSource() string {
	if e.nfs == nil {
		return e.noRPCs
	}
	return fmt.Sprintf("mountstats of %s (%s): the whole mount, every process on this machine", e.nfs.mountPoint, e.nfs.device)
}

func (e *dirEnv) parallel(hosts []string, fn func(i int, host string)) error {
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { fn(i, h) })
	}
	wg.Wait()
	return nil
}

func (e *dirEnv) namespaceDurable() bool { return e.nfs != nil }

func (e *dirEnv) sleep(_ string, d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

var _ vfs.FS = (*countFS)(nil)
