package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfsindex/nfsindex/appendlog"
	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/rename"
	"github.com/nfsindex/nfsindex/vfs"
)

// Options configure Open.
type Options struct {
	// FS is the file system: vfs/osfs on a local disk or an NFS mount, or
	// a host of nfssim.
	FS vfs.FS
	// Dir is the mailbox's index directory (created if missing).
	Dir string
	// Host names this host (gethostname); it names the host's logs of
	// cached fields and must differ between hosts. It may not contain '+'
	// (a log epoch's name is "<host>+<epoch>") and is at most
	// MaxHostLen bytes.
	Host string
	// UIDValidity of a mailbox this Open creates; 0 draws one.
	UIDValidity uint32
	// Rand draws idempotency owners and new mailboxes' ids. Pass a seeded
	// generator for a deterministic run; nil seeds one from crypto/rand.
	Rand *mrand.Rand
	// MaxCommitTries bounds how often one commit retries after losing the
	// race for a sequence number (default 1000).
	MaxCommitTries int
	// NamespaceDurable says that a created name is durable when the call
	// returns, so the directory need not be synced after installing a
	// record. True on NFS (namespace operations are synchronous at the
	// server, RFC 1813 §4), where the directory sync only costs a GETATTR;
	// false (the default) syncs the directory, as a local file system
	// needs.
	NamespaceDurable bool
	// SingleKernel says that every process using this mailbox runs on this
	// machine, over a local file system: never set it on NFS. A record's
	// publication is then visible to every reader at once through the one
	// page cache, so the publish WRITE is not synced: a durable commit
	// costs the record's creation and one directory sync, against two
	// syncs otherwise. After a power loss the tail may have lost
	// publications of durable records; Open finds them (the names after
	// the tail's end) and publishes them again before it returns. On NFS
	// an unsynced publication stays in the writer's page cache, invisible
	// to other hosts (N2): that would break freshness.
	SingleKernel bool
	// CompactRatio triggers a compaction after a commit once the records
	// since the last snapshot number at least this fraction of the
	// messages (default 0.5, the seed's 50%; negative: never
	// automatically), and at least CompactMinRecords (default 1024).
	CompactRatio      float64
	CompactMinRecords int
	// CompactStaleAge is how long, by the NFS server's clock, a
	// compaction claim may go without a change the server saw before
	// another host takes it over (rename.Options.StaleAge; default
	// rename.DefaultStaleAge, 2 minutes). A compaction that runs longer
	// loses its claim and its work, never correctness. All hosts of a
	// mailbox should use the same value.
	CompactStaleAge time.Duration
	// FieldCompactRatio triggers a rewrite of this host's logs of cached
	// fields after a commit (Mailbox.CompactFields) once at least this
	// fraction of their records is no longer referenced by the mailbox
	// (default 0.2, the seed's 20% for variable data; negative: never
	// automatically), and they hold at least FieldCompactMinRecords
	// records (default 1024). Garbage is counted in records, not bytes.
	FieldCompactRatio      float64
	FieldCompactMinRecords int
	// FieldCacheBytes bounds the memory of the block cache (readahead)
	// through which this Mailbox reads other hosts' field logs (and its
	// own older ones): FieldValue of a value whose log block is cached
	// costs no I/O, even after the log's host appended more (on NFS that
	// drops this host's page cache of the file, N2). Only committed,
	// durable bytes are cached (appendlog.Options.Cache). 0 means
	// DefaultFieldCacheBytes; negative: no cache, every FieldValue reads
	// the file. Blocks are 64 KiB (smaller when the bound is).
	FieldCacheBytes int64
	// GroupWindow, when positive, is how long the first of several
	// concurrent commits waits for others to join its group before it
	// commits them all (PostgreSQL's commit_delay, MySQL's
	// binlog_group_commit_sync_delay): latency traded for fewer syncs per
	// commit. 0 (the default): a group is whatever queued while the
	// previous one was being committed, which adds no latency. It needs
	// Sleep.
	GroupWindow time.Duration
	// Sleep waits d on the file system's clock: time.Sleep on a real file
	// system, Host.Sleep under nfssim. The engine never reads a clock of
	// its own (every run under nfssim replays from its seed); it sleeps
	// only for GroupWindow.
	Sleep func(d time.Duration)
	_     struct{}
}

// Mailbox is one open mailbox index. It is safe for concurrent use by the
// goroutines of one process. Under nfssim, give each simulated process
// (task) its own Mailbox: the simulator runs one task at a time, so a
// task may never wait for another.
type Mailbox struct {
	// mu is held by whoever works on the state or the files: a reader, a
	// compaction, or the leader of a commit group. qmu guards only queue,
	// the transactions waiting to be committed, so that committers can
	// join a group while its leader holds mu.
	mu      sync.Mutex
	qmu     sync.Mutex
	queue   []*commitReq
	window  chan struct{} // the open group-commit window, closed when it ends
	opt     Options
	fsys    vfs.FS
	rng     *mrand.Rand
	st      *state
	owner   uint64
	nextN   atomic.Uint64 // the last transaction number given out
	pub     vfs.File      // the tail named pubName, opened DSync for publishing
	pubName string
	// firstDead: tail.1, the one tail never removed, is known to be
	// marked dead (a mark is never undone), so retire need not look.
	firstDead bool
	fields    *appendlog.Writer
	logs      map[string]*appendlog.Reader
	fcache    *readahead.Cache // reads of the logs in logs; nil: none
	flog      *fieldLogs       // this host's field log epochs (fieldlog.go)
	closed    bool
}

// Open opens (creating if needed) the mailbox index in opt.Dir. It reads
// every committed change: a Mailbox starts fresh.
func Open(ctx context.Context, opt Options) (*Mailbox, error) {
	if opt.FS == nil || opt.Dir == "" {
		return nil, errors.New("engine: Options.FS and Options.Dir are required")
	}
	if err := validHost(opt.Host); err != nil {
		return nil, fmt.Errorf("engine: Options.Host: %w", err)
	}
	if opt.GroupWindow > 0 && opt.Sleep == nil {
		return nil, errors.New("engine: Options.GroupWindow needs Options.Sleep")
	}
	if opt.MaxCommitTries <= 0 {
		opt.MaxCommitTries = 1000
	}
	if opt.CompactRatio == 0 {
		opt.CompactRatio = 0.5
	}
	if opt.CompactMinRecords <= 0 {
		opt.CompactMinRecords = 1024
	}
	if opt.CompactStaleAge <= 0 {
		opt.CompactStaleAge = rename.DefaultStaleAge
	}
	if opt.FieldCompactRatio == 0 {
		opt.FieldCompactRatio = 0.2
	}
	if opt.FieldCompactMinRecords <= 0 {
		opt.FieldCompactMinRecords = 1024
	}
	rng := opt.Rand
	if rng == nil {
		var seed [16]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return nil, err
		}
		rng = mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	}
	m := &Mailbox{opt: opt, fsys: opt.FS, rng: rng, st: newState(), logs: map[string]*appendlog.Reader{}}
	if opt.FieldCacheBytes >= 0 {
		c, err := newFieldCache(opt.FieldCacheBytes)
		if err != nil {
			return nil, err
		}
		m.fcache = c
	}
	m.owner = rng.Uint64() | 1
	if err := m.loadNewest(ctx); errors.Is(err, fs.ErrNotExist) {
		// A new mailbox: its directory is made on first open.
		if err := m.fsys.Mkdir(opt.Dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("engine: open: %w", err)
		}
	} else if err != nil {
		return nil, err
	}
	if m.st.gen == 1 {
		// Only generation 1's tail is created here: every later one is
		// created by the compactor that opens its generation, under a
		// name no one else ever creates (tailName).
		if err := m.createFirstTail(); err != nil {
			return nil, err
		}
	}
	if err := m.refresh(ctx); err != nil {
		m.closeFiles()
		return nil, err
	}
	if opt.SingleKernel {
		if err := m.republish(ctx); err != nil {
			m.closeFiles()
			return nil, err
		}
	}
	if !m.st.created {
		uv := opt.UIDValidity
		for uv == 0 {
			uv = rng.Uint32()
		}
		create := op{kind: opCreate, uidValidity: uv, indexID: rng.Uint64()}
		if _, err := m.commitOps(ctx, []op{create}, Key{}); err != nil {
			m.closeFiles()
			return nil, err
		}
	}
	return m, nil
}

func (m *Mailbox) path(name string) string { return path.Join(m.opt.Dir, name) }

// createFirstTail creates tail.1 if missing: anyone opening a mailbox
// with no snapshot listed may (the first wins). It is never removed, so
// this never re-creates a retired tail: an opener whose listing missed
// every snapshot (N6) finds it marked dead and reloads.
func (m *Mailbox) createFirstTail() error {
	name := tailName(1, 0)
	f, err := m.fsys.OpenFile(m.path(name), vfs.WriteOnly|vfs.Create, 0o644)
	if err != nil {
		return fmt.Errorf("engine: create %s: %w", name, err)
	}
	return f.Close()
}

// Close releases the mailbox. Commits in flight finish first.
func (m *Mailbox) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	return m.closeFiles()
}

func (m *Mailbox) closeFiles() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if m.pub != nil {
		keep(m.pub.Close())
		m.pub = nil
	}
	if m.fields != nil {
		keep(m.fields.Close())
		m.fields = nil
	}
	for h, r := range m.logs {
		keep(r.Close())
		delete(m.logs, h)
	}
	m.fcache = nil // its blocks go with it
	return first
}

// Header returns the mailbox header as of the last sync or commit.
func (m *Mailbox) Header() Header {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.header
}

// readRecord reads the record at (gen, seq). The name exists: it was
// published, or our own exclusive create reported it.
func (m *Mailbox) readRecord(gen uint32, seq uint64) (*record, error) {
	name := recordName(gen, seq)
	target, err := m.fsys.Readlink(m.path(name))
	if err != nil {
		return nil, fmt.Errorf("engine: read %s: %w", name, err)
	}
	r, err := decodeRecord(name, target)
	if err != nil {
		return nil, err
	}
	if r.gen != gen || r.seq != seq {
		return nil, corrupt(name, "record claims generation %d sequence %d", r.gen, r.seq)
	}
	return r, nil
}

// refresh reads every published record this Mailbox has not applied
// yet: the tail's size, read from the server (1 RPC), says how many.
func (m *Mailbox) refresh(ctx context.Context) error {
	for range 1 << 16 { // one round per generation crossed
		if err := ctx.Err(); err != nil {
			return err
		}
		gen := m.st.gen
		size, err := m.tailSize()
		if gone(err) || size >= deadOffset {
			// The generation is over: a snapshot holds all of it.
			if err := m.reload(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		published := m.st.base + uint64(size)
		crossed := false
		for m.st.applied < published && !crossed {
			r, err := m.readRecord(gen, m.st.applied+1)
			if gone(err) {
				crossed = true // removed by a compaction: reload
				if err := m.reload(ctx); err != nil {
					return err
				}
				break
			}
			if err != nil {
				return err
			}
			if _, err := m.applyRecord(r); err != nil {
				return err
			}
			_, crossed = r.isSeal()
		}
		if !crossed {
			return nil
		}
	}
	return fmt.Errorf("engine: refresh crossed too many generations")
}

// tailSize reads the size of the current generation's tail from the
// server (StatFresh: one GETATTR on NFSv3 and v4.2 alike, never the
// attribute cache, N1). The size only grows, so even a v3 server with
// coarse timestamps shows the change (N3 hides only same-size rewrites).
// A removed tail answers ENOENT (the client retries the lookup after
// ESTALE): the generation was retired.
func (m *Mailbox) tailSize() (int64, error) {
	name := tailName(m.st.gen, m.st.tail)
	st, err := m.fsys.StatFresh(m.path(name))
	if err != nil {
		return 0, fmt.Errorf("engine: stat %s: %w", name, err)
	}
	return st.Size, nil
}

func (m *Mailbox) applyRecord(r *record) (change, error) {
	ch, err := m.st.apply(r)
	if nextGen, ok := r.isSeal(); ok && err == nil && nextGen != m.st.gen {
		return ch, corrupt(recordName(r.gen, r.seq), "seal to generation %d applied as %d", nextGen, m.st.gen)
	}
	return ch, err
}

// publish writes the slot of record seq of the current generation in its
// tail, so that a Sync anywhere sees it, and reports whether the
// generation was still live when the write reached the server.
func (m *Mailbox) publish(seq uint64) error {
	gen, name := m.st.gen, tailName(m.st.gen, m.st.tail)
	if m.pub == nil || m.pubName != name {
		if m.pub != nil {
			m.pub.Close()
			m.pub = nil
		}
		flag := vfs.WriteOnly | vfs.DSync
		if m.opt.SingleKernel {
			flag = vfs.WriteOnly // visible at once; the record is durable
		}
		f, err := m.fsys.OpenFile(m.path(name), flag, 0)
		if err != nil {
			return fmt.Errorf("engine: open %s: %w", name, err)
		}
		m.pub, m.pubName = f, name
	}
	if _, err := m.pub.WriteAt([]byte{1}, int64(seq-m.st.base-1)); err != nil {
		return fmt.Errorf("engine: publish %s: %w", recordName(gen, seq), err)
	}
	st, err := m.pub.Stat()
	if err != nil {
		return fmt.Errorf("engine: publish %s: %w", recordName(gen, seq), err)
	}
	if st.Size >= deadOffset {
		return errDead
	}
	return nil
}

// republish (SingleKernel only) applies and publishes the records
// installed past the end of the tail: after a power loss, publications
// of records that were durable (and acknowledged) may be lost with the
// tail's unsynced size. Every installed record of a live generation is
// committed (the next committer would meet it and publish past it), so
// applying it is what any committer does; a seal is published and
// followed into its generation. It stops at the first name that does not
// exist: a local file system has no negative name cache to lie about it
// (N4 is an NFS client's). One Readlink when nothing was lost.
func (m *Mailbox) republish(ctx context.Context) error {
	for range 1 << 20 {
		r, err := m.readRecord(m.st.gen, m.st.applied+1)
		if gone(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := m.applyForeign(ctx, r); err != nil {
			return err
		}
		if _, seal := r.isSeal(); seal {
			continue // published by applyForeign
		}
		if err := m.publish(r.seq); errors.Is(err, errDead) || gone(err) {
			// Retired meanwhile: a snapshot holds what is committed.
			if err := m.reload(ctx); err != nil {
				return err
			}
			return m.refresh(ctx)
		} else if err != nil {
			return err
		}
	}
	return fmt.Errorf("engine: too many unpublished records")
}

// errDead: the generation a record was installed in was already over
// when it was published (the record may be a zombie).
var errDead = errors.New("engine: generation over")

// gone reports whether err says a file was removed (by a compaction).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, vfs.ErrStale)
}

// Sync reads every change committed anywhere since the last Sync or
// Commit of this Mailbox: one RPC when there is none.
func (m *Mailbox) Sync(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return m.refresh(ctx)
}

// Committed reports whether the transaction with key k was committed. It
// first makes sure every installed record is visible, by committing an
// empty record (which also publishes records whose committer crashed
// before publishing them).
func (m *Mailbox) Committed(ctx context.Context, k Key) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	if err := m.refresh(ctx); err != nil {
		return false, err
	}
	if ok, err := m.st.committed(k); ok || err != nil {
		return ok, err
	}
	if _, err := m.commitOps(ctx, nil, Key{}); err != nil {
		return false, err
	}
	return m.st.committed(k)
}
