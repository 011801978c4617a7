package nfssim

import (
	"fmt"
	"time"
)

// Version is the NFS protocol version a host mounts with. It changes how
// opens are resolved (v3 revalidates the cached binding, v4 sends OPEN by
// name, N5), how change is detected (N3) and which RPCs are counted.
type Version int

// Versions.
const (
	V3 Version = 3
	V4 Version = 4 // 4.1/4.2: OPEN/CLOSE, change attribute, EXCLUSIVE4_1
)

func (v Version) String() string {
	if v == V4 {
		return "4.2"
	}
	return "3"
}

// LookupCache is the lookupcache= mount option (N4).
type LookupCache int

// Lookup cache modes, as in nfs(5).
const (
	LookupAll      LookupCache = iota // positive and negative entries (Linux default)
	LookupPositive                    // negative entries always revalidated
	LookupNone                        // every name revalidated
)

// ChangeMode is how the server derives the change attribute (N3).
type ChangeMode int

// Change attribute modes.
const (
	ChangeCounter ChangeMode = iota // a true counter (knfsd with i_version)
	ChangeCTime                     // change = ctime (coarse)
)

// UnlinkedMode is what the server does with a removed file some host still
// has open (N15).
type UnlinkedMode int

// Unlinked-open modes.
const (
	UnlinkedStale    UnlinkedMode = iota // every RPC on it fails with ESTALE
	UnlinkedPreserve                     // readable while any host holds it open (v4 open state)
)

// Mount is the set of per-host mount options. The zero value is not
// useful; start from DefaultMount, which has Linux's defaults.
type Mount struct {
	Version Version
	// Attribute cache timeouts (N1). ActimeO, when non-zero, sets all four
	// as actimeo= does.
	AcRegMin, AcRegMax, AcDirMin, AcDirMax time.Duration
	ActimeO                                time.Duration
	// NoAC disables attribute caching and makes writes synchronous.
	NoAC        bool
	LookupCache LookupCache
	// NoCTO skips the revalidation on open (N2).
	NoCTO bool
	// RSize and WSize split READs and WRITEs (N8).
	RSize, WSize int
	// PageSize is the client's page size (N7, N9).
	PageSize int
	// NoAlignWrite switches off the page extension of small writes (N9).
	NoAlignWrite bool
	// Soft makes calls fail with ETIMEDOUT after a timeout while the
	// server is down, the outcome unknown (N11); hard mounts wait.
	Soft bool
	// ClockSkew is this host's clock minus the simulation's clock (N18).
	ClockSkew time.Duration
	// NoESTALERetry makes path operations report ESTALE instead of
	// retrying the lookup once as the Linux VFS does (N16).
	NoESTALERetry bool
	// FlushOnRename writes a file's dirty pages before it is renamed, as
	// Linux does today (N7); proofs switch it off.
	FlushOnRename bool
	// ReaddirChunk is the number of names per READDIR(PLUS) reply (N6).
	ReaddirChunk int
	// Slowdown multiplies this host's RPC latency (a slow host).
	Slowdown float64
	// NoCloseFlush makes Close keep dirty data in the page cache, as
	// close(2) on a local file system does (only NFS flushes on close,
	// N2). The local-disk model sets it.
	NoCloseFlush bool
}

// DefaultMount returns Linux's default mount options for an NFSv3 mount
// (acregmin 3 s, acregmax 60 s, acdirmin 30 s, acdirmax 60 s,
// lookupcache=all, cto, rsize=wsize=1 MiB, 4 KiB pages, page extension on,
// hard).
func DefaultMount() Mount {
	return Mount{
		Version:       V3,
		AcRegMin:      3 * time.Second,
		AcRegMax:      60 * time.Second,
		AcDirMin:      30 * time.Second,
		AcDirMax:      60 * time.Second,
		LookupCache:   LookupAll,
		RSize:         1 << 20,
		WSize:         1 << 20,
		PageSize:      4096,
		FlushOnRename: true,
		ReaddirChunk:  128,
		Slowdown:      1,
	}
}

// WorstMount returns the worst-case knobs that nfs-semantics.md names for
// the caching anomalies: 60 s attribute and directory caches everywhere,
// lookupcache=all, nocto, no flush before rename, one name per READDIR.
func WorstMount() Mount {
	m := DefaultMount()
	m.ActimeO = 60 * time.Second
	m.NoCTO = true
	m.FlushOnRename = false
	m.ReaddirChunk = 1
	m.RSize, m.WSize = 4096, 4096
	return m
}

func (m Mount) validate() error {
	switch {
	case m.Version != V3 && m.Version != V4:
		return fmt.Errorf("nfssim: unknown NFS version %d", m.Version)
	case m.PageSize < 512 || m.PageSize&(m.PageSize-1) != 0:
		return fmt.Errorf("nfssim: page size %d is not a power of two >= 512", m.PageSize)
	case m.RSize < m.PageSize || m.WSize < m.PageSize || m.RSize%m.PageSize != 0 || m.WSize%m.PageSize != 0:
		return fmt.Errorf("nfssim: rsize %d / wsize %d must be multiples of the page size %d", m.RSize, m.WSize, m.PageSize)
	case m.ReaddirChunk < 1:
		return fmt.Errorf("nfssim: readdir chunk %d < 1", m.ReaddirChunk)
	case m.Slowdown <= 0:
		return fmt.Errorf("nfssim: slowdown %v <= 0", m.Slowdown)
	}
	return nil
}

// attrTimeouts returns (min, max) for a regular file or a directory.
func (m Mount) attrTimeouts(dir bool) (time.Duration, time.Duration) {
	if m.NoAC {
		return 0, 0
	}
	if m.ActimeO > 0 {
		return m.ActimeO, m.ActimeO
	}
	if dir {
		return m.AcDirMin, m.AcDirMax
	}
	return m.AcRegMin, m.AcRegMax
}

// Latency is the cost model of one RPC in simulated time: RTT plus the
// payload at BytesPerSecond, plus a seeded jitter in [0, Jitter).
type Latency struct {
	RTT            time.Duration
	BytesPerSecond int64
	Jitter         time.Duration
}

// DefaultLatency is a LAN filer: 200 µs round trip, 1 GB/s.
func DefaultLatency() Latency {
	return Latency{RTT: 200 * time.Microsecond, BytesPerSecond: 1 << 30}
}

// Server holds the server's knobs.
type Server struct {
	// Granularity G of stored timestamps (N3). Linux ext4/xfs use the
	// kernel's coarse clock (a few ms); old file systems 1 s.
	Granularity time.Duration
	// Skew is the server's clock minus the simulation's clock (N18).
	Skew       time.Duration
	ChangeMode ChangeMode
	// DRCSize is the number of replies the duplicate request cache keeps
	// (N14); 0 disables it.
	DRCSize int
	// NoExclusive makes the server reject EXCLUSIVE creates, so clients
	// fall back to GUARDED (N13).
	NoExclusive bool
	Unlinked    UnlinkedMode
	// ReadTearUnit, when non-zero, serves a READ in pieces of this many
	// bytes at different steps, so concurrent WRITEs interleave (N8).
	ReadTearUnit int
	// Delegations grants v4 read delegations (N20).
	Delegations bool
	// LeaseTime bounds a delegation recall from a paused holder (N20).
	LeaseTime time.Duration
	// GracePeriod delays v4 opens after a server restart (N21).
	GracePeriod time.Duration
}

// DefaultServer returns knfsd-like defaults: 4 ms timestamps, a change
// counter, a 1024-entry DRC, EXCLUSIVE supported, unlinked files stale.
func DefaultServer() Server {
	return Server{
		Granularity: 4 * time.Millisecond,
		ChangeMode:  ChangeCounter,
		DRCSize:     1024,
		LeaseTime:   90 * time.Second,
		GracePeriod: 90 * time.Second,
	}
}

// Config configures a simulation.
type Config struct {
	// Seed makes the run a function of it: same seed, same run.
	Seed    uint64
	Server  Server
	Latency Latency
	// WritebackProb is the chance, at each step of any host, that the
	// kernel writes back a random subset of that host's dirty pages in a
	// random order without COMMIT (N7). 0 means no background write-back
	// until fsync, close, stat or memory pressure: the worst case.
	WritebackProb float64
	// CrashUnit is the granularity at which a crashed host's dirty data
	// reaches the server or is lost (N7): the page size by default; the
	// sector size (512) in the local-disk model.
	CrashUnit int
	// Fault, if set, is consulted before every RPC and at every file
	// system call of every host; it lets a proof inject a crash or a lost
	// reply at an exact point. See Point.
	Fault func(Point) Fault
	// Disable switches anomalies off, making the simulation kinder than
	// NFS. It exists so that each anomaly's test can show that it fails
	// without the anomaly; a proof of the engine must never set it.
	Disable Anomalies
	_       struct{}
}

// DefaultConfig returns a configuration with the given seed and the
// default server and latency knobs.
func DefaultConfig(seed uint64) Config {
	return Config{Seed: seed, Server: DefaultServer(), Latency: DefaultLatency()}
}

// LocalDiskConfig returns the simulation used as the model of a local
// disk: one host (use LocalDiskMount), no network latency, and crashes
// that lose unsynced data in any subset of 512-byte sectors (torn
// writes at sector size). Namespace operations are durable when they
// return, which is kinder than a local file system that needs an fsync
// of the directory (docs/design.md lists this gap).
func LocalDiskConfig(seed uint64) Config {
	c := DefaultConfig(seed)
	c.Latency = Latency{}
	c.CrashUnit = 512
	return c
}

// LocalDiskMount returns mount options under which one host behaves as a
// process on a local disk: it sees its own writes, and only a crash shows
// what was not synced.
func LocalDiskMount() Mount {
	m := DefaultMount()
	m.FlushOnRename = false
	m.NoCloseFlush = true
	return m
}
