package errorfs

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nfsindex/nfsindex/vfs"
)

// OpKind is the kind of call an Op describes: one per method of vfs.FS and
// vfs.File, except File.Name.
type OpKind uint8

// The kinds of Op.
const (
	OpOpen      OpKind = iota // FS.OpenFile without vfs.Create
	OpCreate                  // FS.OpenFile with vfs.Create
	OpReadAt                  // File.ReadAt
	OpWriteAt                 // File.WriteAt
	OpWrite                   // File.Write
	OpSync                    // File.Sync
	OpDatasync                // File.Datasync
	OpStat                    // FS.Stat
	OpLstat                   // FS.Lstat
	OpFileStat                // File.Stat
	OpTruncate                // File.Truncate
	OpClose                   // File.Close
	OpLink                    // FS.Link
	OpSymlink                 // FS.Symlink
	OpReadlink                // FS.Readlink
	OpRename                  // FS.Rename
	OpRemove                  // FS.Remove
	OpMkdir                   // FS.Mkdir
	OpReadDir                 // FS.ReadDir
	OpSyncDir                 // FS.SyncDir
	OpStatFresh               // FS.StatFresh
	numOpKinds
)

var opKindNames = [numOpKinds]string{
	"Open", "Create", "ReadAt", "WriteAt", "Write", "Sync", "Datasync", "Stat", "Lstat", "FileStat",
	"Truncate", "Close", "Link", "Symlink", "Readlink", "Rename", "Remove", "Mkdir", "ReadDir", "SyncDir",
	"StatFresh",
}

// opNames are the Op fields of the errors the wrapper returns, the same
// as osfs's.
var opNames = [numOpKinds]string{
	"open", "open", "read", "write", "write", "sync", "datasync", "stat", "lstat", "stat",
	"truncate", "close", "link", "symlink", "readlink", "rename", "remove", "mkdir", "readdir", "syncdir",
	"stat",
}

func (k OpKind) String() string {
	if k < numOpKinds {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op describes one call for an Injector to decide on.
type Op struct {
	Kind OpKind
	// Path is the name the call acts on: the file's name for File
	// methods; for Link and Rename the old name, and for Symlink the
	// target, as in vfs.LinkError's Old.
	Path string
	// NewPath is the new name of Link and Rename and the link's name for
	// Symlink, as in vfs.LinkError's New; empty otherwise.
	NewPath string
	// Flag is OpenFile's flag, for OpOpen and OpCreate.
	Flag vfs.Flag
	// Offset is the offset of ReadAt and WriteAt and the size of
	// Truncate; -1 for Write, whose offset the wrapper does not know.
	Offset int64
	// Len is len(p) of ReadAt, WriteAt and Write.
	Len int
}

func (op Op) String() string {
	switch op.Kind {
	case OpOpen, OpCreate:
		return fmt.Sprintf("%v(%q, %#o)", op.Kind, op.Path, op.Flag)
	case OpReadAt, OpWriteAt:
		return fmt.Sprintf("%v(%q, %d bytes at %d)", op.Kind, op.Path, op.Len, op.Offset)
	case OpWrite:
		return fmt.Sprintf("%v(%q, %d bytes)", op.Kind, op.Path, op.Len)
	case OpTruncate:
		return fmt.Sprintf("%v(%q, %d)", op.Kind, op.Path, op.Offset)
	case OpLink, OpSymlink, OpRename:
		return fmt.Sprintf("%v(%q, %q)", op.Kind, op.Path, op.NewPath)
	default:
		return fmt.Sprintf("%v(%q)", op.Kind, op.Path)
	}
}

// Injector decides, before each call of a wrapped FS or File, whether the
// call fails. Implementations must be safe for concurrent use.
type Injector interface {
	// MaybeError returns nil to let the call through, or the error to
	// return instead (see Done and WriteFault for the errors that do more).
	MaybeError(op Op) error
}

// InjectorFunc is an Injector made of a function.
type InjectorFunc func(op Op) error

// MaybeError calls fn.
func (fn InjectorFunc) MaybeError(op Op) error { return fn(op) }

// ErrInjected is wrapped by every error this package makes, so that a test
// can tell an injected failure from a real one.
var ErrInjected = errors.New("errorfs: injected error")

// Errno returns an injected error that also carries errno, so that
// errors.Is matches ErrInjected, errno, and what errno matches (fs.ErrExist
// for EEXIST and ENOTEMPTY, fs.ErrNotExist for ENOENT).
func Errno(errno syscall.Errno) error { return errnoError{errno} }

type errnoError struct{ errno syscall.Errno }

func (e errnoError) Error() string   { return "errorfs: injected " + e.errno.Error() }
func (e errnoError) Unwrap() []error { return []error{ErrInjected, e.errno} }

// Done returns an error that makes the wrapped FS carry out the call and
// then report err (unless the call itself failed: then its own error). It
// models a reply lost after the server acted: a soft mount's timeout on an
// operation that happened (N11), or EEXIST from a retransmitted exclusive
// create or link that succeeded (N14): Inject(Done(Errno(syscall.EEXIST)),
// OnKind(OpLink)). A file opened this way is closed again, since the
// caller gets no File. On Close, which always closes, Done is the same as
// err.
func Done(err error) error { return &doneError{err} }

type doneError struct{ err error }

func (e *doneError) Error() string { return "errorfs: done, then: " + e.err.Error() }
func (e *doneError) Unwrap() error { return e.err }

// SectorSize and PageSize are the usual WriteFault alignments: a disk
// tears writes at sectors, the page cache and NFS at pages (N8).
const (
	SectorSize = 512
	PageSize   = 4096
)

// WriteFault is an injected result for WriteAt and Write: the wrapped file
// writes only a prefix of p. For any other call it is an error like any
// other.
type WriteFault struct {
	// Keep is the number of bytes of p written, clamped to [0, len(p)].
	Keep int
	// Align, if more than 1, moves the cut down to the nearest multiple of
	// Align in the file (off+Keep rounded down), as a disk tears at
	// SectorSize and the page cache at PageSize. For Write, whose offset
	// the wrapper does not know, it counts from the start of p.
	Align int64
	// Err is reported, with the count of bytes written, after the prefix
	// is written: a short write. If nil, the write reports success and
	// len(p): a torn write that only a later read can notice.
	Err error
}

func (w *WriteFault) Error() string {
	if w.Err == nil {
		return fmt.Sprintf("errorfs: torn write (keep %d, align %d)", w.Keep, w.Align)
	}
	return fmt.Sprintf("errorfs: short write (keep %d, align %d): %v", w.Keep, w.Align, w.Err)
}

// Unwrap returns ErrInjected and Err.
func (w *WriteFault) Unwrap() []error {
	if w.Err == nil {
		return []error{ErrInjected}
	}
	return []error{ErrInjected, w.Err}
}

// cut returns how many bytes of a write of n bytes at off to keep; off is
// -1 for Write.
func (w *WriteFault) cut(n int, off int64) int {
	keep := min(max(w.Keep, 0), n)
	if w.Align > 1 {
		base := max(off, 0)
		end := base + int64(keep)
		keep = int(end - end%w.Align - base)
		keep = max(keep, 0)
	}
	return keep
}

// RandomTear returns an Injector that answers every WriteAt and Write it
// is asked about with a WriteFault keeping a prefix of seeded random
// length in [0, len(p)), aligned to align, and reporting err (nil for a
// silent tear). Like Randomly it keeps a generator per path. Guard it with
// predicates: If(RandomTear(seed, SectorSize, nil), Randomly(0.01, seed2)).
func RandomTear(seed uint64, align int64, err error) Injector {
	r := newPerPath(seed)
	return InjectorFunc(func(op Op) error {
		if (op.Kind != OpWriteAt && op.Kind != OpWrite) || op.Len == 0 {
			return nil
		}
		var keep int
		r.with(op.Path, func(rng *rand.Rand) { keep = rng.IntN(op.Len) })
		return &WriteFault{Keep: keep, Align: align, Err: err}
	})
}

// Predicate decides whether an op is one to fail. Stateful predicates
// (AtNth, FromNth, Randomly) change state on every Match, so put them
// after the predicates that select the ops they should count.
type Predicate interface {
	Match(op Op) bool
}

// PredicateFunc is a Predicate made of a function.
type PredicateFunc func(op Op) bool

// Match calls fn.
func (fn PredicateFunc) Match(op Op) bool { return fn(op) }

// OnKind matches the ops of the given kinds.
func OnKind(kinds ...OpKind) Predicate {
	kinds = slices.Clone(kinds)
	return PredicateFunc(func(op Op) bool { return slices.Contains(kinds, op.Kind) })
}

// OnPath matches the ops whose Path or NewPath match.
func OnPath(match func(path string) bool) Predicate {
	return PredicateFunc(func(op Op) bool {
		return match(op.Path) || (op.NewPath != "" && match(op.NewPath))
	})
}

// AtNth matches exactly once: the n-th time it is asked (n counts from 1).
func AtNth(n int) Predicate { return &nth{n: int64(n)} }

// FromNth matches the n-th time it is asked and every time after, as a
// disk that fills up stays full.
func FromNth(n int) Predicate { return &nth{n: int64(n), sticky: true} }

type nth struct {
	n      int64
	sticky bool
	seen   atomic.Int64
}

func (p *nth) Match(Op) bool {
	seen := p.seen.Add(1)
	return seen == p.n || (p.sticky && seen > p.n)
}

// Randomly matches with probability prob, deterministically for seed: each
// path gets its own PCG generator seeded from seed and the path, so the
// decisions for one path depend only on the seed and the order of the ops
// on that path, not on other paths' ops running in between.
func Randomly(prob float64, seed uint64) Predicate {
	r := newPerPath(seed)
	return PredicateFunc(func(op Op) bool {
		var hit bool
		r.with(op.Path, func(rng *rand.Rand) { hit = rng.Float64() < prob })
		return hit
	})
}

// perPath is a set of generators, one per path.
type perPath struct {
	seed uint64
	mu   sync.Mutex
	rngs map[string]*rand.Rand
}

func newPerPath(seed uint64) *perPath {
	return &perPath{seed: seed, rngs: map[string]*rand.Rand{}}
}

func (p *perPath) with(path string, fn func(*rand.Rand)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rng, ok := p.rngs[path]
	if !ok {
		h := fnv.New64a()
		h.Write([]byte(path))
		rng = rand.New(rand.NewPCG(p.seed, h.Sum64()))
		p.rngs[path] = rng
	}
	fn(rng)
}

// If returns an Injector that asks inj only about the ops every predicate
// matches, evaluated in order and stopping at the first that does not.
func If(inj Injector, when ...Predicate) Injector {
	when = slices.Clone(when)
	return InjectorFunc(func(op Op) error {
		for _, p := range when {
			if !p.Match(op) {
				return nil
			}
		}
		return inj.MaybeError(op)
	})
}

// Inject returns an Injector that returns err for the ops every predicate
// matches (see If); with no predicates, for every op.
func Inject(err error, when ...Predicate) Injector {
	return If(InjectorFunc(func(Op) error { return err }), when...)
}

// Any returns an Injector that asks each of injs in turn and returns the
// first error. The later ones are not asked once one has answered, so
// their stateful predicates do not count that op.
func Any(injs ...Injector) Injector {
	injs = slices.Clone(injs)
	return InjectorFunc(func(op Op) error {
		for _, inj := range injs {
			if err := inj.MaybeError(op); err != nil {
				return err
			}
		}
		return nil
	})
}

// Toggle is an Injector that passes the ops to Injector while it is on,
// and lets every op through while it is off. Its zero value is off. While
// off it does not ask Injector, whose stateful predicates then do not
// count.
type Toggle struct {
	Injector
	on atomic.Bool
}

// On switches t on.
func (t *Toggle) On() { t.on.Store(true) }

// Off switches t off.
func (t *Toggle) Off() { t.on.Store(false) }

// MaybeError asks the Injector if t is on.
func (t *Toggle) MaybeError(op Op) error {
	if !t.on.Load() {
		return nil
	}
	return t.Injector.MaybeError(op)
}

// Counter is an Injector that counts the errors its Injector injects, so
// that a test can compare the count with the errors the code under test
// saw and prove that none was swallowed.
type Counter struct {
	Injector
	count atomic.Int64
}

// MaybeError asks the Injector and counts a non-nil answer.
func (c *Counter) MaybeError(op Op) error {
	err := c.Injector.MaybeError(op)
	if err != nil {
		c.count.Add(1)
	}
	return err
}

// Count returns the number of errors injected so far.
func (c *Counter) Count() int64 { return c.count.Load() }
