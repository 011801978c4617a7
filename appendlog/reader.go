package appendlog

import (
	"context"
	"fmt"
	"path"

	"github.com/nfsindex/nfsindex/vfs"
)

// Reader reads a log, any host's, its own writer alive or dead, forever
// after: it opens the file read-only and never writes it. It sees the
// committed state as of its last Refresh, which never goes back. A Reader
// is not safe for concurrent use.
type Reader struct {
	lf *logFile
}

// OpenReader opens host's log in dir read-only and reads its header.
func OpenReader(ctx context.Context, fsys vfs.FS, dir, host string, opts Options) (*Reader, error) {
	if err := ValidHost(host); err != nil {
		return nil, err
	}
	name := path.Join(dir, LogName(host))
	f, err := fsys.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		return nil, fmt.Errorf("appendlog: open %s: %w", name, err)
	}
	lf, err := newLogFile(f, name, host, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	lf.reader = true
	lf.reopen = func() (vfs.File, error) { return fsys.OpenFile(name, vfs.ReadOnly, 0) }
	if opts.Cache != nil {
		lf.cache = &cacheState{c: opts.Cache}
		if err := lf.openCache(f); err != nil {
			f.Close()
			return nil, err
		}
	}
	r := &Reader{lf: lf}
	if err := lf.refresh(ctx); err != nil {
		lf.closeCache()
		f.Close()
		return nil, err
	}
	return r, nil
}

// Refresh rereads the header and returns the committed state: the newest
// header copy whose last group of frames is all there. On NFS the bytes may
// come from this host's page cache; reopen the Reader to revalidate it
// (close-to-open, N2). Errors: ErrReplaced (the file under the name is
// another log now), an atomicrec.ErrRegressed wrap (the newest state this
// Reader saw is no longer on disk: a stale cache or a lost unstable write),
// *CorruptError. On error the Reader keeps its previous state.
func (r *Reader) Refresh(ctx context.Context) (Info, error) {
	if err := r.lf.refresh(ctx); err != nil {
		return r.lf.info(), err
	}
	return r.lf.info(), nil
}

// Info returns the committed state as of the last Refresh.
func (r *Reader) Info() Info { return r.lf.info() }

// Read returns the committed record at ref. A ref at or beyond the
// committed length gives ErrNotCommitted: Refresh and retry. A frame that
// does not validate is reread a bounded number of times; then the Reader
// reopens the file by name (close-to-open revalidation, N2) and rereads
// the header: if the commit it trusted is no longer on disk (an unstable
// write lost in an NFS server crash, N10) the error wraps
// atomicrec.ErrRegressed (or ErrReplaced); if the frame still fails it is
// a *CorruptError: below used_file_size every byte was committed.
func (r *Reader) Read(ctx context.Context, ref Ref) (Record, error) { return r.lf.record(ctx, ref) }

// ReadBody is Read without the next word: the Record's Next is always 0.
// Everything else, and every error, is as Read's. With Options.Cache it is
// served from the cache alone once the frame's blocks are cached: Read
// (and Chain and Scan) must reread from the file a cached next word that
// does not read as set, since it is the one part of a committed frame that
// changes after its commit (set once, later); ReadBody does not need it.
func (r *Reader) ReadBody(ctx context.Context, ref Ref) (Record, error) {
	fr, err := r.lf.readFrame(ctx, int64(ref), r.lf.h.used)
	if err != nil {
		return Record{}, err
	}
	return Record{Ref: ref, Type: fr.typ, Payload: fr.payload, Prev: Ref(fr.prev)}, nil
}

// Chain returns the record at ref followed by its continuations, following
// next pointers while they are set and committed. Offsets strictly
// increase along a chain, so it ends; a pointer to a frame that does not
// continue its record is ErrChain.
func (r *Reader) Chain(ctx context.Context, ref Ref) ([]Record, error) {
	return r.lf.chain(ctx, ref)
}

// Scan calls fn for every committed record in log order and stops at the
// first error fn returns, which Scan returns.
func (r *Reader) Scan(ctx context.Context, fn func(Record) error) error { return r.lf.scan(ctx, fn) }

// Check verifies the whole committed log: the frames tile [DataStart,
// used) exactly, each valid; their number is the header's; the last group
// hashes to the header's group hash; and every next pointer leads to the
// frame that continues its record (continuations of the last group may
// still be unlinked: the writer links them after the group is durable).
// It is the hook for tests and proofs.
func (r *Reader) Check(ctx context.Context) error { return r.lf.check(ctx) }

// Close releases the file. With Options.Cache the blocks it cached stay in
// the cache (another Reader of the same log is served from them).
func (r *Reader) Close() error {
	r.lf.closeCache()
	return r.lf.f.Close()
}
