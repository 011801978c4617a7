package appendlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/vfs"
)

// link is a next pointer to set once its target is durable.
type link struct{ from, to int64 }

// Writer appends to one host's log. There is one Writer per log, on the
// host the log is named after: appends never race for the end (N12), and
// no other host ever writes the file. A Writer is not safe for concurrent
// use.
type Writer struct {
	lf      *logFile
	fsys    vfs.FS
	buf     []byte // frames appended since the last Commit, to go at lf.h.used
	bufRecs uint64
	gh      groupHasher
	links   []link         // next pointers of committed records, set after the group is durable
	linked  map[int64]bool // records that got a continuation since the last Commit
	broken  error
	closed  bool
}

// Create creates host's log in dir and returns its Writer. The file is
// written and synced under a temporary name and then linked into place, so
// no host ever sees a log without a valid header, and an existing log is
// never replaced: if dir already holds one, Create fails with an error
// matching fs.ErrExist (reopen it with Open instead).
func Create(ctx context.Context, fsys vfs.FS, dir, host string, opts Options) (*Writer, error) {
	if err := ValidHost(host); err != nil {
		return nil, err
	}
	name := path.Join(dir, LogName(host))
	tmp := path.Join(dir, TempName(host))
	// A stale temporary name is ours (same host) from a crash: remove it.
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("appendlog: create %s: %w", name, err)
	}
	f, err := fsys.OpenFile(tmp, vfs.ReadWrite|vfs.Create|vfs.Excl, 0o644)
	if err != nil {
		return nil, fmt.Errorf("appendlog: create %s: %w", name, err)
	}
	if opts.Rand == nil {
		opts.Rand = atomicrec.NewRand()
	}
	lf, err := newLogFile(f, tmp, host, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	id := opts.ID
	for id == 0 {
		id = opts.Rand.Uint64()
	}
	h := header{id: id, used: DataStart, start: DataStart, groupHash: newGroupHasher().sum(), host: host}
	_, werr := lf.hdr.Update(ctx, encodeHeader(h))
	if werr == nil {
		werr = f.Sync() // size and data: the file must be whole before it has a name
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = linkOnce(fsys, tmp, name)
	}
	// Only this host uses tmp: ENOENT here is our own removal whose reply
	// was lost and retransmitted (N14).
	if rerr := fsys.Remove(tmp); werr == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		werr = rerr
	}
	if werr == nil {
		werr = fsys.SyncDir(dir)
	}
	if werr != nil {
		return nil, fmt.Errorf("appendlog: create %s: %w", name, werr)
	}
	return Open(ctx, fsys, dir, host, opts)
}

// linkOnce links tmp to name. A link whose reply was lost may report
// EEXIST although it succeeded (N14): then name is ours iff it is the same
// inode as tmp.
func linkOnce(fsys vfs.FS, tmp, name string) error {
	err := fsys.Link(tmp, name)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err
	}
	a, aerr := fsys.Stat(tmp)
	b, berr := fsys.Stat(name)
	if aerr == nil && berr == nil && a.Ino == b.Ino {
		return nil
	}
	return err
}

// Open opens host's log in dir for appending, recovering it after a crash:
// it takes the newest header copy whose last group of frames is complete
// (the committed length), overwrites a newer header copy that was not
// committed, finishes the next pointers of the last commit, and appends
// from the committed length on: bytes past it are garbage of an
// interrupted append and are overwritten (a logical truncation; the file
// is not shortened).
func Open(ctx context.Context, fsys vfs.FS, dir, host string, opts Options) (*Writer, error) {
	if err := ValidHost(host); err != nil {
		return nil, err
	}
	name := path.Join(dir, LogName(host))
	f, err := fsys.OpenFile(name, vfs.ReadWrite, 0)
	if err != nil {
		return nil, fmt.Errorf("appendlog: open %s: %w", name, err)
	}
	w, err := recoverLog(ctx, fsys, f, name, host, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

func recoverLog(ctx context.Context, fsys vfs.FS, f vfs.File, name, host string, opts Options) (*Writer, error) {
	lf, err := newLogFile(f, name, host, opts)
	if err != nil {
		return nil, err
	}
	c, err := lf.hdr.LoadDeferred(ctx, lf.accept)
	if err != nil {
		return nil, lf.headerErr(err)
	}
	h, err := decodeHeader(c.Value.Payload)
	assert(err == nil, "recover: accepted header does not decode")
	lf.id, lf.h, lf.gen, lf.sum = h.id, h, c.Value.Gen, c.Value.Sum
	w := &Writer{lf: lf, fsys: fsys, gh: newGroupHasher(), linked: make(map[int64]bool)}
	if err := w.persistAdopted(ctx); err != nil {
		return nil, err
	}
	if c.Rejected != nil {
		// A valid header copy newer than the committed one sits in the
		// slot the next commit writes. Its frames are incomplete; if a
		// crash let the next commit's frames complete them, it would come
		// back as committed although this recovery saw it was not. Replace
		// it now, durably, with a copy of the committed state.
		v, err := lf.hdr.Write(ctx, encodeHeader(h))
		if err == nil {
			err = f.Datasync()
		}
		if err != nil {
			return nil, fmt.Errorf("appendlog: recover %s: overwrite uncommitted header: %w", name, err)
		}
		lf.hdr.Durable(v)
		lf.gen, lf.sum = v.Gen, v.Sum
	}
	if err := w.repairLinks(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// persistAdopted makes the commit recovery adopted durable before anything
// builds on it. It may be the dead writer's last commit, whose WRITEs
// reached the server but whose COMMIT did not: the server holds it only in
// memory (N10) and loses it if it crashes, while the next commit would be
// stable, leaving a hole under used_file_size. COMMIT covers the whole
// file, whoever wrote it, but if the server crashes between this read and
// the COMMIT, a client re-sends only its own unstable writes: so recovery
// writes the last group's frames and the header copy again, byte for
// byte, and syncs once (next words are repairLinks' business). Groups
// before the last one were made durable by the commit or recovery that
// followed them.
func (w *Writer) persistAdopted(ctx context.Context) error {
	lf := w.lf
	if n := lf.h.used - lf.h.start; n > 0 {
		buf := make([]byte, n) // <= MaxGroupSize: decodeHeader checks it
		if err := lf.readAt(buf, lf.h.start); err != nil {
			return lf.corrupt(lf.h.start, err)
		}
		if _, err := lf.f.WriteAt(buf, lf.h.start); err != nil {
			return fmt.Errorf("appendlog: recover %s: rewrite last group: %w", lf.path, err)
		}
	}
	if err := lf.hdr.Persist(ctx); err != nil { // writes the header copy, then one Datasync for all
		return fmt.Errorf("appendlog: recover %s: %w", lf.path, err)
	}
	return nil
}

// repairLinks sets the next pointers of the last commit's continuations
// that a crash left unset (the writer sets them only after the group is
// durable, which persistAdopted has just ensured), and writes again, byte
// for byte, the ones it finds set (see below). Only the last group can
// have any: a Commit returns only after its links are durable, and the
// next Commit starts after that.
func (w *Writer) repairLinks(ctx context.Context) error {
	lf := w.lf
	var fix []link
	off := lf.h.start
	for steps := int64(0); off < lf.h.used; steps++ {
		assert(steps <= (lf.h.used-lf.h.start)/FrameOverhead, "repairLinks: loop bound")
		fr, err := lf.readFrame(ctx, off, lf.h.used)
		if err != nil {
			return err
		}
		if fr.prev != 0 {
			fix = append(fix, link{from: fr.prev, to: off})
		}
		off += fr.size
	}
	wrote := false
	for _, l := range fix {
		var word [atomicrec.SetOnceSize]byte
		if err := lf.readAt(word[:], l.from+fOffNext); err != nil {
			return lf.corrupt(l.from, err)
		}
		v, set, err := atomicrec.DecodeSetOnce(l.from+fOffNext, word[:])
		switch {
		case err == nil && set && v == uint64(l.to):
			// Maybe set only by the dead writer's unstable write (N10),
			// and read from this host's cache: if the server crashed
			// before persistAdopted's COMMIT, the word is gone there.
			// Written again below like an unset one.
		case err == nil && set:
			return lf.corrupt(l.from, fmt.Errorf("%w: %d already continues at %d, not %d", ErrChain, l.from, v, l.to))
		}
		word = atomicrec.EncodeSetOnce(l.from+fOffNext, uint64(l.to))
		if _, err := lf.f.WriteAt(word[:], l.from+fOffNext); err != nil {
			return fmt.Errorf("appendlog: recover %s: %w", lf.path, err)
		}
		wrote = true
	}
	if wrote {
		if err := lf.f.Datasync(); err != nil {
			return fmt.Errorf("appendlog: recover %s: %w", lf.path, err)
		}
	}
	return nil
}

func (w *Writer) usable() error {
	switch {
	case w.closed:
		return fmt.Errorf("appendlog: %s: %w", w.lf.path, fs.ErrClosed)
	case w.broken != nil:
		return w.broken
	}
	return nil
}

// Append adds a record of type typ (1..255) to the pending group and
// returns its Ref. Nothing is durable or visible to readers before Commit.
func (w *Writer) Append(typ uint8, payload []byte) (Ref, error) {
	return w.append(typ, 0, payload)
}

// AppendAfter adds a record that continues prev (the seed's chained cache
// records: more data for the same key, found from prev). prev must be the
// tail of its chain: committed or pending, without a continuation yet
// (ErrChained otherwise). The link becomes visible with Commit.
func (w *Writer) AppendAfter(ctx context.Context, prev Ref, typ uint8, payload []byte) (Ref, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	p := int64(prev)
	if w.linked[p] {
		return 0, fmt.Errorf("%w: %d", ErrChained, p)
	}
	if p >= w.lf.h.used {
		// A pending record: its frame is in buf, and its next word is set
		// there directly (it becomes durable with the group).
		if !w.pendingFrameAt(p) {
			return 0, fmt.Errorf("%w: ref %d is not a record of this log", ErrNotCommitted, p)
		}
	} else {
		rec, err := w.lf.record(ctx, prev)
		if err != nil {
			return 0, err
		}
		var word [atomicrec.SetOnceSize]byte
		if err := w.lf.readAt(word[:], p+fOffNext); err != nil {
			return 0, w.lf.corrupt(p, err)
		}
		if _, set, err := atomicrec.DecodeSetOnce(p+fOffNext, word[:]); err != nil || set || rec.Next != 0 {
			return 0, fmt.Errorf("%w: %d", ErrChained, p)
		}
	}
	ref, err := w.append(typ, p, payload)
	if err != nil {
		return 0, err
	}
	w.linked[p] = true
	if p >= w.lf.h.used {
		word := atomicrec.EncodeSetOnce(p+fOffNext, uint64(ref))
		copy(w.buf[p-w.lf.h.used+fOffNext:], word[:])
	} else {
		w.links = append(w.links, link{from: p, to: int64(ref)})
	}
	return ref, nil
}

// pendingFrameAt reports whether a pending frame starts at file offset p.
func (w *Writer) pendingFrameAt(p int64) bool {
	off := w.lf.h.used
	end := w.lf.h.used + int64(len(w.buf))
	for steps := 0; off < p && off < end && steps <= len(w.buf)/FrameOverhead; steps++ {
		n, err := frameLength(w.buf[off-w.lf.h.used:], off, w.lf.h.used+int64(len(w.buf)))
		assert(err == nil, "pendingFrameAt: own frame does not parse")
		off += FrameSize(n)
	}
	return off == p && p < w.lf.h.used+int64(len(w.buf))
}

func (w *Writer) append(typ uint8, prev int64, payload []byte) (Ref, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	switch {
	case typ == 0:
		return 0, fmt.Errorf("appendlog: record type 0 is reserved")
	case len(payload) > MaxRecordSize:
		return 0, fmt.Errorf("%w: record of %d bytes", ErrTooLarge, len(payload))
	case int64(len(w.buf))+FrameSize(len(payload)) > MaxGroupSize:
		return 0, fmt.Errorf("%w: pending group would exceed %d bytes; Commit first", ErrTooLarge, MaxGroupSize)
	case w.lf.h.used+int64(len(w.buf))+FrameSize(len(payload)) > MaxLogSize:
		return 0, fmt.Errorf("%w: log would exceed %d bytes", ErrTooLarge, int64(MaxLogSize))
	}
	off := w.lf.h.used + int64(len(w.buf))
	start := len(w.buf)
	w.buf = encodeFrame(w.buf, w.lf.id, off, typ, prev, payload)
	sumAt := start + fOffPayload + len(payload)
	w.gh.add(binary.LittleEndian.Uint64(w.buf[sumAt:]))
	w.bufRecs++
	return Ref(off), nil
}

// Pending returns the number of records appended since the last Commit.
func (w *Writer) Pending() int { return int(w.bufRecs) }

// Commit makes every pending record durable and publishes it, in one
// Datasync: it writes the frames at the committed length, writes the next
// header copy (used_file_size, the group's start and hash) into the other
// header slot, and syncs once. The header copy is valid for readers only if
// the frames it names are all there (their checksums fold into its group
// hash), so it cannot commit data that did not reach the disk, whatever
// order the disk or the NFS server applied the writes in (package doc).
//
// Next pointers from records committed earlier to continuations in this
// group are set after that sync, with a second Datasync: a pointer must
// never be durable before its target, or a crash could leave it pointing at
// bytes the next append reuses. Commits without such links cost one sync.
//
// When Commit returns nil, everything appended is durable and visible to
// readers that Refresh. When it returns an error, the group may or may not
// be committed; the Writer is then unusable (ErrBroken): Close it and Open
// the log again, which recovers and tells (Info) what was committed.
func (w *Writer) Commit(ctx context.Context) error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	lf := w.lf
	if len(w.buf) > 0 {
		h := lf.h
		h.start = h.used
		h.used += int64(len(w.buf))
		h.groupHash = w.gh.sum()
		h.records += w.bufRecs
		if _, err := lf.f.WriteAt(w.buf, lf.h.used); err != nil {
			return w.fail(err)
		}
		v, err := lf.hdr.Write(ctx, encodeHeader(h))
		if err != nil {
			return w.fail(err)
		}
		if err := lf.f.Datasync(); err != nil {
			return w.fail(err)
		}
		lf.hdr.Durable(v)
		lf.h, lf.gen, lf.sum = h, v.Gen, v.Sum
		w.buf, w.bufRecs, w.gh = w.buf[:0], 0, newGroupHasher()
	}
	if len(w.links) > 0 {
		for _, l := range w.links {
			word := atomicrec.EncodeSetOnce(l.from+fOffNext, uint64(l.to))
			if _, err := lf.f.WriteAt(word[:], l.from+fOffNext); err != nil {
				return w.fail(err)
			}
		}
		if err := lf.f.Datasync(); err != nil {
			return w.fail(err)
		}
		w.links = w.links[:0]
	}
	clear(w.linked)
	return nil
}

func (w *Writer) fail(err error) error {
	w.broken = fmt.Errorf("%w: %s: %v", ErrBroken, w.lf.path, err)
	return fmt.Errorf("appendlog: commit %s: %w", w.lf.path, errors.Join(ErrBroken, err))
}

// Info returns the committed state.
func (w *Writer) Info() Info { return w.lf.info() }

// Read returns the committed record at ref.
func (w *Writer) Read(ctx context.Context, ref Ref) (Record, error) { return w.lf.record(ctx, ref) }

// Chain returns the committed record at ref and its continuations.
func (w *Writer) Chain(ctx context.Context, ref Ref) ([]Record, error) { return w.lf.chain(ctx, ref) }

// Check verifies the whole committed log (see Reader.Check).
func (w *Writer) Check(ctx context.Context) error { return w.lf.check(ctx) }

// Close releases the file. Pending records that were not committed are
// dropped.
func (w *Writer) Close() error {
	if w.closed {
		return fmt.Errorf("appendlog: %s: %w", w.lf.path, fs.ErrClosed)
	}
	w.closed = true
	return w.lf.f.Close()
}
