package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
)

// BenchmarkSimCompactFields: a field compaction of a host's log of 10,000
// values of which 7,000 are live (30% of the messages expunged), on NFSv3
// (nfssim): the rewriting host's RPCs per rewrite, the relocation
// records it commits, and the RPCs of another host's Sync that applies
// them.
func BenchmarkSimCompactFields(b *testing.B) {
	ctx := context.Background()
	var rewrite, remote nfssim.Counts
	var records uint64
	for i := range b.N {
		b.StopTimer()
		s := nfssim.New(nfssim.DefaultConfig(uint64(i + 1)))
		a, other := benchOpen(b, s.Host("mx1").FS(), "mx1"), benchOpen(b, s.Host("mx2").FS(), "mx2")
		for n := 0; n < 10000; n += 80 {
			tx := a.Begin()
			for j := n; j < n+80; j++ {
				tx.Append(NewMessage{Fields: map[string][]byte{"file": fmt.Appendf(nil, "%d.M%dP1.mx1.example.org", 1700000000+j, j)}})
			}
			if _, err := tx.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
		for uid := 1; uid <= 10000; uid += 100 {
			tx := a.Begin()
			for u := uid; u < uid+100; u++ {
				if u%10 < 3 {
					tx.Expunge(uint32(u))
				}
			}
			if _, err := tx.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if err := other.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		seq0, _ := a.Digest()
		before := s.Host("mx1").RPCs()
		b.StartTimer()
		if done, err := a.CompactFields(ctx); err != nil || !done {
			b.Fatalf("CompactFields = %v, %v", done, err)
		}
		b.StopTimer()
		rewrite = rewrite.Add(s.Host("mx1").RPCs().Sub(before))
		seq1, _ := a.Digest()
		records += seq1 - seq0
		before = s.Host("mx2").RPCs()
		if err := other.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		remote = remote.Add(s.Host("mx2").RPCs().Sub(before))
		a.Close()
		other.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rewrite.Total())/float64(b.N), "RPCs/op")
	for r, n := range rewrite.Map() {
		b.ReportMetric(float64(n)/float64(b.N), r+"/op")
	}
	b.ReportMetric(float64(records)/float64(b.N), "records/op")
	b.ReportMetric(float64(remote.Total())/float64(b.N), "remote-sync-RPCs/op")
}
