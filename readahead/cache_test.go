package readahead_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/vfs"
)

const bs = 16 // block size of the unit tests: small, so files of a few blocks suffice

func newCache(t testing.TB, opts readahead.Options) *readahead.Cache {
	t.Helper()
	c, err := readahead.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// check fails the test if the cache's invariants or its memory bound do not hold.
func check(t testing.TB, c *readahead.Cache) {
	t.Helper()
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.CachedBytes > s.MemoryBytes {
		t.Fatalf("cached %d bytes, bound %d", s.CachedBytes, s.MemoryBytes)
	}
}

// pattern returns n bytes that differ from block to block and from seed to seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i/bs)
	}
	return b
}

// read reads [off, off+n) through r and fails unless it gets exactly want.
func read(t testing.TB, r *readahead.Reader, off int64, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	n, err := r.ReadAt(got, off)
	if err != nil || n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("ReadAt(%d, %d) = %d, %v, %q; want %q", off, len(want), n, err, got[:n], want)
	}
}

// readCalls returns the ReadAt calls f saw during do.
func readCalls(f *fakeFile, do func()) int {
	before, _ := f.counts()
	do()
	after, _ := f.counts()
	return after - before
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts readahead.Options
		ok   bool
	}{
		{"defaults", readahead.Options{}, true},
		{"negative block size", readahead.Options{BlockSize: -1}, false},
		{"memory below one block", readahead.Options{BlockSize: 4096, MemoryBytes: 4095}, false},
		{"negative read-ahead", readahead.Options{MaxReadAheadBlocks: -1}, false},
		{"negative read concurrency", readahead.Options{ReadConcurrency: -1}, false},
		{"parallel reads", readahead.Options{ReadConcurrency: 16}, true},
		{"one block", readahead.Options{BlockSize: 4096, MemoryBytes: 4096}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := readahead.New(tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%+v) error %v, want ok=%v", tc.opts, err, tc.ok)
			}
			if err == nil && tc.opts.BlockSize == 0 && c.BlockSize() != readahead.DefaultBlockSize {
				t.Fatalf("BlockSize() = %d", c.BlockSize())
			}
		})
	}
}

// TestReadAtMatchesReaderAt checks the io.ReaderAt contract against
// bytes.Reader on the same bytes, cold and warm, at block edges and past the
// end of file.
func TestReadAtMatchesReaderAt(t *testing.T) {
	data := pattern(5*bs+3, 1) // short final block
	ref := bytes.NewReader(data)
	type rd struct{ off, n int64 }
	cases := []rd{{0, 1}, {0, bs}, {bs - 1, 2}, {0, 5*bs + 3}, {0, 5*bs + 4}, {5 * bs, 3}, {5 * bs, 4},
		{5*bs + 2, 10}, {5*bs + 3, 1}, {6 * bs, 1}, {100 * bs, 5}, {3, 4*bs + 7}, {2*bs + 5, 0}}
	for _, opts := range []readahead.Options{
		{BlockSize: bs, MemoryBytes: 64 * bs},
		{BlockSize: bs, MemoryBytes: bs, MaxReadAheadBlocks: 1}, // one slot: every multi-block read evicts
		{BlockSize: bs, MemoryBytes: 64*bs + 1, ReadConcurrency: 3},
	} {
		c := newCache(t, opts)
		f := newFakeFile("x", 1, data)
		r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
		for pass := range 2 {
			for _, tc := range cases {
				t.Run(fmt.Sprintf("mem=%d/pass=%d/off=%d/n=%d", opts.MemoryBytes, pass, tc.off, tc.n), func(t *testing.T) {
					want := make([]byte, tc.n)
					wn, werr := ref.ReadAt(want, tc.off)
					got := make([]byte, tc.n)
					gn, gerr := r.ReadAt(got, tc.off)
					if gn != wn || gerr != werr || !bytes.Equal(got, want) {
						t.Fatalf("got %d, %v, %x; want %d, %v, %x", gn, gerr, got, wn, werr, want)
					}
					check(t, c)
				})
			}
		}
	}
}

func TestReadAtRejectsBadOffsets(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs})
	f := newFakeFile("x", 1, pattern(bs, 24))
	r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	for _, off := range []int64{-1, math.MaxInt64 - 3, math.MaxInt64 - 10*bs} {
		if n, err := r.ReadAt(make([]byte, 8), off); err == nil || err == io.EOF || n != 0 {
			t.Errorf("ReadAt at %d = %d, %v; want an error", off, n, err)
		}
	}
	if calls, _ := f.counts(); calls != 0 {
		t.Errorf("%d reads issued for invalid offsets", calls)
	}
	// Far past the end, but with room for the block and the window: EOF.
	if n, err := r.ReadAt(make([]byte, 8), math.MaxInt64-100*bs); n != 0 || err != io.EOF {
		t.Errorf("ReadAt far past the end = %d, %v", n, err)
	}
	check(t, c)
}

func TestHitsAndMisses(t *testing.T) {
	data := pattern(4*bs+5, 2)
	type step struct {
		off, n     int64
		readCalls  int
		hits, miss int64 // increments of the counters
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"same block twice", []step{{0, 4, 1, 0, 1}, {4, 4, 0, 1, 0}}},
		{"read spanning two blocks, then each", []step{{bs - 2, 4, 2, 0, 2}, {0, 1, 0, 1, 0}, {bs, 1, 0, 1, 0}}},
		{"short final block answers EOF from memory", []step{{4 * bs, 5, 1, 0, 1}, {4 * bs, 6, 0, 1, 0}}},
		{"read wholly past EOF goes to the file each time", []step{{5 * bs, 1, 1, 0, 1}, {5 * bs, 1, 1, 0, 1}}},
		{"whole file then every block", []step{{0, 4*bs + 5, 5, 0, 5}, {0, bs, 0, 1, 0}, {3 * bs, bs, 0, 1, 0}, {4 * bs, 5, 0, 1, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1})
			f := newFakeFile("x", 1, data)
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			for i, s := range tc.steps {
				before := c.Stats()
				got := make([]byte, s.n)
				var n int
				var err error
				calls := readCalls(f, func() { n, err = r.ReadAt(got, s.off) })
				if err != nil && err != io.EOF {
					t.Fatalf("step %d: %v", i, err)
				}
				ref := make([]byte, s.n)
				wn, _ := bytes.NewReader(data).ReadAt(ref, s.off)
				if n != wn || !bytes.Equal(got[:n], ref[:wn]) {
					t.Fatalf("step %d: read %d bytes %x, want %d %x", i, n, got[:n], wn, ref[:wn])
				}
				after := c.Stats()
				if calls != s.readCalls || after.Hits-before.Hits != s.hits || after.Misses-before.Misses != s.miss {
					t.Fatalf("step %d: %d read calls, +%d hits, +%d misses; want %d, +%d, +%d",
						i, calls, after.Hits-before.Hits, after.Misses-before.Misses, s.readCalls, s.hits, s.miss)
				}
				if int64(calls) != after.ReadCalls-before.ReadCalls {
					t.Fatalf("step %d: Stats.ReadCalls +%d, the file saw %d", i, after.ReadCalls-before.ReadCalls, calls)
				}
				check(t, c)
			}
		})
	}
}

// TestReadAheadGrowsAndResets pins the window: it doubles on each sequential
// miss up to the maximum, resets to one block on a random access, and never
// reads past the end of file known from Revalidate.
func TestReadAheadGrowsAndResets(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 256 * bs, MaxReadAheadBlocks: 8})
	f := newFakeFile("x", 1, pattern(60*bs, 3))
	f.logReads = true
	r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	blocks := func(from, to int64) []int64 { // offsets of blocks [from, to)
		var o []int64
		for i := from; i < to; i++ {
			o = append(o, i*bs)
		}
		return o
	}
	for i, s := range []struct {
		what  string
		block int64   // read 4 bytes at the start of this block
		reads []int64 // offsets the file must see
	}{
		{"first read at 0 is sequential: window 2", 0, blocks(0, 2)},
		{"hit in the read-ahead block", 1, nil},
		{"sequential miss: window 4", 2, blocks(2, 6)},
		{"hit", 3, nil}, {"hit", 4, nil}, {"hit", 5, nil},
		{"sequential miss: window 8", 6, blocks(6, 14)},
		{"skip to the next block after a hit is still sequential", 7, nil},
		{"random access resets: one block", 40, blocks(40, 41)},
		{"sequential again: window 2", 41, blocks(41, 43)},
		{"backward jump resets", 20, blocks(20, 21)},
		{"window 2", 21, blocks(21, 23)},
		{"window 4", 23, blocks(23, 27)},
		{"window 8", 27, blocks(27, 35)},
		{"capped at 8; cached 40..42 are skipped", 35, blocks(35, 40)},
		{"a cached neighbour does not count as a miss", 36, nil},
	} {
		f.takeReads()
		p := make([]byte, 4)
		if _, err := r.ReadAt(p, s.block*bs); err != nil {
			t.Fatalf("step %d (%s): %v", i, s.what, err)
		}
		if got := f.takeReads(); !slices.Equal(got, s.reads) {
			t.Fatalf("step %d (%s): read offsets %v, want %v", i, s.what, got, s.reads)
		}
		check(t, c)
	}

	t.Run("stops at the end of file known from Revalidate", func(t *testing.T) {
		data := pattern(37*bs+5, 4)           // 38 blocks
		for _, chunk := range []int{8, 512} { // small records; then io.ReadAll's growing buffers
			c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 256 * bs, MaxReadAheadBlocks: 16})
			f := newFakeFile("x", 1, data)
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			if _, err := r.Revalidate(); err != nil {
				t.Fatal(err)
			}
			var got []byte
			if chunk == 512 {
				var err error
				if got, err = io.ReadAll(io.NewSectionReader(r, 0, 1<<20)); err != nil {
					t.Fatal(err)
				}
			} else {
				p := make([]byte, chunk)
				for off := int64(0); ; off += int64(chunk) {
					n, err := r.ReadAt(p, off)
					got = append(got, p[:n]...)
					if err == io.EOF {
						break
					} else if err != nil {
						t.Fatal(err)
					}
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("chunk %d: read %d bytes, not the file's", chunk, len(got))
			}
			if s := c.Stats(); s.ReadCalls != 38 || (chunk == 8 && s.ReadAheadBlocks == 0) {
				t.Fatalf("chunk %d: %d read calls for 38 blocks; stats %+v", chunk, s.ReadCalls, s)
			}
		}
	})
}

// TestEvictionBoundsMemory reads far more than the bound, sequentially and at
// random, and checks after every read that the bytes held never exceed it.
func TestEvictionBoundsMemory(t *testing.T) {
	for _, memBlocks := range []int64{1, 2, 7, 32} {
		t.Run(fmt.Sprint(memBlocks), func(t *testing.T) {
			c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: memBlocks*bs + bs/2})
			data := pattern(200*bs+9, 5)
			f := newFakeFile("x", 1, data)
			g := newFakeFile("y", 2, pattern(50*bs, 6))
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			r2 := c.Open(g, readahead.FileID{Ino: 2, Generation: 1})
			for i := range int64(400) {
				off := (i * 37 * bs / 3) % int64(len(data))
				if i < 200 {
					off = i * bs // a sequential scan first
				}
				n := min(int64(len(data))-off, 3*bs)
				read(t, r, off, data[off:off+n])
				p := make([]byte, 5)
				if _, err := r2.ReadAt(p, (i*11)%(50*bs-5)); err != nil {
					t.Fatal(err)
				}
				check(t, c)
			}
			s := c.Stats()
			if s.Evictions == 0 || s.CachedBlocks > memBlocks {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestScanDoesNotEvictHotBlocks: a header block read again and again between
// the blocks of a large scan stays cached, because a scan's blocks never get
// their reference bit (CLOCK with correlated references filtered).
func TestScanDoesNotEvictHotBlocks(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 8 * bs, MaxReadAheadBlocks: 2})
	data := pattern(100*bs, 7)
	f := newFakeFile("log", 1, data)
	hot := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	scan := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	read(t, hot, 0, data[:4])
	read(t, hot, 0, data[:4]) // read again: a re-reference
	for b := int64(10); b < 100; b++ {
		for rec := int64(0); rec < bs; rec += 4 { // small records, as an index scan reads them
			read(t, scan, b*bs+rec, data[b*bs+rec:b*bs+rec+4])
		}
		if b%5 == 0 {
			if calls := readCalls(f, func() { read(t, hot, 0, data[:4]) }); calls != 0 {
				t.Fatalf("after scanning block %d the hot block was evicted (%d reads)", b, calls)
			}
		}
		check(t, c)
	}
}

// TestRevalidate: only a change of size, mtime or ctime, or the first
// Revalidate, drops mutable blocks; immutable blocks always survive.
func TestRevalidate(t *testing.T) {
	old := pattern(4*bs, 8)
	for _, tc := range []struct {
		name     string
		first    bool // no earlier Revalidate
		change   func(f *fakeFile)
		changed  bool
		newBytes bool // the mutable block reads the new bytes afterwards
	}{
		{name: "nothing changed", change: func(*fakeFile) {}},
		{name: "first revalidation has no baseline", first: true, change: func(*fakeFile) {}, changed: true},
		{name: "write (size, mtime, ctime)", change: func(f *fakeFile) { f.WriteAt(pattern(bs, 9), 3*bs); f.WriteAt([]byte("z"), 4*bs) }, changed: true, newBytes: true},
		{name: "size only", change: func(f *fakeFile) {
			f.setAttrs(func(f *fakeFile) { copy(f.data[3*bs:], pattern(bs, 9)); f.data = append(f.data, 'z') })
		}, changed: true, newBytes: true},
		{name: "mtime only", change: func(f *fakeFile) {
			f.setAttrs(func(f *fakeFile) { copy(f.data[3*bs:], pattern(bs, 9)); f.mtime = f.mtime.Add(time.Second) })
		}, changed: true, newBytes: true},
		{name: "ctime only", change: func(f *fakeFile) {
			f.setAttrs(func(f *fakeFile) { copy(f.data[3*bs:], pattern(bs, 9)); f.ctime = f.ctime.Add(time.Second) })
		}, changed: true, newBytes: true},
		{name: "same-tick change is invisible (N3)", change: func(f *fakeFile) {
			f.setAttrs(func(f *fakeFile) { copy(f.data[3*bs:], pattern(bs, 9)) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1})
			f := newFakeFile("x", 1, old)
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			if !tc.first {
				if changed, err := r.Revalidate(); err != nil || !changed {
					t.Fatalf("first Revalidate: %v, %v", changed, err)
				}
			}
			if err := r.MarkImmutable(0, 3*bs); err != nil { // blocks 0-2 immutable, block 3 mutable
				t.Fatal(err)
			}
			read(t, r, 0, old[:3*bs])
			read(t, r, 3*bs, old[3*bs:])
			tc.change(f)
			_, stats0 := f.counts()
			changed, err := r.Revalidate()
			if _, stats1 := f.counts(); err != nil || changed != tc.changed || stats1-stats0 != 1 {
				t.Fatalf("Revalidate = %v, %v with %d Stat calls; want %v, nil, 1", changed, err, stats1-stats0, tc.changed)
			}
			if calls := readCalls(f, func() { read(t, r, 0, old[:3*bs]) }); calls != 0 {
				t.Fatalf("immutable blocks re-read: %d calls", calls)
			}
			want, wantCalls := old[3*bs:], 0
			if tc.changed {
				wantCalls = 1
			}
			if tc.newBytes {
				want = f.bytes()[3*bs : 4*bs]
			}
			if calls := readCalls(f, func() { read(t, r, 3*bs, want) }); calls != wantCalls {
				t.Fatalf("mutable block: %d read calls, want %d", calls, wantCalls)
			}
			check(t, c)
		})
	}
}

// TestNewIdentityNeverGetsOldBlocks: a file renamed over another (N15) may
// reuse the inode number; its new generation keeps the old blocks away, and
// the same identity does share them.
func TestNewIdentityNeverGetsOldBlocks(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs})
	oldData, newData := pattern(3*bs, 10), pattern(3*bs, 11)
	oldFile, newFile := newFakeFile("index", 7, oldData), newFakeFile("index", 7, newData)
	r1 := c.Open(oldFile, readahead.FileID{Ino: 7, Generation: 1})
	if err := r1.MarkImmutable(0, 3*bs); err != nil {
		t.Fatal(err)
	}
	read(t, r1, 0, oldData)
	r2 := c.Open(newFile, readahead.FileID{Ino: 7, Generation: 2})
	if calls := readCalls(newFile, func() { read(t, r2, 0, newData) }); calls == 0 {
		t.Fatal("new identity served without reading its file")
	}
	read(t, r1, 0, oldData) // the old identity still has its own blocks
	r3 := c.Open(newFile, readahead.FileID{Ino: 7, Generation: 2})
	if calls := readCalls(newFile, func() { read(t, r3, 0, newData) }); calls != 0 {
		t.Fatalf("same identity re-read its file: %d calls", calls)
	}
	check(t, c)
}

// TestIdentityIsInodeAndGeneration: two files that share a generation
// number but not an inode (two snapshots of one generation on different
// mailboxes, or a reused counter) never share blocks, and neither do two
// generations of one inode (TestNewIdentityNeverGetsOldBlocks).
func TestIdentityIsInodeAndGeneration(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs})
	aData, bData := pattern(3*bs, 20), pattern(3*bs, 21)
	a, b := newFakeFile("a", 8, aData), newFakeFile("b", 9, bData)
	ra := c.Open(a, readahead.FileID{Ino: 8, Generation: 5})
	rb := c.Open(b, readahead.FileID{Ino: 9, Generation: 5})
	for _, r := range []*readahead.Reader{ra, rb} {
		if err := r.MarkImmutable(0, 3*bs); err != nil {
			t.Fatal(err)
		}
	}
	read(t, ra, 0, aData)
	if calls := readCalls(b, func() { read(t, rb, 0, bData) }); calls == 0 {
		t.Fatal("a second inode with the same generation was served without reading its file")
	}
	read(t, ra, 0, aData)
	check(t, c)
}

// TestStaleFileHandle: ESTALE from ReadAt or Stat reaches the caller matchable
// with errors.Is and drops every block of the identity, immutable ones too.
func TestStaleFileHandle(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(r *readahead.Reader) error
		set  func(f *fakeFile)
	}{
		{"ReadAt of an uncached block", func(r *readahead.Reader) error {
			_, err := r.ReadAt(make([]byte, 4), 3*bs)
			return err
		}, func(f *fakeFile) { f.readErr = staleErr("read", f.name) }},
		{"Revalidate", func(r *readahead.Reader) error {
			_, err := r.Revalidate()
			return err
		}, func(f *fakeFile) { f.statErr = staleErr("stat", f.name) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1})
			data := pattern(4*bs, 12)
			f := newFakeFile("index", 1, data)
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			if err := r.MarkImmutable(0, bs); err != nil {
				t.Fatal(err)
			}
			read(t, r, 0, data[:2*bs])
			tc.set(f)
			err := tc.op(r)
			if !errors.Is(err, vfs.ErrStale) {
				t.Fatalf("error %v does not match vfs.ErrStale", err)
			}
			if s := c.Stats(); s.CachedBlocks != 0 || s.Drops != 2 {
				t.Fatalf("after ESTALE: %d blocks cached, %d dropped", s.CachedBlocks, s.Drops)
			}
			check(t, c)
		})
	}

	t.Run("read-ahead", func(t *testing.T) {
		c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs})
		data := pattern(8*bs, 13)
		f := newFakeFile("index", 1, data)
		r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
		read(t, r, 0, data[:bs])      // blocks 0, 1 (window 2)
		read(t, r, bs, data[bs:2*bs]) // a hit
		f.readHook = func(off int64) ([]byte, error) {
			if off != 2*bs {
				return nil, staleErr("read", f.name)
			}
			return nil, nil
		}
		// Block 2 is demanded and read; the read-ahead of 3..5 gets ESTALE.
		_, err := r.ReadAt(make([]byte, 4), 2*bs)
		if err != nil && !errors.Is(err, vfs.ErrStale) {
			t.Fatal(err)
		}
		if s := c.Stats(); s.CachedBlocks != 0 {
			t.Fatalf("%d blocks cached after ESTALE in read-ahead", s.CachedBlocks)
		}
		check(t, c)
	})
}

// TestInvalidateAfterChecksumFailure: a torn fetch (N8) is cached like any
// other; Invalidate drops exactly the blocks of the range, and the re-read
// gets the good bytes.
func TestInvalidateAfterChecksumFailure(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1})
	data := pattern(4*bs, 14)
	f := newFakeFile("x", 1, data)
	r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	read(t, r, 0, data[:bs])
	torn := slices.Clone(data[2*bs : 3*bs])
	torn[bs/2] ^= 0xff
	f.readHook = func(off int64) ([]byte, error) {
		if off == 2*bs {
			return torn, nil
		}
		return nil, nil
	}
	read(t, r, 2*bs, torn) // the caller's checksum would fail here
	f.readHook = nil
	r.Invalidate(2*bs+3, 1)
	if calls := readCalls(f, func() { read(t, r, 2*bs, data[2*bs:3*bs]) }); calls != 1 {
		t.Fatalf("re-read after Invalidate: %d calls", calls)
	}
	if calls := readCalls(f, func() { read(t, r, 0, data[:bs]) }); calls != 0 {
		t.Fatalf("a block outside the range was dropped: %d calls", calls)
	}
	r.Invalidate(1, math.MaxInt64) // everything; off+length overflows
	if s := c.Stats(); s.CachedBlocks != 0 {
		t.Fatalf("%d blocks left", s.CachedBlocks)
	}
	check(t, c)
}

// TestShortImmutable: a file that ends inside its claimed immutable range is
// reported, not cached.
func TestShortImmutable(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1})
	data := pattern(2*bs+4, 15)
	f := newFakeFile("log", 1, data)
	r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	if err := r.MarkImmutable(bs, 3*bs); err != nil {
		t.Fatal(err)
	}
	read(t, r, bs, data[bs:2*bs]) // a whole block inside the claim: fine
	if _, err := r.ReadAt(make([]byte, 4), 2*bs); !errors.Is(err, readahead.ErrShortImmutable) {
		t.Fatalf("ReadAt in a short immutable block: %v", err)
	}
	if _, err := r.Revalidate(); !errors.Is(err, readahead.ErrShortImmutable) {
		t.Fatalf("Revalidate of a file shorter than its claim: %v", err)
	}
	if err := r.MarkImmutable(5, 4); err == nil {
		t.Fatal("MarkImmutable accepted an inverted range")
	}
	check(t, c)
}

func TestRevalidateWrongIdentity(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs})
	f := newFakeFile("x", 9, pattern(bs, 16))
	r := c.Open(f, readahead.FileID{Ino: 8, Generation: 1})
	read(t, r, 0, f.bytes())
	if _, err := r.Revalidate(); !errors.Is(err, readahead.ErrIdentity) {
		t.Fatalf("Revalidate: %v", err)
	}
	if s := c.Stats(); s.CachedBlocks != 0 {
		t.Fatalf("%d blocks kept under a wrong identity", s.CachedBlocks)
	}
}

// TestMarkImmutableDropsBlocksReadBeforeCommit: an append-only tail block
// read while an append was in progress must not become immutable with the
// bytes of before the commit.
func TestMarkImmutableDropsBlocksReadBeforeCommit(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1})
	f := newFakeFile("log", 1, pattern(bs+4, 17))
	r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	if err := r.MarkImmutable(0, bs+4); err != nil {
		t.Fatal(err)
	}
	read(t, r, 0, f.bytes()[:bs+4])  // block 1 is the mutable tail: 4 committed bytes
	f.WriteAt(pattern(bs, 18), bs+4) // an append completes (this host wrote it: no Revalidate)
	if err := r.MarkImmutable(0, 2*bs+4); err != nil {
		t.Fatal(err)
	}
	want := f.bytes()
	read(t, r, 0, want)
	if calls := readCalls(f, func() {
		if err := r.MarkImmutable(0, 2*bs+4); err != nil { // adds nothing: costs nothing
			t.Fatal(err)
		}
		read(t, r, 0, want)
	}); calls != 0 {
		t.Fatalf("a claim that adds nothing cost %d reads", calls)
	}
	check(t, c)
}

// TestFetchRacingRevalidateIsNotCached: a block read that started before a
// Revalidate dropped the mutable blocks returns to its reader but is not
// cached, so a read after the Revalidate never sees bytes from before it.
func TestFetchRacingRevalidateIsNotCached(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop func(r *readahead.Reader, f *fakeFile)
	}{
		{"Revalidate", func(r *readahead.Reader, f *fakeFile) {
			if changed, err := r.Revalidate(); err != nil || !changed {
				t.Errorf("Revalidate: %v %v", changed, err)
			}
		}},
		{"Invalidate", func(r *readahead.Reader, f *fakeFile) { r.Invalidate(0, bs) }},
		{"MarkImmutable", func(r *readahead.Reader, f *fakeFile) {
			if err := r.MarkImmutable(0, bs); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1})
			old := pattern(bs, 19)
			f := newFakeFile("x", 1, old)
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			if _, err := r.Revalidate(); err != nil {
				t.Fatal(err)
			}
			entered, release := make(chan struct{}), make(chan struct{})
			f.readHook = func(int64) ([]byte, error) {
				close(entered)
				<-release
				return old, nil // the bytes of before the write
			}
			var wg sync.WaitGroup
			wg.Go(func() {
				got := make([]byte, bs)
				if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, old) {
					t.Errorf("racing read: %v %x", err, got)
				}
			})
			<-entered
			f.readHook = nil
			f.WriteAt(pattern(bs, 20), 0)
			tc.drop(r, f)
			close(release)
			wg.Wait()
			read(t, r, 0, f.bytes())
			check(t, c)
		})
	}
}

func TestShortReadWithoutErrorIsAnError(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1})
	f := newFakeFile("x", 1, pattern(2*bs, 21))
	f2 := &halfReader{f}
	r := c.Open(f2, readahead.FileID{Ino: 1, Generation: 1})
	if _, err := r.ReadAt(make([]byte, 4), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadAt over a file that breaks the io.ReaderAt contract: %v", err)
	}
	if s := c.Stats(); s.CachedBlocks != 0 {
		t.Fatal("cached a short read")
	}
}

// halfReader breaks the io.ReaderAt contract: short reads with a nil error.
type halfReader struct{ *fakeFile }

func (h *halfReader) ReadAt(p []byte, off int64) (int, error) {
	n, _ := h.fakeFile.ReadAt(p[:len(p)/2], off)
	return n, nil
}

func TestClose(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs})
	data := pattern(2*bs, 22)
	f := newFakeFile("x", 1, data)
	id := readahead.FileID{Ino: 1, Generation: 1}
	r := c.Open(f, id)
	read(t, r, 0, data)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 1), 0); !errors.Is(err, readahead.ErrClosed) {
		t.Fatalf("ReadAt after Close: %v", err)
	}
	if _, err := r.Revalidate(); !errors.Is(err, readahead.ErrClosed) {
		t.Fatalf("Revalidate after Close: %v", err)
	}
	if err := r.Close(); !errors.Is(err, readahead.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	check(t, c)
	r2 := c.Open(f, id)
	if calls := readCalls(f, func() { read(t, r2, 0, data) }); calls != 0 {
		t.Fatalf("blocks did not outlive the Reader: %d calls", calls)
	}
	r2.Close()
	r2.Invalidate(0, 1<<40) // a closed reader's Invalidate is harmless
	check(t, c)
	if s := c.Stats(); s.CachedBlocks != 0 {
		t.Fatalf("%d blocks left", s.CachedBlocks)
	}
}

// TestConcurrentReaders runs readers, revalidations and invalidations of one
// identity from several goroutines over a file that does not change; run it
// with -race. Every read must return the file's bytes.
func TestConcurrentReaders(t *testing.T) {
	for _, conc := range []int{0, 4} {
		t.Run(fmt.Sprint("ReadConcurrency=", conc), func(t *testing.T) { concurrentReaders(t, conc) })
	}
}

func concurrentReaders(t *testing.T, concurrency int) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 24 * bs, MaxReadAheadBlocks: 4, ReadConcurrency: concurrency})
	data := pattern(97*bs+5, 23)
	f := newFakeFile("x", 1, data)
	id := readahead.FileID{Ino: 1, Generation: 1}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := c.Open(f, id)
			defer r.Close()
			if g%2 == 0 {
				r.MarkImmutable(0, int64(len(data))/2)
			}
			for i := range 300 {
				off := int64((i*131 + g*977) % len(data))
				if g%3 == 0 {
					off = int64((i * 8) % len(data)) // sequential
				}
				n := min(int64(len(data))-off, int64(1+(i*g)%40))
				got := make([]byte, n)
				if _, err := r.ReadAt(got, off); err != nil || !bytes.Equal(got, data[off:off+n]) {
					t.Errorf("goroutine %d: ReadAt(%d, %d): %v", g, off, n, err)
					return
				}
				switch i % 50 {
				case 7:
					r.Revalidate()
				case 23:
					r.Invalidate(off, bs)
				}
			}
		})
	}
	wg.Wait()
	check(t, c)
}

// TestReadsAreSequentialByDefault: without ReadConcurrency the block reads
// of a ReadAt, read-ahead included, arrive at the file one at a time and in
// ascending offset order, so the I/O of a ReadAt never depends on the Go
// scheduler (TestReadAheadInsideSimTask shows what that buys in nfssim).
func TestReadsAreSequentialByDefault(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 256 * bs, MaxReadAheadBlocks: 8})
	f := newFakeFile("x", 1, pattern(40*bs, 5))
	f.logReads = true
	var inflight, peak int
	f.readHook = func(int64) ([]byte, error) {
		// Unlocked on purpose: with sequential reads nothing else runs
		// here, and -race reports it if something does.
		inflight++
		peak = max(peak, inflight)
		inflight--
		return nil, nil
	}
	r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	if _, err := r.Revalidate(); err != nil { // the size stops read-ahead at the end
		t.Fatal(err)
	}
	var want []int64
	p := make([]byte, 3)
	for off := int64(0); off+int64(len(p)) <= 40*bs; off += 3 {
		if _, err := r.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	for i := range int64(40) {
		want = append(want, i*bs)
	}
	if got := f.takeReadsInOrder(); !slices.Equal(got, want) {
		t.Fatalf("reads arrived at %v, want %v", got, want)
	}
	if peak != 1 {
		t.Fatalf("%d reads in flight at once", peak)
	}
	if s := c.Stats(); s.ReadAheadBlocks == 0 || s.ReadCalls != 40 {
		t.Fatalf("stats %+v: want 40 read calls, most of them read-ahead", s)
	}
}

// TestParallelReadsOverlap: with ReadConcurrency k, the block reads of one
// ReadAt are in flight together, k at a time and never more. Each read waits
// until k have started, so a cache that read them one by one would hang here.
func TestParallelReadsOverlap(t *testing.T) {
	for _, k := range []int{2, 4} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 1, ReadConcurrency: k})
			data := pattern(6*bs, 6)
			f := newFakeFile("x", 1, data)
			var mu sync.Mutex
			var inflight, peak, arrived int
			started := make(chan struct{})
			f.readHook = func(int64) ([]byte, error) {
				mu.Lock()
				inflight++
				peak = max(peak, inflight)
				arrived++
				first := arrived <= k
				if arrived == k {
					close(started)
				}
				mu.Unlock()
				if first {
					<-started
				}
				mu.Lock()
				inflight--
				mu.Unlock()
				return nil, nil
			}
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			read(t, r, 0, data) // six demanded blocks in one round
			if peak != k {
				t.Fatalf("%d reads in flight at most, want %d", peak, k)
			}
			if s := c.Stats(); s.ReadCalls != 6 || s.Misses != 6 {
				t.Fatalf("stats %+v: want exactly 6 read calls", s)
			}
			check(t, c)
		})
	}
}

// TestCheckDuringRead: Check holds while another goroutine's ReadAt is
// waiting for its block reads (misses are counted when planned, read calls
// when they return). Found by proofs.TestReadaheadMatchesUncachedOnNFS, where
// two nfssim tasks share a cache and one checks while the other is in a READ.
func TestCheckDuringRead(t *testing.T) {
	c := newCache(t, readahead.Options{BlockSize: bs, MemoryBytes: 64 * bs, MaxReadAheadBlocks: 4})
	data := pattern(8*bs, 24)
	f := newFakeFile("x", 1, data)
	r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	entered, release := make(chan struct{}), make(chan struct{})
	f.readHook = func(int64) ([]byte, error) {
		select {
		case <-entered:
		default:
			close(entered)
			<-release
		}
		return nil, nil
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		got := make([]byte, 3*bs)
		if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, data[:3*bs]) {
			t.Errorf("ReadAt: %v %x", err, got)
		}
	})
	<-entered
	check(t, c) // three misses planned, no read call returned
	close(release)
	wg.Wait()
	check(t, c)
	if s := c.Stats(); s.ReadCalls != s.Misses+s.ReadAheadBlocks || s.Misses != 3 {
		t.Fatalf("stats %+v", s)
	}
}
