package appendlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
)

// benchSimHost returns one host of a fresh nfssim (NFSv3, Linux's default
// mount) and the simulator.
func benchSimHost(b *testing.B, name string) (*nfssim.Sim, *nfssim.Host) {
	b.Helper()
	s := nfssim.New(nfssim.DefaultConfig(1))
	b.Cleanup(s.Close)
	h, err := s.AddHost(name, nfssim.DefaultMount())
	if err != nil {
		b.Fatal(err)
	}
	return s, h
}

// reportSim reports the RPCs and the simulated time per operation of h
// since before and t0.
func reportSim(b *testing.B, s *nfssim.Sim, h *nfssim.Host, before nfssim.Counts, t0 time.Duration) {
	d := h.RPCs().Sub(before)
	b.ReportMetric(float64(d.Total())/float64(b.N), "RPCs/op")
	b.ReportMetric(float64(s.Now()-t0)/float64(time.Millisecond)/float64(b.N), "sim-ms/op")
}

// BenchmarkSimCommit is BenchmarkCommit on nfssim: the RPCs of a durable
// group commit of n 128-byte appends (frames and header in the page cache,
// one fsync: WRITE(s), and COMMIT when more than one page is dirty).
func BenchmarkSimCommit(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("group=%d", n), func(b *testing.B) {
			s, h := benchSimHost(b, "w")
			ctx := context.Background()
			w, err := Create(ctx, h.FS(), ".", "w", Options{Rand: rand.New(rand.NewPCG(1, 2))})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			p := make([]byte, benchRecordBytes)
			b.ResetTimer()
			before, t0 := h.RPCs(), s.Now()
			for i := 0; i < b.N; i++ {
				for j := 0; j < n; j++ {
					p[0] = byte(j)
					if _, err := w.Append(1, p); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportSim(b, s, h, before, t0)
		})
	}
}

// BenchmarkSimOpenAndRead is a reader on another host (NFSv4.2, whose
// change attribute makes a fresh open see every commit that returned
// before it) opening the log after one new commit and reading that
// record: close-to-open revalidation, the header, and the new frame.
func BenchmarkSimOpenAndRead(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	b.Cleanup(s.Close)
	m := nfssim.DefaultMount()
	m.Version = nfssim.V4
	wh, err := s.AddHost("w", m)
	if err != nil {
		b.Fatal(err)
	}
	rh, err := s.AddHost("r", m)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	w, err := Create(ctx, wh.FS(), ".", "w", Options{Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	p := make([]byte, benchRecordBytes)
	var rpcs nfssim.Counts
	var simTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ref, err := w.Append(1, p)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		before, t0 := rh.RPCs(), s.Now()
		r, err := OpenReader(ctx, rh.FS(), ".", "w", Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Read(ctx, ref); err != nil {
			b.Fatal(err)
		}
		r.Close()
		rpcs, simTime = rpcs.Add(rh.RPCs().Sub(before)), simTime+s.Now()-t0
	}
	b.StopTimer()
	b.ReportMetric(float64(rpcs.Total())/float64(b.N), "RPCs/op")
	b.ReportMetric(float64(simTime)/float64(time.Millisecond)/float64(b.N), "sim-ms/op")
}
