package rename

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/nfsindex/nfsindex/vfs"
)

// Claim is one compaction in progress: it holds the lock of a name and
// writes the version that Commit installs. Write the payload with Write,
// then call Commit, or Abort to give up. A Claim is not safe for
// concurrent use. A Claim that is dropped without Commit or Abort keeps
// the lock until another host finds it stale (Options.StaleAge).
type Claim struct {
	fsys  vfs.FS
	n     names
	id    uint64
	gen   uint64
	opts  Options
	f     vfs.File // the claim's file, read-write; nil once closed
	buf   []byte
	size  int64 // payload bytes given to Write
	flush int64 // payload bytes written to f
	hash  *xxhash.Digest
	// probe is the server's clock when the claim was prepared: the mtime
	// of the claim's own file right after a synced write (N18).
	probe time.Time
	// synced: the complete file is durable and closed; Commit only
	// remains to check and rename.
	synced bool
	done   bool
}

// Begin claims name (in a directory that exists) for a compaction that
// will install generation gen (the sequence number the new version
// reflects; not 0), without ever waiting: if another claim holds the lock
// and is not stale, it returns a *BusyError (ErrBusy) at once. If this
// claimant paused for StaleAge while claiming and a Sweep removed its
// claim, it returns a *LostError (ErrLost): nothing is claimed.
//
// The claim is prepared privately first: a directory <name>.claim.<id>
// holding the claim's file <id>, whose header names the claimant and is
// synced (its mtime is the server's clock, the probe that judges other
// claims). Then one rename moves that directory onto <name>.lock. The
// server lets it replace nothing but an empty directory, so it succeeds
// only when no claim holds the lock: the single test-and-set of the
// protocol. A lock that holds only stale claims is freed by removing their
// files (each by its unique name), and the rename is tried once more.
// See the package documentation for why this, and not an exclusive create
// of a lock file, is the claim.
func Begin(ctx context.Context, fsys vfs.FS, name string, gen uint64, opts Options) (*Claim, error) {
	n, err := newNames(name)
	if err != nil {
		return nil, err
	}
	if gen == 0 {
		return nil, fmt.Errorf("rename: %s: generation 0 is reserved", name)
	}
	if opts, err = opts.withDefaults(); err != nil {
		return nil, err
	}
	id := opts.Rand.Uint64()
	for id == 0 {
		id = opts.Rand.Uint64()
	}
	c := &Claim{fsys: fsys, n: n, id: id, gen: gen, opts: opts, hash: xxhash.New()}
	if err := c.prepare(ctx); err != nil {
		c.discard()
		return nil, err
	}
	const attempts = 2 // a second rename only after freeing stale claims
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			c.discard()
			return nil, err
		}
		err := fsys.Rename(n.private(id), n.lock)
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, fs.ErrNotExist):
			// Our private directory is gone: the rename was executed and
			// its reply lost, and the retransmission found no source
			// (N14); or Sweep removed it because we were stale. Our
			// file's handle tells which.
			if err := c.confirmClaim(); err != nil {
				c.discard()
				return nil, err
			}
			return c, nil
		case busy(err):
			last := attempt == attempts
			holders, free, ierr := c.inspect(ctx, !last)
			if ierr != nil {
				c.discard()
				return nil, ierr
			}
			if free && !last {
				continue
			}
			c.discard()
			return nil, &BusyError{Name: name, Holders: holders}
		default:
			c.discard()
			return nil, fmt.Errorf("rename: claim %s: %w", name, err)
		}
	}
}

// confirmClaim resolves a claim rename that answered ENOENT: our private
// directory is gone, moved by our own rename (whose reply was lost, N14)
// or removed by Sweep (we were stale), which removes our file first. Our
// own client may not know either (its names can lag within one timestamp
// tick, N3), but our file's handle tells: a SETATTR answers with fresh
// attributes, and the file still has a name (nlink) only if it was moved.
// Then the names are refreshed from the server, so that the lock resolves
// to our directory for the install.
func (c *Claim) confirmClaim() error {
	alive, _, err := c.handleAlive(HeaderSize)
	if err != nil {
		return fmt.Errorf("rename: %s: confirm claim: %w", c.n.name, err)
	}
	if !alive {
		return &LostError{Name: c.n.name, ClaimID: c.id, Err: fs.ErrNotExist}
	}
	refreshNames(c.fsys, c.n.dir)
	return nil
}

// handleAlive asks the server, through the claim file's handle, whether
// the file still has a name: a SETATTR of its size (which changes no data)
// returns fresh attributes whatever this client caches. It also returns
// the file's id.
func (c *Claim) handleAlive(size int64) (alive bool, ino uint64, err error) {
	err = c.f.Truncate(size)
	var fi vfs.FileInfo
	if err == nil {
		fi, err = c.f.Stat()
	}
	switch {
	case errors.Is(err, vfs.ErrStale):
		return false, 0, nil // removed, and gone at the server
	case err != nil:
		return false, 0, err
	}
	return fi.Nlink > 0, fi.Ino, nil
}

// busy reports whether a claim rename failed because the lock is held
// (a non-empty directory, or something that is not a directory).
func busy(err error) bool {
	return errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR)
}

// prepare makes the claim's private directory and file, writes and syncs
// a claimed header, and learns the server's clock from the file's mtime.
func (c *Claim) prepare(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	priv := c.n.private(c.id)
	// EEXIST on a name with a random id is our own MKDIR executed twice
	// after a lost reply (N14): it is ours.
	if err := c.fsys.Mkdir(priv, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("rename: prepare claim: %w", err)
	}
	p := priv + "/" + entry(c.id)
	f, err := c.fsys.OpenFile(p, vfs.ReadWrite|vfs.Create|vfs.Excl, 0o644)
	if errors.Is(err, fs.ErrExist) {
		// Our own exclusive create, retransmitted and answered EEXIST by
		// a server without EXCLUSIVE support (GUARDED, N13/N14).
		f, err = c.fsys.OpenFile(p, vfs.ReadWrite, 0)
	}
	if err != nil {
		return c.prepareErr(err)
	}
	c.f = f
	if err := c.writeHeader(StateClaimed); err != nil {
		return err
	}
	if err := c.f.Sync(); err != nil {
		return c.prepareErr(err)
	}
	fi, err := c.f.Stat()
	if err != nil {
		return c.prepareErr(err)
	}
	c.probe = later(fi.ModTime, fi.ChangeTime)
	return nil
}

// prepareErr wraps an error of preparing the claim after its private
// directory was made: ENOENT or ESTALE mean the directory or the file was
// removed, by a Sweep that found this claimant stale (it paused for
// StaleAge while preparing): a *LostError, as the claim rename would
// report.
func (c *Claim) prepareErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, vfs.ErrStale) {
		return &LostError{Name: c.n.name, ClaimID: c.id, Err: err}
	}
	return fmt.Errorf("rename: prepare claim: %w", err)
}

// discard removes a claim that never held the lock (best effort: what
// it leaves is litter for Sweep).
func (c *Claim) discard() {
	if c.f != nil {
		_ = c.f.Close()
		c.f = nil
	}
	priv := c.n.private(c.id)
	_ = c.fsys.Remove(priv + "/" + entry(c.id))
	_ = c.fsys.Remove(priv)
	c.done = true
}

// header returns the claim's header in the given state.
func (c *Claim) header(state uint16) header {
	h := header{State: state, Info: Info{Generation: c.gen, ClaimID: c.id, Host: c.opts.Host}}
	if state == StateComplete {
		h.Size, h.Checksum = c.size, c.hash.Sum64()
	}
	return h
}

func (c *Claim) writeHeader(state uint16) error {
	b := make([]byte, HeaderSize)
	encodeHeader(b, c.header(state))
	if _, err := c.f.WriteAt(b, 0); err != nil {
		return c.writeErr("write header", err)
	}
	return nil
}

// writeErr wraps an error of the claim's file: ESTALE means the file was
// removed under us, by a host that took the claim over.
func (c *Claim) writeErr(op string, err error) error {
	if errors.Is(err, vfs.ErrStale) {
		return &LostError{Name: c.n.name, ClaimID: c.id, Err: err}
	}
	return fmt.Errorf("rename: %s: %s: %w", c.n.name, op, err)
}

// Info returns what the claim will install: its generation, claim id,
// host, and the payload written so far.
func (c *Claim) Info() Info {
	return Info{Generation: c.gen, ClaimID: c.id, Host: c.opts.Host, Size: c.size, Checksum: c.hash.Sum64()}
}

// Write appends p to the payload. It buffers up to Options.BufferSize
// bytes and writes them with one WriteAt; nothing is durable before
// Commit.
func (c *Claim) Write(p []byte) (int, error) {
	if c.done || c.synced {
		return 0, ErrClosed
	}
	c.hash.Write(p)
	c.size += int64(len(p))
	c.buf = append(c.buf, p...)
	if len(c.buf) >= c.opts.BufferSize {
		if err := c.flushBuf(); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

func (c *Claim) flushBuf() error {
	if len(c.buf) == 0 {
		return nil
	}
	if _, err := c.f.WriteAt(c.buf, HeaderSize+c.flush); err != nil {
		return c.writeErr("write", err)
	}
	c.flush += int64(len(c.buf))
	c.buf = c.buf[:0]
	return nil
}

// Heartbeat makes the payload written so far durable and rewrites the
// claimed header, so that the server's mtime of the claim's file is
// fresh: a compaction that may run longer than Options.StaleAge calls it
// more often than that, or another host will take the claim over (which
// costs this one its work, never correctness). It returns a *LostError
// (ErrLost) if the claim was taken over; the Claim is over then.
func (c *Claim) Heartbeat(ctx context.Context) error {
	if c.done || c.synced {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.flushBuf(); err != nil {
		return err
	}
	if err := c.writeHeader(StateClaimed); err != nil {
		return err
	}
	if err := c.f.Sync(); err != nil {
		return c.failed(c.writeErr("sync", err))
	}
	// A server that keeps unlinked open files (N15) takes our writes
	// after a takeover removed the file: ask the handle.
	alive, _, err := c.handleAlive(HeaderSize + c.flush)
	if err != nil {
		return fmt.Errorf("rename: %s: heartbeat: %w", c.n.name, err)
	}
	if !alive {
		return c.failed(&LostError{Name: c.n.name, ClaimID: c.id})
	}
	return nil
}

// Commit makes the version durable and installs it at the name:
//
//  1. the buffered payload and the complete header are written and the
//     file is synced (Sync) and closed: the only barrier, before the file
//     can become visible;
//  2. the fencing check: the version at the name is read afresh
//     (directory revalidated, then opened by name) and if its generation
//     is not older than the claim's, the claim is released and a
//     *FencedError (ErrFenced) returned;
//  3. rename(<name>.lock/<id>, <name>): atomic at the server, and it
//     succeeds only if the claim's file is still in the lock directory,
//     i.e. nobody took the claim over; it also releases the lock, which
//     is left empty;
//  4. SyncDir of the name's directory (needed on a local disk).
//
// If the rename reports ENOENT (after one retry on ESTALE, as the Linux
// VFS does), the claim's file is no longer in the lock: moved by this
// rename, whose reply was lost (N14), or removed by a host that took the
// claim over. Commit asks the file's handle, which no client cache can
// fool (see resolveInstall), and returns nil if the rename happened, a
// *LostError (ErrLost) if the claim was taken over, or a *FencedError if
// a newer version is installed by now. An error matching ErrUnknown
// leaves the outcome unknown and the Claim open: call Commit again (it only
// re-checks and renames) or Abort; OpenLatest tells which version is
// installed by its claim id.
func (c *Claim) Commit(ctx context.Context) (Info, error) {
	return c.commit(ctx, c.n)
}

// CommitTo is Commit installing the version under target instead of the
// claim's name, in the same directory: for versions kept under names of
// their own (index.<generation>), claimed under one lock. The fencing
// check reads target, so it fences nothing when target does not exist
// yet; the lock still serializes installs.
func (c *Claim) CommitTo(ctx context.Context, target string) (Info, error) {
	t, err := newNames(target)
	if err != nil {
		return Info{}, err
	}
	if t.dir != c.n.dir {
		return Info{}, fmt.Errorf("rename: CommitTo %s: not in the directory of %s", target, c.n.name)
	}
	return c.commit(ctx, t)
}

func (c *Claim) commit(ctx context.Context, t names) (Info, error) {
	if c.done {
		return Info{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	if !c.synced {
		if err := c.flushBuf(); err != nil {
			return Info{}, c.failed(err)
		}
		if err := c.writeHeader(StateComplete); err != nil {
			return Info{}, c.failed(err)
		}
		if err := c.f.Sync(); err != nil {
			return Info{}, c.failed(c.writeErr("sync", err))
		}
		c.synced = true
	}
	info := c.Info()
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	cur, ok, err := c.installed(ctx, t)
	if err != nil {
		return Info{}, err
	}
	if ok && cur.Generation >= c.gen {
		c.release()
		return Info{}, &FencedError{Name: t.name, Installed: cur, Generation: c.gen}
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	const attempts = 2 // a second rename only when our file is still in the lock
	for attempt := 1; ; attempt++ {
		err = c.staleRetry(func() error { return c.fsys.Rename(c.n.inLock(c.id), t.name) })
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, vfs.ErrStale) {
			return Info{}, fmt.Errorf("%w: %s: %w", ErrUnknown, t.name, err)
		}
		again, rerr := c.resolveInstall(ctx, t, err)
		if rerr != nil {
			return Info{}, rerr
		}
		if !again {
			break
		}
		if attempt == attempts {
			return Info{}, fmt.Errorf("%w: %s: %w, yet the claim's file is still in the lock", ErrUnknown, t.name, err)
		}
	}
	c.closeFile()
	c.done = true
	if err := c.fsys.SyncDir(c.n.dir); err != nil {
		return info, fmt.Errorf("rename: %s: installed, but syncing the directory failed: %w", t.name, err)
	}
	return info, nil
}

// resolveInstall learns what an install rename that answered ENOENT did:
// our file is not in the lock any more, moved by our rename (whose reply
// was lost, N14) or removed by a host that took the claim over. Names
// cannot tell for sure: within one timestamp tick, our client cannot see
// its own rename (N3), and its cache may still say the name is absent.
// Our file's handle can: if the file still has a name, our rename moved
// it, unless a taker on this very host removed it while we held it open,
// which made the client silly-rename it inside the lock to .nfs<file id>
// (N17), which the lock's listing shows. If it has no name it was removed,
// or installed and already replaced by a newer version, which the version
// at the name then shows. It returns nil if the version was installed,
// and again if our file is still in the lock: the rename was never sent,
// because the client's silly rename of a target it holds open (N17) went
// first and answered ENOENT after its own lost reply (N14).
func (c *Claim) resolveInstall(ctx context.Context, t names, renameErr error) (again bool, err error) {
	end := func(err error) error {
		c.closeFile()
		c.done = true
		return err
	}
	alive, ino, err := c.handleAlive(HeaderSize + c.size)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w; checking: %w", ErrUnknown, t.name, renameErr, err)
	}
	if alive {
		var entries []string
		err := c.staleRetry(func() (err error) { entries, err = c.fsys.ReadDir(c.n.lock); return err })
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, vfs.ErrStale):
			return false, nil // the lock we held was emptied and replaced: by our rename
		case err != nil:
			return false, fmt.Errorf("%w: %s: %w; checking: %w", ErrUnknown, t.name, renameErr, err)
		case slices.Contains(entries, entry(c.id)):
			return true, nil
		}
		silly := fmt.Sprintf(".nfs%016x", ino)
		if slices.ContainsFunc(entries, func(e string) bool { return strings.HasPrefix(e, silly) }) {
			return false, end(&LostError{Name: t.name, ClaimID: c.id, Err: renameErr})
		}
		return false, nil
	}
	refreshNames(c.fsys, t.dir)
	if cur, ok, err := c.installed(ctx, t); err == nil && ok && cur.ClaimID != c.id && cur.Generation >= c.gen {
		return false, end(&FencedError{Name: t.name, Installed: cur, Generation: c.gen})
	}
	return false, end(&LostError{Name: t.name, ClaimID: c.id, Err: renameErr})
}

// failed handles an error before the file was complete: a lost claim is
// over; anything else is reported and leaves the Claim for Abort.
func (c *Claim) failed(err error) error {
	if errors.Is(err, ErrLost) {
		c.closeFile()
		c.done = true
	}
	return err
}

func (c *Claim) closeFile() {
	if c.f != nil {
		_ = c.f.Close()
		c.f = nil
	}
}

// installed reads the header of the version at the name afresh: the
// directory is revalidated first, so a name this host cached before
// another host's rename is looked up again (N5). ok is false if there is
// no valid version (absent, or not a complete version file: a compaction
// may replace that).
func (c *Claim) installed(ctx context.Context, t names) (cur Info, ok bool, err error) {
	v, err := openLatest(ctx, c.fsys, t, c.opts)
	switch {
	case err == nil:
		cur = v.Info()
		_ = v.Close()
		return cur, true, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrCorrupt):
		return Info{}, false, nil
	default:
		return Info{}, false, fmt.Errorf("rename: %s: fencing check: %w", t.name, err)
	}
}

// release removes the claim's file, which frees the lock (best effort:
// if it fails the claim goes stale).
func (c *Claim) release() {
	c.closeFile()
	_ = c.staleRetry(func() error { return c.fsys.Remove(c.n.inLock(c.id)) })
	c.done = true
}

// Abort gives the claim up: the claim's file is removed, which frees the
// lock. Aborting a claim that was taken over is not an error.
func (c *Claim) Abort(ctx context.Context) error {
	if c.done {
		return ErrClosed
	}
	c.closeFile()
	c.done = true
	err := c.staleRetry(func() error { return c.fsys.Remove(c.n.inLock(c.id)) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, vfs.ErrStale) {
		return fmt.Errorf("rename: %s: abort: %w", c.n.name, err)
	}
	return nil
}

// inspect looks at the claims in the lock directory after a claim rename
// found it busy, judges each by the server's clock, and with seize
// removes the stale ones. free reports that nothing is left in the lock.
func (c *Claim) inspect(ctx context.Context, seize bool) (holders []Holder, free bool, err error) {
	var entries []string
	err = c.staleRetry(func() (err error) { entries, err = c.fsys.ReadDir(c.n.lock); return err })
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, vfs.ErrStale):
		return nil, true, nil // freed, or replaced by a newer claim, meanwhile
	case errors.Is(err, syscall.ENOTDIR):
		// Something that is not a claim holds the lock's name.
		h, gone, err := judge(c.fsys, c.n.lock, c.probe, c.opts.StaleAge)
		if err != nil || gone {
			return nil, gone, err
		}
		if h.Stale && seize && c.removeStale(c.n.lock) {
			return []Holder{h}, true, nil
		}
		return []Holder{h}, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("rename: %s: inspect the lock: %w", c.n.name, err)
	}
	left := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return holders, false, err
		}
		p := c.n.lock + "/" + e
		h, gone, err := judge(c.fsys, p, c.probe, c.opts.StaleAge)
		if err != nil {
			return holders, false, err
		}
		if gone {
			continue
		}
		holders = append(holders, h)
		if h.Stale && seize && c.removeStale(p) {
			continue
		}
		left++
	}
	return holders, left == 0, nil
}

// removeStale removes a stale claim's file by its unique name and reports
// whether it is gone. A seizure and the holder's install rename act on the
// same directory entry: the server executes one of them first, and the
// other finds nothing.
func (c *Claim) removeStale(p string) bool {
	err := c.staleRetry(func() error { return c.fsys.Remove(p) })
	return err == nil || errors.Is(err, fs.ErrNotExist)
}

// staleRetry runs a path operation and, if it fails with ESTALE, makes
// the client look the name's directory and the lock up again and runs it
// once more: what the Linux VFS does for path-based system calls
// (retry_estale with LOOKUP_REVAL, N16). The lock directory is replaced by
// every claim, so a host that cached its name holds a dead handle (N5).
func (c *Claim) staleRetry(op func() error) error {
	err := op()
	if !errors.Is(err, vfs.ErrStale) {
		return err
	}
	revalidateDir(c.fsys, c.n.dir)
	revalidateDir(c.fsys, c.n.lock)
	return op()
}

// judge reads a claim file's server times (after an open, so they are
// fresh: close-to-open) and header, and tells whether it is stale
// relative to probe. gone reports that it no longer exists.
func judge(fsys vfs.FS, p string, probe time.Time, staleAge time.Duration) (h Holder, gone bool, err error) {
	h.Entry = p[lastSlash(p)+1:]
	var fi vfs.FileInfo
	f, err := fsys.OpenFile(p, vfs.ReadOnly, 0)
	if err == nil {
		fi, err = f.Stat()
		if err == nil {
			b := make([]byte, HeaderSize)
			if n, _ := f.ReadAt(b, 0); n == HeaderSize {
				if hd, derr := decodeHeader(b); derr == nil {
					h.ClaimID, h.Host, h.Generation, h.Known = hd.ClaimID, hd.Host, hd.Generation, true
				}
			}
		}
		_ = f.Close()
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, vfs.ErrStale) {
		// Not readable (a foreign file, mode 0 after N13): its times
		// are still in its attributes.
		fi, err = fsys.Stat(p)
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, vfs.ErrStale) {
		return Holder{}, true, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("rename: judge %s: %w", p, err)
	}
	h.Age = probe.Sub(later(fi.ModTime, fi.ChangeTime))
	h.Stale = h.Age >= staleAge || h.Age <= -staleAge
	return h, false, nil
}

func lastSlash(p string) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return i
		}
	}
	return -1
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
