package readahead_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/vfs"
	"pgregory.net/rapid"
)

// TestCachedReadsMatchUncached is the differential property test of the
// cache against the file it caches. Random sequences of writes and
// truncations of the underlying file, revalidations, immutable claims (only
// over bytes that are then never changed again), invalidations, ESTALE,
// replacement of the file by a new identity with the same inode number (N15),
// and reads at random offsets and lengths through two Readers of one identity.
//
// The model is the list of versions the file has had since the last
// revalidation point (Open or Revalidate). Every read must:
//   - return, for each claimed immutable byte, exactly the file's current byte;
//   - return, for each block it touches, the bytes (and end of file) of one
//     of those versions: never anything older than the last Revalidate,
//     never a mixture inside one block, never another identity's bytes;
//   - when nothing was written since the last revalidation point, return
//     exactly what an uncached read (bytes.Reader.ReadAt) of the file returns.
//
// After every step the cache's invariants hold (Cache.Check), memory included.
// Replay a failure with the -rapid.seed (or the testdata/rapid fail file)
// that rapid prints. The reads are sequential (the default); see
// TestCachedReadsMatchUncachedParallel for ReadConcurrency above one.
func TestCachedReadsMatchUncached(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) { cachedReadsMatchUncached(t, 0) })
}

// TestCachedReadsMatchUncachedParallel is TestCachedReadsMatchUncached with
// three block reads in flight at once. (A separate test rather than one more
// draw, so that the committed fail files of the first still replay.)
func TestCachedReadsMatchUncachedParallel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) { cachedReadsMatchUncached(t, 3) })
}

func cachedReadsMatchUncached(t *rapid.T, concurrency int) {
	{
		bsz := rapid.SampledFrom([]int64{4, 8, 16}).Draw(t, "blockSize")
		opts := readahead.Options{
			BlockSize:          bsz,
			MemoryBytes:        rapid.Int64Range(1, 12).Draw(t, "memoryBlocks")*bsz + rapid.Int64Range(0, bsz-1).Draw(t, "memorySlack"),
			MaxReadAheadBlocks: rapid.IntRange(1, 8).Draw(t, "maxReadAhead"),
			ReadConcurrency:    concurrency,
		}
		c, err := readahead.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		m := &model{t: t, c: c, bs: bsz, ino: 42}
		m.replace(rapid.SliceOfN(rapid.Byte(), 0, int(12*bsz)).Draw(t, "initial"))

		t.Repeat(map[string]func(*rapid.T){
			"write":         m.write,
			"append":        m.appendBytes,
			"truncate":      m.truncate,
			"revalidate":    m.revalidate,
			"markImmutable": m.markImmutable,
			"read":          m.read,
			"readSeq":       m.readSequential,
			"invalidate":    m.invalidate,
			"stale":         m.stale,
			"reopen":        m.reopen,
			"renameOver": func(t *rapid.T) {
				m.replace(rapid.SliceOfN(rapid.Byte(), 0, int(12*bsz)).Draw(t, "replacement"))
			},
			"": func(t *rapid.T) {
				if err := c.Check(); err != nil {
					t.Fatal(err)
				}
				if s := c.Stats(); s.CachedBytes > opts.MemoryBytes {
					t.Fatalf("cached %d bytes, bound %d", s.CachedBytes, opts.MemoryBytes)
				}
			},
		})
	}
}

type model struct {
	t   *rapid.T
	c   *readahead.Cache
	bs  int64
	ino uint64
	gen uint64

	f       *fakeFile
	readers [2]*readahead.Reader
	// claimed marks every byte ever claimed immutable for this identity;
	// claimEnd is one past the highest. Writes never touch them.
	claimed  []bool
	claimEnd int64
	// versions holds the file's contents since the last revalidation
	// point, oldest first; the last is the current one.
	versions [][]byte
	// seqOff is where the next sequential read starts.
	seqOff int64
}

// replace installs a new file under the same inode number with the next
// generation, as a rename over the old one would (N15), and opens two
// Readers of it. The old identity's blocks stay cached, unreachable.
func (m *model) replace(data []byte) {
	for _, r := range m.readers {
		if r != nil {
			r.Close()
		}
	}
	m.gen++
	m.f = newFakeFile(fmt.Sprint("index.", m.gen), m.ino, data)
	id := readahead.FileID{Ino: m.ino, Generation: m.gen}
	m.readers = [2]*readahead.Reader{m.c.Open(m.f, id), m.c.Open(m.f, id)}
	m.claimed, m.claimEnd = nil, 0
	m.versions = [][]byte{m.f.bytes()}
}

func (m *model) size() int64 { return int64(len(m.versions[len(m.versions)-1])) }

func (m *model) reader(t *rapid.T) *readahead.Reader {
	return m.readers[rapid.IntRange(0, 1).Draw(t, "reader")]
}

func (m *model) isClaimed(i int64) bool { return i < int64(len(m.claimed)) && m.claimed[i] }

func (m *model) changed() { m.versions = append(m.versions, m.f.bytes()) }

func (m *model) write(t *rapid.T) {
	off := rapid.Int64Range(0, m.size()+m.bs).Draw(t, "off")
	data := rapid.SliceOfN(rapid.Byte(), 1, int(3*m.bs)).Draw(t, "data")
	for i := off; i < off+int64(len(data)); i++ {
		if m.isClaimed(i) {
			t.Skip("would overwrite immutable bytes")
		}
	}
	m.f.WriteAt(data, off)
	m.changed()
}

func (m *model) appendBytes(t *rapid.T) {
	m.f.WriteAt(rapid.SliceOfN(rapid.Byte(), 1, int(3*m.bs)).Draw(t, "data"), m.size())
	m.changed()
}

func (m *model) truncate(t *rapid.T) {
	m.f.Truncate(rapid.Int64Range(m.claimEnd, m.size()+m.bs).Draw(t, "size"))
	m.changed()
}

func (m *model) revalidate(t *rapid.T) {
	if _, err := m.reader(t).Revalidate(); err != nil {
		t.Fatalf("Revalidate: %v", err)
	}
	m.versions = [][]byte{m.f.bytes()}
}

func (m *model) markImmutable(t *rapid.T) {
	lo := rapid.Int64Range(0, m.size()).Draw(t, "lo")
	hi := rapid.Int64Range(lo, m.size()).Draw(t, "hi")
	if err := m.reader(t).MarkImmutable(lo, hi); err != nil {
		t.Fatalf("MarkImmutable(%d, %d): %v", lo, hi, err)
	}
	for int64(len(m.claimed)) < hi {
		m.claimed = append(m.claimed, false)
	}
	for i := lo; i < hi; i++ {
		m.claimed[i] = true
	}
	m.claimEnd = max(m.claimEnd, hi)
}

func (m *model) invalidate(t *rapid.T) {
	off := rapid.Int64Range(-m.bs, m.size()+m.bs).Draw(t, "off")
	m.reader(t).Invalidate(off, rapid.Int64Range(-1, 4*m.bs).Draw(t, "len"))
}

// stale makes one read fail with ESTALE; the error must match vfs.ErrStale
// (when the read went to the file at all) and the cache must stay sound.
func (m *model) stale(t *rapid.T) {
	off := rapid.Int64Range(0, m.size()+m.bs).Draw(t, "off")
	m.f.setAttrs(func(f *fakeFile) { f.readErr = staleErr("read", f.name) })
	_, err := m.reader(t).ReadAt(make([]byte, rapid.Int64Range(1, 3*m.bs).Draw(t, "len")), off)
	m.f.setAttrs(func(f *fakeFile) { f.readErr = nil })
	if err != nil && err != io.EOF && !errors.Is(err, vfs.ErrStale) {
		t.Fatalf("ReadAt with ESTALE: %v", err)
	}
}

// reopen closes one Reader and opens another of the same identity: the
// blocks, claims and baseline are the identity's and carry over.
func (m *model) reopen(t *rapid.T) {
	i := rapid.IntRange(0, 1).Draw(t, "which")
	if err := m.readers[i].Close(); err != nil {
		t.Fatal(err)
	}
	m.readers[i] = m.c.Open(m.f, readahead.FileID{Ino: m.ino, Generation: m.gen})
}

func (m *model) read(t *rapid.T) {
	off := rapid.Int64Range(0, m.size()+2*m.bs).Draw(t, "off")
	m.check(t, m.reader(t), off, rapid.Int64Range(0, 5*m.bs).Draw(t, "len"))
}

// readSequential reads small records one after another, so that read-ahead
// grows, from wherever the last sequential read stopped.
func (m *model) readSequential(t *rapid.T) {
	if m.seqOff > m.size() || rapid.Bool().Draw(t, "restart") {
		m.seqOff = 0
	}
	r := m.readers[0]
	n := rapid.Int64Range(1, m.bs).Draw(t, "record")
	for range rapid.IntRange(1, 20).Draw(t, "records") {
		m.check(t, r, m.seqOff, n)
		m.seqOff += n
	}
}

// check reads [off, off+n) through r and checks the result against the model.
func (m *model) check(t *rapid.T, r *readahead.Reader, off, n int64) {
	got := make([]byte, n)
	gn, err := r.ReadAt(got, off)
	if err != nil && err != io.EOF {
		t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
	}
	if (err == nil) != (int64(gn) == n) {
		t.Fatalf("ReadAt(%d, %d) = %d, %v: breaks io.ReaderAt", off, n, gn, err)
	}
	if n == 0 {
		if gn != 0 || err != nil { // like os.File, unlike bytes.Reader past the end
			t.Fatalf("empty ReadAt at %d = %d, %v", off, gn, err)
		}
		return
	}
	got = got[:gn]
	cur := m.versions[len(m.versions)-1]
	end := off + int64(gn)

	// Claimed bytes are exactly the current ones.
	for i := off; i < end; i++ {
		if m.isClaimed(i) && got[i-off] != cur[i] {
			t.Fatalf("ReadAt(%d, %d): immutable byte %d is %#x, file has %#x", off, n, i, got[i-off], cur[i])
		}
	}
	// Nothing written since the revalidation point: exactly an uncached read.
	if len(m.versions) == 1 {
		want := make([]byte, n)
		wn, werr := bytes.NewReader(cur).ReadAt(want, off)
		if wn != gn || werr != err || !bytes.Equal(got, want[:wn]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v, %x; uncached: %d, %v, %x", off, n, gn, err, got, wn, werr, want[:wn])
		}
		return
	}
	// Otherwise each block's part comes whole from one version since the
	// revalidation point, end of file included.
	eof := err == io.EOF
	for b := off / m.bs; b*m.bs < end || (eof && b == end/m.bs); b++ {
		lo, hi := max(off, b*m.bs), min(end, (b+1)*m.bs)
		piece := got[lo-off : hi-off]
		endsHere := eof && end >= b*m.bs && end < (b+1)*m.bs
		ok := false
		for _, v := range m.versions {
			size := int64(len(v))
			if endsHere && len(piece) == 0 {
				ok = size <= lo // nothing returned: end of file at or before lo
			} else {
				ok = size >= hi && bytes.Equal(v[lo:hi], piece) && (!endsHere || size == end)
			}
			if ok {
				break
			}
		}
		if !ok {
			t.Fatalf("ReadAt(%d, %d) = %d, %v: block %d [%d, %d) = %x matches no version since the last revalidation (%d versions)",
				off, n, gn, err, b, lo, hi, piece, len(m.versions))
		}
	}
}
