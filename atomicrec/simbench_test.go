package atomicrec

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
)

// BenchmarkSimUpdate is BenchmarkUpdate on nfssim (NFSv4.2, Linux's
// default mount otherwise), with a reader on another host reading each update afresh
// (close-to-open): RPCs and simulated time per update and per read.
func BenchmarkSimUpdate(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	b.Cleanup(s.Close)
	m := nfssim.DefaultMount()
	m.Version = nfssim.V4 // a fresh open sees every update that returned (change attribute)
	w, err := s.AddHost("w", m)
	if err != nil {
		b.Fatal(err)
	}
	rd, err := s.AddHost("r", m)
	if err != nil {
		b.Fatal(err)
	}
	f, err := w.FS().OpenFile("rec", vfs.ReadWrite|vfs.Create, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r, err := New(f, benchLayout, Options{Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	p := make([]byte, 200)
	var wRPCs, rRPCs nfssim.Counts
	var wTime, rTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p[0] = byte(i)
		before, t0 := w.RPCs(), s.Now()
		if _, err := r.Update(ctx, p); err != nil {
			b.Fatal(err)
		}
		wRPCs, wTime = wRPCs.Add(w.RPCs().Sub(before)), wTime+s.Now()-t0
		before, t0 = rd.RPCs(), s.Now()
		rf, err := rd.FS().OpenFile("rec", vfs.ReadOnly, 0)
		if err != nil {
			b.Fatal(err)
		}
		rr, err := New(rf, benchLayout, Options{})
		if err != nil {
			b.Fatal(err)
		}
		v, err := rr.Read(ctx)
		if err != nil || v.Payload[0] != byte(i) {
			b.Fatalf("reader got %v, %v; want update %d", v.Payload[:1], err, i)
		}
		rf.Close()
		rRPCs, rTime = rRPCs.Add(rd.RPCs().Sub(before)), rTime+s.Now()-t0
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(wRPCs.Total())/n, "update-RPCs/op")
	b.ReportMetric(float64(rRPCs.Total())/n, "read-RPCs/op")
	b.ReportMetric(float64(wTime)/float64(time.Millisecond)/n, "update-sim-ms/op")
	b.ReportMetric(float64(rTime)/float64(time.Millisecond)/n, "read-sim-ms/op")
}
