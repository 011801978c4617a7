package rename

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// ServerTime learns the server's clock: it creates a probe file
// <name>.probe.<id> next to name, writes and syncs it, reads its mtime,
// and removes it. The answer is the server's clock (N18) within its
// timestamp granularity plus one round trip; the local clock is never
// read. A v3 exclusive create leaves garbage times until its SETATTR
// (N13), so only the mtime after the synced write is trusted.
func ServerTime(ctx context.Context, fsys vfs.FS, name string, opts Options) (time.Time, error) {
	n, err := newNames(name)
	if err != nil {
		return time.Time{}, err
	}
	if opts, err = opts.withDefaults(); err != nil {
		return time.Time{}, err
	}
	return serverTime(ctx, fsys, n, opts)
}

func serverTime(ctx context.Context, fsys vfs.FS, n names, opts Options) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	id := opts.Rand.Uint64()
	p := fmt.Sprintf("%s%s%016x", n.name, probeInfix, id)
	f, err := fsys.OpenFile(p, vfs.ReadWrite|vfs.Create|vfs.Excl, 0o644)
	if errors.Is(err, fs.ErrExist) { // our own retransmitted create (N14)
		f, err = fsys.OpenFile(p, vfs.ReadWrite, 0)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("rename: server time: %w", err)
	}
	defer func() { _ = fsys.Remove(p) }()
	var b [8]byte
	for i := range b {
		b[i] = byte(id >> (8 * i))
	}
	_, err = f.WriteAt(b[:], 0)
	if err == nil {
		err = f.Sync()
	}
	var fi vfs.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("rename: server time: %w", err)
	}
	return later(fi.ModTime, fi.ChangeTime), nil
}

// PinMaxAge is the server-clock age after which Sweep removes a reader's
// pin (<name>.pin.<id>, see Version) as the litter of a reader that
// stopped: a Version held open longer than that may lose its pin and then
// read ESTALE (N15), and must be reopened. The age is that of the last pin
// of the same version. Litter pins keep replaced versions alive, which on
// NFSv3 can keep a host's stale name for the version alive too (N5): run
// Sweep now and then (after a compaction, say).
const PinMaxAge = time.Hour

// Sweep removes the litter of claims that never took the lock and whose
// hosts stopped: private claim directories <name>.claim.<id> and probe
// files whose every entry is stale by the server's clock (Options.StaleAge,
// in either direction: a file a v3 exclusive create left with garbage
// times is stale, N13), and pins older than PinMaxAge. It returns the
// names it removed. A claim that holds the lock is not litter: Begin takes
// stale ones over.
//
// Sweeping a claim whose host is only paused is safe: when it wakes, its
// claim rename or its install rename finds its file gone and its Begin or
// Commit returns ErrLost. The directory listing may be stale (N6); what it misses
// is swept next time.
func Sweep(ctx context.Context, fsys vfs.FS, name string, opts Options) ([]string, error) {
	n, err := newNames(name)
	if err != nil {
		return nil, err
	}
	if opts, err = opts.withDefaults(); err != nil {
		return nil, err
	}
	now, err := serverTime(ctx, fsys, n, opts)
	if err != nil {
		return nil, err
	}
	all, err := fsys.ReadDir(n.dir)
	if err != nil {
		return nil, fmt.Errorf("rename: sweep: %w", err)
	}
	// Judge every file before removing any: pins of one version share its
	// inode, whose ctime each removal refreshes.
	var stale, removed []string
	for _, e := range all {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		p := path.Join(n.dir, e)
		switch {
		case strings.HasPrefix(e, n.base+probeInfix):
			if h, gone, err := judge(fsys, p, now, opts.StaleAge); err == nil && !gone && h.Stale {
				stale = append(stale, p)
			}
		case strings.HasPrefix(e, n.base+pinInfix):
			if h, gone, err := judge(fsys, p, now, PinMaxAge); err == nil && !gone && h.Stale {
				stale = append(stale, p)
			}
		}
	}
	for _, p := range stale {
		if removeGone(fsys, p) {
			removed = append(removed, p)
		}
	}
	for _, e := range all {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		p := path.Join(n.dir, e)
		if strings.HasPrefix(e, n.base+claimInfix) && sweepClaimDir(fsys, p, now, opts.StaleAge) {
			removed = append(removed, p)
		}
	}
	slices.Sort(removed)
	return removed, nil
}

// sweepClaimDir removes a private claim directory if it and everything in
// it are stale. The directory's own time is judged first: removing its
// entries refreshes it.
func sweepClaimDir(fsys vfs.FS, p string, now time.Time, staleAge time.Duration) bool {
	d, gone, err := judge(fsys, p, now, staleAge)
	if err != nil || gone || !d.Stale {
		return false
	}
	entries, err := fsys.ReadDir(p)
	if err != nil {
		return false
	}
	for _, e := range entries {
		h, gone, err := judge(fsys, p+"/"+e, now, staleAge)
		if err != nil || (!gone && !h.Stale) {
			return false
		}
	}
	for _, e := range entries {
		if !removeGone(fsys, p+"/"+e) {
			return false
		}
	}
	err = fsys.Remove(p)
	return err == nil || errors.Is(err, fs.ErrNotExist)
}

// removeGone removes p and reports whether it is gone.
func removeGone(fsys vfs.FS, p string) bool {
	err := fsys.Remove(p)
	return err == nil || errors.Is(err, fs.ErrNotExist)
}
