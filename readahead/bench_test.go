package readahead_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nfsindex/nfsindex/readahead"
)

// The benchmark file: 100,000 records of 64 bytes (6.4 MB), the records of a
// 100,000-message snapshot. With 64 KiB blocks it is 98 blocks.
const (
	benchRecordSize = 64
	benchRecords    = 100_000
	benchFileSize   = benchRecordSize * benchRecords
	benchBlocks     = (benchFileSize + readahead.DefaultBlockSize - 1) / readahead.DefaultBlockSize
)

var benchData = sync.OnceValue(func() []byte { return pattern(benchFileSize, 99) })

// report adds the exact I/O counts per operation: reads/op are ReadAt calls
// (READ RPCs on NFS with rsize >= 64 KiB), stats/op are Stat calls (GETATTR).
func report(b *testing.B, f *fakeFile, reads0, stats0 int) {
	reads, stats := f.counts()
	b.ReportMetric(float64(reads-reads0)/float64(b.N), "reads/op")
	b.ReportMetric(float64(stats-stats0)/float64(b.N), "stats/op")
}

// scan reads every record once, in order, 64 bytes at a time.
func scan(b *testing.B, r interface {
	ReadAt([]byte, int64) (int, error)
}) {
	rec := make([]byte, benchRecordSize)
	for off := int64(0); off < benchFileSize; off += benchRecordSize {
		if _, err := r.ReadAt(rec, off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequentialRead opens a cold cache and reads the whole file record
// by record, as opening a mailbox reads its snapshot: the target is
// size/blockSize reads (98) and one Stat. "uncached" issues every record read
// to the file, for comparison.
func BenchmarkSequentialRead(b *testing.B) {
	b.Run("cached", func(b *testing.B) {
		f := newFakeFile("index", 1, benchData())
		b.SetBytes(benchFileSize)
		reads0, stats0 := f.counts()
		for b.Loop() {
			c, err := readahead.New(readahead.Options{})
			if err != nil {
				b.Fatal(err)
			}
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			if _, err := r.Revalidate(); err != nil { // the open's GETATTR
				b.Fatal(err)
			}
			if err := r.MarkImmutable(0, benchFileSize); err != nil {
				b.Fatal(err)
			}
			scan(b, r)
		}
		report(b, f, reads0, stats0)
	})
	b.Run("uncached", func(b *testing.B) {
		f := newFakeFile("index", 1, benchData())
		b.SetBytes(benchFileSize)
		reads0, stats0 := f.counts()
		for b.Loop() {
			scan(b, f)
		}
		report(b, f, reads0, stats0)
	})
}

// BenchmarkReread re-reads the whole file through a warm cache after a
// Revalidate that finds nothing changed (a Sync with nothing new): the target
// is 0 reads and 1 Stat per operation.
func BenchmarkReread(b *testing.B) {
	f := newFakeFile("index", 1, benchData())
	c, err := readahead.New(readahead.Options{})
	if err != nil {
		b.Fatal(err)
	}
	r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
	if _, err := r.Revalidate(); err != nil {
		b.Fatal(err)
	}
	scan(b, r) // warm; the file stays mutable: Revalidate is what keeps it
	b.SetBytes(benchFileSize)
	reads0, stats0 := f.counts()
	for b.Loop() {
		if changed, err := r.Revalidate(); err != nil || changed {
			b.Fatal(changed, err)
		}
		scan(b, r)
	}
	report(b, f, reads0, stats0)
}

// BenchmarkRandomRead reads one record at a uniformly random offset per
// operation, with the cache holding 1/6 of the file ("small", 1 MiB) or all
// of it ("large"); reads/op is the miss ratio.
func BenchmarkRandomRead(b *testing.B) {
	for _, tc := range []struct {
		name        string
		memoryBytes int64
	}{
		{"small", 1 << 20},
		{"large", 8 << 20},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFakeFile("index", 1, benchData())
			c, err := readahead.New(readahead.Options{MemoryBytes: tc.memoryBytes})
			if err != nil {
				b.Fatal(err)
			}
			r := c.Open(f, readahead.FileID{Ino: 1, Generation: 1})
			if err := r.MarkImmutable(0, benchFileSize); err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			rec := make([]byte, benchRecordSize)
			reads0, stats0 := f.counts()
			for b.Loop() {
				if _, err := r.ReadAt(rec, rng.Int64N(benchRecords)*benchRecordSize); err != nil {
					b.Fatal(err)
				}
			}
			report(b, f, reads0, stats0)
		})
	}
}

// BenchmarkParallelRead reads random records from all Ps at once through one
// warm cache: the cost of the shared lock on the hit path.
func BenchmarkParallelRead(b *testing.B) {
	f := newFakeFile("index", 1, benchData())
	c, err := readahead.New(readahead.Options{})
	if err != nil {
		b.Fatal(err)
	}
	id := readahead.FileID{Ino: 1, Generation: 1}
	warm := c.Open(f, id)
	warm.MarkImmutable(0, benchFileSize)
	scan(b, warm)
	reads0, stats0 := f.counts()
	b.ResetTimer()
	var seed sync.Mutex
	next := uint64(0)
	b.RunParallel(func(pb *testing.PB) {
		seed.Lock()
		next++
		rng := rand.New(rand.NewPCG(next, 7))
		seed.Unlock()
		r := c.Open(f, id)
		defer r.Close()
		rec := make([]byte, benchRecordSize)
		for pb.Next() {
			if _, err := r.ReadAt(rec, rng.Int64N(benchRecords)*benchRecordSize); err != nil {
				b.Error(err)
				return
			}
		}
	})
	report(b, f, reads0, stats0)
}
