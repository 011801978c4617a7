package rename

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
	"time"
)

// Defaults of Options.
const (
	// DefaultStaleAge is how long, by the server's clock, a claim may go
	// without a change the server saw before another host may take it
	// over. A compaction that runs longer must call Heartbeat more often.
	DefaultStaleAge = 2 * time.Minute
	// DefaultStaleRetries is how many times a reader reopens a version
	// that went stale (ESTALE) before it gives up: Dovecot's
	// NFS_ESTALE_RETRY_COUNT.
	DefaultStaleRetries = 10
	// DefaultBufferSize is how much payload a Claim buffers before it
	// writes: one WRITE at a typical NFS wsize.
	DefaultBufferSize = 1 << 20
)

// Options configure Begin, the readers and Sweep. The zero value is
// usable: every zero field takes its default.
type Options struct {
	// Host names the claimant in the files it writes (at most MaxHostLen
	// bytes). It is for people and tests; identity is the claim id.
	Host string
	// StaleAge is the server-clock age at which a claim is stale: a claim
	// whose file the server has not seen change for StaleAge, or whose
	// time is more than StaleAge in the future (garbage, N13/N18), may
	// be taken over. All hosts should use the same value.
	StaleAge time.Duration
	// StaleRetries bounds the reopens of a reader after ESTALE.
	StaleRetries int
	// BufferSize is the size of a Claim's write buffer.
	BufferSize int
	// Rand draws the ids of claims, pins and probes. Pass a seeded
	// generator for a reproducible run; nil draws a generator seeded from
	// crypto/rand. Two claims with one id would share files: seed every
	// host and process differently.
	Rand *rand.Rand
	_    struct{}
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Host) > MaxHostLen {
		return o, fmt.Errorf("rename: host name %q longer than %d bytes", o.Host, MaxHostLen)
	}
	if o.StaleAge <= 0 {
		o.StaleAge = DefaultStaleAge
	}
	if o.StaleRetries <= 0 {
		o.StaleRetries = DefaultStaleRetries
	}
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.Rand == nil {
		o.Rand = newRand()
	}
	return o, nil
}

func newRand() *rand.Rand {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic("rename: crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return rand.New(rand.NewChaCha8(seed))
}

// names are the paths of the files of one version name.
type names struct {
	name string // the version: <name>
	dir  string // its directory
	base string // its base name
	lock string // the lock directory: <name>.lock
}

// LockSuffix names the lock directory, <name>.lock (see the package
// documentation); the other names next to <name> are the package's own.
const LockSuffix = ".lock"

// Infixes of the other names the package uses next to <name>.
const (
	claimInfix  = ".claim." // a claim being prepared: <name>.claim.<id>
	probeInfix  = ".probe." // a server-clock probe: <name>.probe.<id>
	pinInfix    = ".pin."   // a reader's pin of a version: <name>.pin.<id>
	entryDigits = 16        // hex digits of a claim id
)

func newNames(name string) (names, error) {
	if name == "" || strings.HasSuffix(name, "/") || path.Clean(name) != name || name == "." {
		return names{}, fmt.Errorf("rename: invalid name %q", name)
	}
	return names{name: name, dir: path.Dir(name), base: path.Base(name), lock: name + LockSuffix}, nil
}

// private is the directory a claim is prepared in.
func (n names) private(id uint64) string { return fmt.Sprintf("%s%s%016x", n.name, claimInfix, id) }

// entry is the claim's file name inside its directory.
func entry(id uint64) string { return fmt.Sprintf("%016x", id) }

// inLock is the claim's file once the claim holds the lock.
func (n names) inLock(id uint64) string { return n.lock + "/" + entry(id) }
