package rename

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// benchRecords is the file the benchmarks compact: 100,000 records of
// 64 bytes (6.4 MB).
const (
	benchRecords    = 100_000
	benchRecordSize = 64
)

func benchPayload() []byte {
	rec := make([]byte, benchRecordSize)
	var b bytes.Buffer
	for i := 0; i < benchRecords; i++ {
		for j := range rec {
			rec[j] = byte(i >> (8 * (j % 4)))
		}
		b.Write(rec)
	}
	return b.Bytes()
}

// compact is one compaction: claim, write every record, sync, fence,
// rename, sync the directory.
func compactOnce(b *testing.B, fsys vfs.FS, gen uint64, data []byte, o Options) {
	c, err := Begin(ctx, fsys, "index", gen, o)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(data); off += benchRecordSize {
		if _, err := c.Write(data[off : off+benchRecordSize]); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := c.Commit(ctx); err != nil {
		b.Fatal(err)
	}
}

func benchSim(b *testing.B, v4 bool) (*nfssim.Sim, *nfssim.Host, vfs.FS) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	b.Cleanup(s.Close)
	m := nfssim.DefaultMount()
	if v4 {
		m.Version = nfssim.V4
	}
	h, err := s.AddHost("mx1", m)
	if err != nil {
		b.Fatal(err)
	}
	return s, h, h.FS()
}

// BenchmarkCompact is a compaction of a 100,000-record file on nfssim
// (NFSv3 and v4, Linux's default mount: wsize 1 MiB), reporting the RPCs
// of each: claim (MKDIR, ACCESS, LOOKUP, CREATE+SETATTR, WRITE, RENAME),
// the payload (WRITE per wsize and COMMIT), the fencing check (GETATTR of
// the directory, LINK of a pin, READ of the header, REMOVE of the pin)
// and the install (RENAME, and GETATTR for SyncDir). sim-ms/op is the
// simulated time at 200 µs per RPC and 1 GB/s.
//
//	go test ./rename -run XXX -bench Compact
func BenchmarkCompact(b *testing.B) {
	for _, v4 := range []bool{false, true} {
		name := "nfsv3"
		if v4 {
			name = "nfsv4"
		}
		b.Run(name, func(b *testing.B) {
			sim, h, fsys := benchSim(b, v4)
			data := benchPayload()
			o := topts("mx1", 1)
			compactOnce(b, fsys, 1, data, o)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			before := h.RPCs()
			t0 := sim.Now()
			for i := 0; i < b.N; i++ {
				compactOnce(b, fsys, uint64(i+2), data, o)
			}
			b.StopTimer()
			d := h.RPCs().Sub(before)
			b.ReportMetric(float64(d.Total())/float64(b.N), "RPCs/op")
			b.ReportMetric(float64(sim.Now()-t0)/float64(time.Millisecond)/float64(b.N), "sim-ms/op")
			if b.N == 1 {
				b.Logf("RPCs of one compaction: %v", d)
			}
		})
	}
}

// BenchmarkLoad reads the 100,000-record version whole on another host
// that has never read it (cold: the pin's LINK and REMOVE, a LOOKUP, the
// header and the payload in rsize READs), and again on a host that has
// (warm: the version never changes, so its cached pages stay valid).
//
//	go test ./rename -run XXX -bench Load
func BenchmarkLoad(b *testing.B) {
	for _, warm := range []bool{false, true} {
		name := "cold"
		if warm {
			name = "warm"
		}
		b.Run(name, func(b *testing.B) {
			s := nfssim.New(nfssim.DefaultConfig(1))
			b.Cleanup(s.Close)
			w, _ := s.AddHost("mx1", nfssim.DefaultMount())
			data := benchPayload()
			compactOnce(b, w.FS(), 1, data, topts("mx1", 1))
			r, _ := s.AddHost("reader", nfssim.DefaultMount())
			o := topts("reader", 2)
			if warm {
				if _, _, err := Load(ctx, r.FS(), "index", o); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(data)))
			var rpcs uint64
			t0 := s.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h := r
				if !warm {
					b.StopTimer()
					h, _ = s.AddHost(fmt.Sprintf("reader%d", i), nfssim.DefaultMount())
					b.StartTimer()
				}
				before := h.RPCs()
				if _, got, err := Load(ctx, h.FS(), "index", o); err != nil || len(got) != len(data) {
					b.Fatal(err)
				}
				d := h.RPCs().Sub(before)
				rpcs += d.Total()
				if i == 0 {
					b.Logf("RPCs of one load: %v", d)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(rpcs)/float64(b.N), "RPCs/op")
			b.ReportMetric(float64(s.Now()-t0)/float64(time.Millisecond)/float64(b.N), "sim-ms/op")
		})
	}
}

// BenchmarkCompactOSFS is the same compaction on a local directory, with
// its fsyncs.
//
//	go test ./rename -run XXX -bench CompactOSFS
func BenchmarkCompactOSFS(b *testing.B) {
	fsys, err := osfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer fsys.Close()
	data := benchPayload()
	o := topts("mx1", 1)
	compactOnce(b, fsys, 1, data, o)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		compactOnce(b, fsys, uint64(i+2), data, o)
	}
}
