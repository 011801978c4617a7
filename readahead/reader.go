package readahead

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"

	"github.com/nfsindex/nfsindex/vfs"
)

// Reader reads one file through a Cache. It implements io.ReaderAt and is safe
// for concurrent use. Its methods never lock anything another host can see:
// the only I/O is vfs.File.ReadAt (in Reader.ReadAt) and vfs.File.Stat (in
// Revalidate).
type Reader struct {
	c  *Cache
	f  vfs.File
	fs *fileState

	// Guarded by c.mu.
	closed  bool
	lastEnd int64 // end of the previous ReadAt: sequential detection
	window  int   // read-ahead window in blocks, 1..c.maxWindow
}

var _ io.ReaderAt = (*Reader)(nil)

// ID returns the identity the Reader was opened with.
func (r *Reader) ID() FileID { return r.fs.id }

// Close detaches the Reader from the cache. It does not close the vfs.File,
// which the caller owns, and it does not drop cached blocks: a later Reader
// of the same FileID can still be served from them until they are evicted.
// Later ReadAt, Revalidate, MarkImmutable and Close calls on r return
// ErrClosed.
func (r *Reader) Close() error {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.closed = true
	r.fs.refs--
	c.forgetIfUnused(r.fs)
	return nil
}

// MarkImmutable claims that bytes [off, end) of this identity exist and will
// never change again: committed append-only data below the published length,
// or the records of a snapshot that is only ever replaced by rename. Blocks
// wholly inside the claim are then served without revalidation for as long as
// the identity is the same; Revalidate keeps them.
//
// The caller decides what is immutable, and a wrong claim is the caller's bug:
// the cache will serve old bytes. What it can check cheaply it does: a read or
// a Revalidate that finds the file ending inside the claim returns
// ErrShortImmutable.
//
// A claim that overlaps or touches the current one extends it; a disjoint one
// replaces it for blocks read from now on, while blocks read under the earlier
// claim stay immutable (a claim is forever). Cached blocks that were read as
// mutable and overlap the newly claimed bytes are dropped, because they may
// have been read before those bytes were committed; a claim that adds nothing
// costs nothing.
func (r *Reader) MarkImmutable(off, end int64) error {
	if off < 0 || end < off {
		return fmt.Errorf("readahead: mark %s immutable [%d, %d): invalid range", r.f.Name(), off, end)
	}
	if off == end {
		return nil
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	fs := r.fs
	lo, hi := fs.immLo, fs.immHi
	var newLo, newHi int64
	switch {
	case lo >= hi || end < lo || off > hi: // no claim yet, or disjoint
		newLo, newHi = off, end
	default:
		newLo, newHi = min(lo, off), max(hi, end)
	}
	// added reports whether [a, b) has bytes outside the old claim.
	added := func(a, b int64) bool { return lo >= hi || a < lo || b > hi }
	if !added(newLo, newHi) {
		return nil
	}
	bs := c.blockSize
	c.drop(fs, func(b *block) bool {
		start := b.index * bs
		bEnd := start + bs
		if b.immutable || bEnd <= newLo || start >= newHi {
			return true // immutable already, or outside the new claim
		}
		// Keep a mutable block only if it overlaps no newly claimed byte.
		a, z := max(start, newLo), min(bEnd, newHi)
		return !added(a, z)
	})
	fs.immLo, fs.immHi = newLo, newHi
	return nil
}

// Revalidate is the point at which the caller wants mutable bytes to be
// current: it calls File.Stat once and compares size, mtime and ctime with
// the previous Revalidate of this identity. If any differs, or there was no
// previous one, it drops every cached block that is not immutable and reports
// changed. Immutable blocks always survive. Nothing else ever revalidates:
// there are no timers.
//
// Change detection is only as good as the attributes (N3): with NFSv3 and a
// coarse server clock, two same-size writes in one tick look unchanged. The
// formats' checksums and generations catch that; Invalidate then drops the
// blocks. On NFS, Stat may answer from the attribute cache (N1); reopen the
// file (close-to-open, N2) before Revalidate when freshness is required.
//
// A Stat error drops the mutable blocks and the baseline, so the next
// Revalidate reports changed. ESTALE (vfs.ErrStale, N16) drops every block of
// the identity and is returned wrapped: reopen by name.
func (r *Reader) Revalidate() (changed bool, err error) {
	c := r.c
	c.mu.Lock()
	closed := r.closed
	c.mu.Unlock()
	if closed {
		return false, ErrClosed
	}
	fi, err := r.f.Stat()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.StatCalls++
	fs := r.fs
	mutable := func(b *block) bool { return b.immutable }
	if err != nil {
		fs.hasBaseline = false
		if errors.Is(err, vfs.ErrStale) {
			c.drop(fs, nil)
		} else {
			c.drop(fs, mutable)
		}
		return true, fmt.Errorf("readahead: revalidate %s: %w", r.f.Name(), err)
	}
	if fi.Ino != fs.id.Ino {
		fs.hasBaseline = false
		c.drop(fs, nil)
		return true, fmt.Errorf("readahead: revalidate %s: inode %d, opened as %v: %w", r.f.Name(), fi.Ino, fs.id, ErrIdentity)
	}
	a := attrs{size: fi.Size, mtime: fi.ModTime, ctime: fi.ChangeTime}
	fs.sizeHint = a.size
	if fs.immLo < fs.immHi && a.size < fs.immHi {
		fs.hasBaseline = false
		c.drop(fs, mutable)
		return true, fmt.Errorf("readahead: revalidate %s: size %d, immutable up to %d: %w", r.f.Name(), a.size, fs.immHi, ErrShortImmutable)
	}
	if fs.hasBaseline && a.equal(fs.baseline) {
		return false, nil
	}
	c.drop(fs, mutable)
	fs.baseline, fs.hasBaseline = a, true
	return true, nil
}

// Invalidate drops every cached block, mutable or immutable, that overlaps
// [off, off+length), so the next read of those bytes goes to the file. Call
// it when a checksum over bytes read through the cache fails: the block may
// hold a torn read (N8) or a change the attributes did not show (N3). A fetch
// in flight when Invalidate runs is not cached.
func (r *Reader) Invalidate(off, length int64) {
	if length <= 0 {
		return
	}
	off = max(off, 0)
	end := off + length
	if end < off { // overflow
		end = math.MaxInt64
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	bs := c.blockSize
	c.drop(r.fs, func(b *block) bool {
		start := b.index * bs
		return start+bs <= off || start >= end
	})
}

// ReadAt reads len(p) bytes at off, like io.ReaderAt: n < len(p) comes with a
// non-nil error, io.EOF (unwrapped) at end of file; an empty p returns 0, nil
// without I/O, as os.File.ReadAt does. A negative offset, or one within
// (MaxReadAheadBlocks+1) blocks of the largest int64, is an error. Every block it touches is
// served from the cache or read from the file with exactly one aligned ReadAt
// of BlockSize bytes. When several are needed, and for read-ahead, the reads
// are issued one after another from the calling goroutine in ascending
// offset order, or, with Options.ReadConcurrency above one, that many at a
// time in parallel; either way ReadAt returns when all of them have
// finished, so no read outlives the call.
//
// Each block's bytes come from a single read of the file, never from two:
// the cache never patches part of a block. A ReadAt spanning several mutable
// blocks may combine blocks read at different times, exactly as an NFS read
// larger than rsize combines READs answered at different times (N8); the
// formats' checksums detect that, and Invalidate recovers from it.
//
// Mutable bytes are as fresh as the last Revalidate: a block cached since then
// is served as it was read, and a cached block that ended early (end of file
// at the time) answers io.EOF past its end until a Revalidate that sees the
// file change, or a MarkImmutable over those bytes, drops it. Immutable
// blocks are always whole. An error of the file is returned wrapped; on
// ESTALE (vfs.ErrStale) every block of the identity is dropped. Errors of
// read-ahead blocks are not returned (the blocks are just not cached), but
// ESTALE still drops the identity's blocks.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	c := r.c
	bs := c.blockSize
	end := off + int64(len(p))
	// The last block and the read-ahead window must fit in an int64.
	if off < 0 || end < off || end > math.MaxInt64-int64(c.maxWindow+1)*bs {
		return 0, fmt.Errorf("readahead: read %s at %d: invalid offset", r.f.Name(), off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	if r.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	st := readState{first: off / bs, last: (end - 1) / bs}
	if r.lastEnd > 0 {
		st.prevBlock = (r.lastEnd - 1) / bs
	} else {
		st.prevBlock = -1
	}
	// Sequential: the read starts in the block where the previous one ended
	// or at most a window further (a file read from its start counts).
	st.sequential = st.first >= st.prevBlock && st.first <= st.prevBlock+int64(r.window)
	// Forward in the same block: the next small record of a scan.
	st.forward = off >= r.lastEnd
	r.lastEnd = end
	if !st.sequential {
		r.window = 1
	}

	// A round reads what it can in one batch of block reads. It stops
	// after the block holding the last known end of file, so a read past the
	// end does not fetch a run of empty blocks; if that block turns out full
	// (the file grew), the next round goes on. Every round copies at least
	// one byte or returns, so there are at most last-first+1 rounds.
	n := 0
	for i := range st.last - st.first + 1 {
		m, err := r.readRound(p[n:], off+int64(n), &st, i == 0)
		n += m
		if err != nil || n == len(p) {
			return n, err
		}
	}
	panic("readahead: ReadAt made no progress") // unreachable: each round copies a byte
}

// readState is what the rounds of one ReadAt share.
type readState struct {
	first, last int64 // demanded blocks
	prevBlock   int64 // block of the end of the reader's previous ReadAt, or -1
	sequential  bool
	forward     bool
	grown       bool // the window has already grown for this ReadAt
}

// readRound serves p at off from the cache and one batch of block reads.
// It is called with c.mu held when locked is true, and returns without it.
func (r *Reader) readRound(p []byte, off int64, st *readState, locked bool) (int, error) {
	c := r.c
	bs := c.blockSize
	end := off + int64(len(p))
	first, last := off/bs, (end-1)/bs

	// Plan under the lock: which demanded blocks are cached, which must be
	// read, and which to read ahead.
	if !locked {
		c.mu.Lock()
	}
	if r.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	fs := r.fs
	var partsBuf [4]part
	parts := partsBuf[:0]
	var fetches []fetch
	for index := first; index <= last; index++ {
		if b := fs.blocks[index]; b != nil {
			c.stats.Hits++
			c.touch(b, st.prevBlock, st.forward)
			parts = append(parts, part{index: index, data: b.data, fetch: -1})
			if int64(len(b.data)) < bs {
				break // end of file as of that block's read
			}
			continue
		}
		c.stats.Misses++
		c.missesInFlight++
		parts = append(parts, part{index: index, fetch: len(fetches)})
		fetches = append(fetches, fetch{index: index, demanded: true})
		if fs.sizeHint >= 0 && index >= fs.sizeHint/bs {
			break // the block holding the known end of file: see what it says first
		}
	}
	if len(fetches) > 0 && st.sequential && !st.grown {
		r.window = min(2*r.window, c.maxWindow)
		st.grown = true
	}
	if len(fetches) > 0 && r.window > 1 && parts[len(parts)-1].index == st.last {
		// Read ahead so that the blocks from the first miss onwards cover the
		// window, skipping cached blocks and stopping at the known end.
		for index := st.last + 1; index < fetches[0].index+int64(r.window); index++ {
			if fs.sizeHint >= 0 && index*bs >= fs.sizeHint {
				break
			}
			if fs.blocks[index] == nil {
				fetches = append(fetches, fetch{index: index})
			}
		}
	}
	if len(fetches) == 0 {
		c.mu.Unlock()
		return copyParts(p, off, bs, parts, nil)
	}
	epoch := fs.epoch
	claimLo, claimHi := fs.immLo, fs.immHi
	c.mu.Unlock()

	c.fetchAll(r.f, fetches)

	c.mu.Lock()
	stale := false
	for i := range fetches {
		ft := &fetches[i]
		c.stats.ReadCalls++
		c.stats.BytesRead += int64(ft.n)
		if ft.demanded {
			c.missesInFlight--
		} else {
			c.stats.ReadAheadBlocks++
		}
		start := ft.index * bs
		switch {
		case ft.err == nil && ft.n < int(bs):
			ft.err = fmt.Errorf("readahead: read %s block at %d: %d of %d bytes and no error: %w", r.f.Name(), start, ft.n, bs, io.ErrUnexpectedEOF)
			continue
		case ft.err == io.EOF:
			ft.err = nil
		case ft.err != nil:
			stale = stale || errors.Is(ft.err, vfs.ErrStale)
			ft.err = fmt.Errorf("readahead: read %s block at %d: %w", r.f.Name(), start, ft.err)
			continue
		}
		if ft.n < int(bs) {
			// End of file observed at start+n.
			fs.sizeHint = start + int64(ft.n)
			if claimLo < claimHi && start+int64(ft.n) < claimHi {
				ft.err = fmt.Errorf("readahead: read %s: ends at %d, immutable up to %d: %w", r.f.Name(), start+int64(ft.n), claimHi, ErrShortImmutable)
				continue
			}
			// Keep only what was read, so the memory bound counts real bytes
			// (make, not append: append may round the capacity up).
			short := make([]byte, ft.n)
			copy(short, ft.data)
			ft.data = short
		} else if fs.sizeHint >= 0 && start+bs > fs.sizeHint {
			fs.sizeHint = -1 // grew past what we knew
		}
		if ft.n == 0 || fs.epoch != epoch || fs.gone || fs.blocks[ft.index] != nil {
			continue // nothing to keep, fenced by a drop, or raced by another reader
		}
		immutable := claimLo <= start && start+bs <= claimHi
		c.insert(fs, ft.index, ft.data, immutable, ft.demanded)
	}
	if stale {
		fs.hasBaseline = false
		c.drop(fs, nil)
	}
	c.mu.Unlock()
	return copyParts(p, off, bs, parts, fetches)
}

// part is one demanded block of a ReadAt: cached data, or an index into the
// fetches.
type part struct {
	index int64
	data  []byte
	fetch int // -1 when data is cached
}

// fetch is one block read issued to the file.
type fetch struct {
	index    int64
	demanded bool
	data     []byte
	n        int
	err      error
}

// fetchAll reads every block of fetches and returns when all are done. With
// a concurrency of one it reads them in order from the calling goroutine, so
// the I/O a ReadAt does is a function of the cache's state and the file's
// answers, never of the Go scheduler. Otherwise it reads up to concurrency
// blocks at a time in parallel; the calling goroutine is one of the readers.
func (c *Cache) fetchAll(f vfs.File, fetches []fetch) {
	bs := c.blockSize
	one := func(ft *fetch) {
		ft.data = make([]byte, bs)
		ft.n, ft.err = f.ReadAt(ft.data, ft.index*bs)
	}
	if c.concurrency == 1 || len(fetches) == 1 {
		for i := range fetches {
			one(&fetches[i])
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for {
			i := next.Add(1) - 1
			if i >= int64(len(fetches)) {
				return
			}
			one(&fetches[i])
		}
	}
	var wg sync.WaitGroup
	for range min(len(fetches), c.concurrency) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// copyParts copies the demanded bytes from parts into p and returns what
// ReadAt returns.
func copyParts(p []byte, off, bs int64, parts []part, fetches []fetch) (int, error) {
	end := off + int64(len(p))
	n := 0
	for _, pt := range parts {
		data := pt.data
		if pt.fetch >= 0 {
			ft := &fetches[pt.fetch]
			if ft.err != nil {
				return n, ft.err
			}
			data = ft.data[:ft.n]
		}
		start := pt.index * bs
		lo := max(off, start) - start
		hi := min(end, start+bs) - start
		if lo < int64(len(data)) {
			n += copy(p[n:], data[lo:min(hi, int64(len(data)))])
		}
		if int64(len(data)) < hi {
			return n, io.EOF
		}
	}
	return n, nil
}

// touch records a demanded use of a cached block for CLOCK. The first use
// of a read-ahead block, and a read that moves forward inside the block its
// reader read last (the next small record of a scan), are not re-references:
// they leave the reference bit clear, so a scan cannot make its blocks look
// hot and push out blocks that really are read again (scan resistance).
// The caller holds c.mu.
func (c *Cache) touch(b *block, prevBlock int64, forward bool) {
	switch {
	case !b.used:
		b.used = true
	case b.index != prevBlock || !forward:
		b.ref = true
	}
}
