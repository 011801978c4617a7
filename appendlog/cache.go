package appendlog

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/vfs"
)

// Reading committed frames through a readahead.Cache (Options.Cache).
//
// What is cached. A Reader keys the file in the cache by
// readahead.FileID{Ino, Generation: log id} and claims as immutable only
// [DataStart, start), where start is the group start of the header copy it
// accepted: the bytes of every commit but the last one it knows. Only reads
// that lie in the claim are served by the cache; everything else, the
// header copies at offset 0 above all (atomicrec reads them from the file
// itself, never through here), the frames of the last group and anything
// at or past used, is read from the file as without a cache.
//
// Why those bytes never change. The writer writes a header copy whose group
// starts at S only after the commit that ended at S returned from its
// Datasync (Commit is serial; after a failed one the writer is ErrBroken
// and Open first rewrites the adopted last group byte for byte and syncs):
// so a header naming S proves [DataStart, S) durable, and the writer never
// writes a frame below its committed length again (appends go at used;
// recovery only rewrites identical bytes). The last group [S, used) is
// different: a Reader on another host can see it while it is still an
// unstable write at the NFS server (N10) that a server crash may lose, and
// the writer's recovery would then write other frames at the same offsets,
// with checksums just as valid (bound to the same log id and offsets).
// Leaving the last group out of the claim is what keeps a cached copy of
// such a lost commit from ever being served; it also means a Reader never
// verifies a new header's group against cached bytes (the group is past the
// claim when it is read). Because the claim holds only durable bytes, it is
// correct for every Reader of the identity, so Readers that reopen the log
// (the engine's close-to-open retry) keep the blocks.
//
// The exception inside the claim: next words. A frame's 16-byte next word is
// outside its checksum and is set once, after the group that holds the
// continuation is durable, into a frame that may be far below start. A
// cached block may therefore hold an old copy of a next word. The set-once
// encoding (atomicrec.DecodeSetOnce: value and xxhash64 of "AARCSTO1", the
// word's file offset and the value) makes an old copy readable only as
// unset (all zero) or torn (failing its check), never as another set
// value: exactly one value is ever written there (recovery rewrites the
// same word). So a cached next word that decodes as set is the word's
// final value and is used; one that decodes as unset or torn is not
// trusted: Read, Chain and Scan read those 16 bytes again from the file
// (as a Reader without a cache would) and, when the file shows the word
// set, drop the cached block so the next read caches the set word.
// ReadBody does not look at next words at all and is served from the
// cache alone.
//
// Torn or stale blocks. A block is the bytes of one read of the file after
// the claim covered them; on NFS those come through this host's page
// cache, exactly what a Reader without a cache would have read at that
// moment. If they are wrong (a stale page, N2/N3, or zeros a v3 client
// returned for a page it was filling), the frame fails its checksum: the
// Reader drops the frame's blocks (Invalidate) before every reread, and
// again after it reopened the file, so the rereads and the close-to-open
// revalidation of readFrame work as without a cache.

// cacheState is a Reader's view of the cache: its readahead.Reader and
// the end of the immutable claim.
type cacheState struct {
	c     *readahead.Cache
	r     *readahead.Reader // nil until the file's identity is known
	ino   uint64
	claim int64 // reads inside [DataStart, claim) are served by r
	// failed counts frames that failed validation while the cache served
	// some of their bytes (each drops those blocks): a hook for tests.
	failed int64
}

// openCache (re)attaches the cache to lf.f after a (re)open: it learns the
// inode number. The identity's log id is set at the first refresh
// (syncCache).
func (lf *logFile) openCache(f vfs.File) error {
	cs := lf.cache
	if cs == nil {
		return nil
	}
	if cs.r != nil {
		_ = cs.r.Close()
		cs.r = nil
	}
	cs.claim = 0
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("appendlog: stat %s: %w", lf.path, err)
	}
	cs.ino = fi.Ino
	return nil
}

// syncCache moves the claim to the accepted header's group start, opening
// the cache Reader when the log id is first known.
func (lf *logFile) syncCache() {
	cs := lf.cache
	if cs == nil || lf.id == 0 {
		return
	}
	if cs.r == nil {
		cs.r = cs.c.Open(lf.f, readahead.FileID{Ino: cs.ino, Generation: lf.id})
	}
	if lf.h.start <= cs.claim || lf.h.start <= DataStart {
		return
	}
	if err := cs.r.MarkImmutable(DataStart, lf.h.start); err != nil {
		// Only a closed Reader fails here: read without the cache.
		cs.claim = 0
		return
	}
	cs.claim = lf.h.start
}

// cachedUpTo reports whether bytes [off, end) would be served by the cache.
func (lf *logFile) cachedUpTo(off, end int64) bool {
	cs := lf.cache
	return cs != nil && cs.r != nil && off >= DataStart && end <= cs.claim
}

// readFile is one read of the file, as readAt without a cache does it.
func (lf *logFile) readFile(b []byte, off int64) (int, error) { return lf.f.ReadAt(b, off) }

// readVia reads len(b) bytes at off: the part inside the claim through the
// cache, the rest from the file. A cache error that is not the file's own
// (ErrShortImmutable: the file ends inside the claim) falls back to the
// file, so the caller sees what a Reader without a cache would.
func (lf *logFile) readVia(b []byte, off int64) (int, error) {
	cs := lf.cache
	if cs == nil || cs.r == nil || off < DataStart || off >= cs.claim {
		return lf.readFile(b, off)
	}
	k := int(min(int64(len(b)), cs.claim-off))
	n, err := cs.r.ReadAt(b[:k], off)
	if err != nil {
		if errors.Is(err, readahead.ErrShortImmutable) || errors.Is(err, readahead.ErrClosed) {
			cs.r.Invalidate(0, math.MaxInt64)
			return lf.readFile(b, off)
		}
		return n, err
	}
	if k == len(b) {
		return n, nil
	}
	m, err := lf.readFile(b[k:], off+int64(k))
	return n + m, err
}

// invalidate drops the cached blocks of [off, off+length).
func (lf *logFile) invalidate(off, length int64) {
	if cs := lf.cache; cs != nil && cs.r != nil {
		cs.r.Invalidate(off, length)
	}
}

// frameFailed drops the cached blocks of a frame that failed validation
// (limit bounds it), so the next attempt reads the file.
func (lf *logFile) frameFailed(off, limit int64) {
	if lf.cachedUpTo(off, off+1) {
		lf.cache.failed++
		lf.invalidate(off, min(limit-off, FrameSize(MaxRecordSize)))
	}
}

// closeCache detaches the Reader from the cache; its blocks stay cached.
func (lf *logFile) closeCache() {
	if cs := lf.cache; cs != nil && cs.r != nil {
		_ = cs.r.Close()
		cs.r = nil
	}
}

// freshNext rereads the next word of the frame at off from the file when
// fr's copy came from the cache and does not decode as set (see the
// comment at the top of this file). A word the file shows set replaces
// the cached copy, whose blocks are dropped.
func (lf *logFile) freshNext(fr *frame, off int64) error {
	w := off + fOffNext
	if (fr.next != 0 && !fr.torn) || !lf.cachedUpTo(w, w+atomicrec.SetOnceSize) {
		return nil
	}
	var b [atomicrec.SetOnceSize]byte
	n, err := lf.readFile(b[:], w)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("appendlog: read %s at %d: %w", lf.path, w, err)
	}
	if n < len(b) {
		return fmt.Errorf("%w: file ends at %d, before %d", ErrFrame, w+int64(n), w+int64(len(b)))
	}
	v, set, err := atomicrec.DecodeSetOnce(w, b[:])
	switch {
	case err != nil:
		fr.next, fr.torn = 0, true
	case set:
		fr.next, fr.torn = int64(v), false
		lf.invalidate(w, atomicrec.SetOnceSize)
	default:
		fr.next, fr.torn = 0, false
	}
	return nil
}
