package proofs

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/vfs"
)

// The benchmark snapshot: 100,000 records of 64 bytes (6.4 MB, 98 blocks of
// 64 KiB, 6.1 rsize chunks of 1 MiB), written by host w and read by host r.
// The figures that matter are exact and reported per operation: READs/op
// and RPCs/op are the reader host's RPCs (nfssim.Host.RPCs), calls/op its
// vfs.File calls (ReadAt and Stat: system calls on a real mount), sim-us/op
// the simulated time, in which every call is sequential. ns/op only says
// how fast the simulator runs.
//
//	go test ./proofs -run '^$' -bench 'BenchmarkReadahead(SnapshotOpen|Reread)' -benchtime 10x
//	go test ./proofs -run '^$' -bench BenchmarkReadaheadRandomRead -benchtime 100000x
const (
	raBenchRecords = 100_000
	raBenchSize    = raBenchRecords * raRecordSize
	raBenchName    = "snapshot"
)

// raBenchMounts are the reader mounts compared: Linux's v3 and v4.2
// defaults (rsize 1 MiB) and v3 with rsize 64 KiB, the cache's block size.
func raBenchMounts() []struct {
	name string
	m    nfssim.Mount
} {
	v3, v4, small := nfssim.DefaultMount(), nfssim.DefaultMount(), nfssim.DefaultMount()
	v4.Version = nfssim.V4
	small.RSize = 64 << 10
	return []struct {
		name string
		m    nfssim.Mount
	}{{"v3", v3}, {"v4", v4}, {"v3-rsize64k", small}}
}

// raBench is a simulation with the snapshot written and a reader host.
type raBench struct {
	s    *nfssim.Sim
	w, r *nfssim.Host
	wf   vfs.File // the writer's descriptor, for appends
	size int64
}

func raNewBench(b *testing.B, m nfssim.Mount) *raBench {
	b.Helper()
	s := nfssim.New(nfssim.DefaultConfig(1))
	b.Cleanup(s.Close)
	w := s.Host("w")
	r, err := s.AddHost("r", m)
	if err != nil {
		b.Fatal(err)
	}
	wf, err := w.FS().OpenFile(raBenchName, vfs.ReadWrite|vfs.Create|vfs.Truncate, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := wf.WriteAt(raBenchData(0, raBenchSize), 0); err != nil {
		b.Fatal(err)
	}
	if err := wf.Sync(); err != nil {
		b.Fatal(err)
	}
	return &raBench{s: s, w: w, r: r, wf: wf, size: raBenchSize}
}

// raBenchData returns the snapshot's bytes [off, off+n): the records of
// TestReadaheadMatchesUncachedOnNFS's generation 1, starting at offset 0.
func raBenchData(off, n int64) []byte { return raExpected(1, raHeaderSize+off, n) }

// append adds one record as another host would: write, sync (the commit
// that changes the file's size and mtime).
func (e *raBench) append(b *testing.B) {
	if _, err := e.wf.WriteAt(raBenchData(e.size, raRecordSize), e.size); err != nil {
		b.Fatal(err)
	}
	if err := e.wf.Sync(); err != nil {
		b.Fatal(err)
	}
	e.size += raRecordSize
}

// raCountingFile counts the vfs.File calls a reader makes.
type raCountingFile struct {
	vfs.File
	calls int
}

func (f *raCountingFile) ReadAt(p []byte, off int64) (int, error) {
	f.calls++
	return f.File.ReadAt(p, off)
}

func (f *raCountingFile) Stat() (vfs.FileInfo, error) {
	f.calls++
	return f.File.Stat()
}

// raMeter accumulates the reader's RPCs, calls and simulated time over the
// measured part of each operation.
type raMeter struct {
	e     *raBench
	rpcs  nfssim.Counts
	calls int
	simUS float64
	start nfssim.Counts
	t0    float64
}

func (m *raMeter) begin() {
	m.start = m.e.r.RPCs()
	m.t0 = float64(m.e.s.Now().Microseconds())
}

func (m *raMeter) end(f *raCountingFile) {
	m.rpcs = m.rpcs.Add(m.e.r.RPCs().Sub(m.start))
	m.simUS += float64(m.e.s.Now().Microseconds()) - m.t0
	if f != nil {
		m.calls += f.calls
		f.calls = 0
	}
}

func (m *raMeter) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(float64(m.rpcs.Get(nfssim.READ))/n, "READs/op")
	b.ReportMetric(float64(m.rpcs.Total())/n, "RPCs/op")
	b.ReportMetric(float64(m.calls)/n, "calls/op")
	b.ReportMetric(m.simUS/n, "sim-us/op")
	b.Logf("N=%d: reader RPCs %v", b.N, m.rpcs)
}

// open opens the snapshot on the reader host, by name (close-to-open).
func (e *raBench) open(b *testing.B) *raCountingFile {
	f, err := e.r.FS().OpenFile(raBenchName, vfs.ReadOnly, 0)
	if err != nil {
		b.Fatal(err)
	}
	return &raCountingFile{File: f}
}

// raScan reads records [0, size/64) in order, one ReadAt of 64 bytes each,
// and checks the last one.
func raScan(b *testing.B, r io.ReaderAt, size int64) {
	rec := make([]byte, raRecordSize)
	for off := int64(0); off < size; off += raRecordSize {
		if _, err := r.ReadAt(rec, off); err != nil {
			b.Fatalf("read at %d: %v", off, err)
		}
	}
	if want := raBenchData(size-raRecordSize, raRecordSize); string(rec) != string(want) {
		b.Fatal("the last record is not the writer's")
	}
}

// raOpenCached is the engine's open of a snapshot through the cache: Stat
// for the inode, Open under (inode, generation), Revalidate for the
// baseline, claim the records immutable.
func raOpenCached(b *testing.B, c *readahead.Cache, f *raCountingFile) *readahead.Reader {
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	r := c.Open(f, readahead.FileID{Ino: fi.Ino, Generation: 1})
	if _, err := r.Revalidate(); err != nil {
		b.Fatal(err)
	}
	if err := r.MarkImmutable(0, fi.Size); err != nil {
		b.Fatal(err)
	}
	return r
}

func raNewCache(b *testing.B, opts readahead.Options) *readahead.Cache {
	c, err := readahead.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkReadaheadSnapshotOpen opens the snapshot on a reader host with
// cold caches (a host just booted: nfssim's Crash and Restart between
// operations, outside the measurement) and reads every record in order.
// Target: about size/rsize READs (7 with rsize 1 MiB, 98 with 64 KiB) plus
// the open's RPCs. "cached" goes through a new readahead.Cache (64 KiB
// blocks), "uncached" issues each record read to the file.
func BenchmarkReadaheadSnapshotOpen(b *testing.B) {
	for _, mt := range raBenchMounts() {
		for _, cached := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/%s", mt.name, raCachedName(cached)), func(b *testing.B) {
				e := raNewBench(b, mt.m)
				m := &raMeter{e: e}
				b.SetBytes(raBenchSize)
				for b.Loop() {
					b.StopTimer()
					e.r.Crash(nfssim.Fault{}) // cold: no pages, no attributes, no names
					e.r.Restart()
					b.StartTimer()
					m.begin()
					f := e.open(b)
					if cached {
						r := raOpenCached(b, raNewCache(b, readahead.Options{}), f)
						raScan(b, r, e.size)
						r.Close()
					} else {
						raScan(b, f, e.size)
					}
					f.Close()
					m.end(f)
				}
				m.report(b)
			})
		}
	}
}

func raCachedName(cached bool) string {
	if cached {
		return "cached"
	}
	return "uncached"
}

// BenchmarkReadaheadReread re-reads the whole snapshot after nothing
// changed: reopen by name (close-to-open), Revalidate, read every record.
// Target: one revalidation (the open's GETATTR on v3; v4 sends OPEN and
// CLOSE instead) and no READ. The NFS client's page cache gives "uncached"
// the same RPCs; what the cache saves there is 100,000 calls.
func BenchmarkReadaheadReread(b *testing.B) {
	for _, mt := range raBenchMounts()[:2] {
		for _, cached := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/%s", mt.name, raCachedName(cached)), func(b *testing.B) {
				e := raNewBench(b, mt.m)
				c := raNewCache(b, readahead.Options{})
				warm := e.open(b)
				raScan(b, raOpenCached(b, c, warm), e.size)
				warm.Close()
				m := &raMeter{e: e}
				b.SetBytes(raBenchSize)
				for b.Loop() {
					m.begin()
					f := e.open(b)
					if cached {
						r := c.Open(f, readahead.FileID{Ino: raIno(b, f), Generation: 1})
						if changed, err := r.Revalidate(); err != nil || changed {
							b.Fatal(changed, err)
						}
						raScan(b, r, e.size)
						r.Close()
					} else {
						raScan(b, f, e.size)
					}
					f.Close()
					m.end(f)
				}
				m.report(b)
			})
		}
	}
}

func raIno(b *testing.B, f *raCountingFile) uint64 {
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return fi.Ino
}

// BenchmarkReadaheadRereadAfterAppend is the re-read of an append-only file
// after another host committed one more record: the file's mtime changed,
// so the NFS client drops every cached page of it at the reopen (N2) and an
// uncached re-read costs size/rsize READs again, while the cache keeps every
// block below the old committed length (immutable) and reads only the tail.
// The writer's RPCs are not counted.
func BenchmarkReadaheadRereadAfterAppend(b *testing.B) {
	for _, mt := range raBenchMounts()[:2] {
		for _, cached := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/%s", mt.name, raCachedName(cached)), func(b *testing.B) {
				e := raNewBench(b, mt.m)
				c := raNewCache(b, readahead.Options{})
				warm := e.open(b)
				raScan(b, raOpenCached(b, c, warm), e.size)
				warm.Close()
				m := &raMeter{e: e}
				for b.Loop() {
					e.append(b)
					m.begin()
					f := e.open(b)
					if cached {
						r := raOpenCached(b, c, f)
						raScan(b, r, e.size)
						r.Close()
					} else {
						raScan(b, f, e.size)
					}
					f.Close()
					m.end(f)
				}
				m.report(b)
			})
		}
	}
}

// BenchmarkReadaheadRandomRead reads one record at a uniformly random offset
// per operation from an open snapshot (v3, rsize 1 MiB) after one sequential
// scan warmed the caches, through a cache that holds all of it (32 MiB),
// through one that holds a sixth (1 MiB), and uncached. The NFS client's
// page cache holds the whole file in every case, so no READ is sent: a miss
// of the small cache costs a call, not an RPC. Run it with many iterations
// (-benchtime 100000x): calls/op of the small cache is its miss ratio.
func BenchmarkReadaheadRandomRead(b *testing.B) {
	for _, tc := range []struct {
		name        string
		memoryBytes int64 // 0: uncached
	}{{"cached-32MiB", 32 << 20}, {"cached-1MiB", 1 << 20}, {"uncached", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			e := raNewBench(b, nfssim.DefaultMount())
			f := e.open(b)
			defer f.Close()
			var r io.ReaderAt = f
			if tc.memoryBytes > 0 {
				r = raOpenCached(b, raNewCache(b, readahead.Options{MemoryBytes: tc.memoryBytes}), f)
			}
			raScan(b, r, e.size) // warm
			rng := rand.New(rand.NewPCG(1, 2))
			rec := make([]byte, raRecordSize)
			f.calls = 0
			m := &raMeter{e: e}
			m.begin()
			for b.Loop() {
				if _, err := r.ReadAt(rec, rng.Int64N(raBenchRecords)*raRecordSize); err != nil {
					b.Fatal(err)
				}
			}
			m.end(f)
			m.report(b)
		})
	}
}
