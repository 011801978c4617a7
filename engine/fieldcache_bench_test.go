package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
)

// BenchmarkSimFieldValueAfterAppend: host mx2 reads 4,000 field values (about 6 MB of log)
// (envelope-sized, 1-2 KiB) of mx1's log; then, per iteration, mx1 commits
// 10 more messages and mx2 syncs and reads the 10 new values and 100 of the
// old ones. On NFS mx1's append changes the log's attributes, so mx2's page
// cache of it is dropped (N2) and every old value is a READ again without
// the field cache; with it (FieldCacheBytes 0: 8 MiB) the old values are
// served from memory. One run, both ways, on NFSv3 and v4.2: READ RPCs and
// all RPCs per FieldValue, Sync excluded.
func BenchmarkSimFieldValueAfterAppend(b *testing.B) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		for _, c := range []struct {
			name  string
			bytes int64
		}{{"nocache", -1}, {"cache", 0}} {
			b.Run(fmt.Sprintf("%v/%s", v, c.name), func(b *testing.B) { benchFieldAfterAppend(b, v, c.bytes) })
		}
	}
}

func benchFieldAfterAppend(b *testing.B, v nfssim.Version, cacheBytes int64) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(1))
	b.Cleanup(s.Close)
	w := openWith(b, s, "mx1", v, 1, -1)
	r := openWith(b, s, "mx2", v, 2, cacheBytes)
	defer func() { w.Close(); r.Close() }()
	val := func(i int) []byte {
		p := make([]byte, 1024+i%1024)
		for j := range p {
			p[j] = byte('a' + (i+j)%26)
		}
		return p
	}
	n := 0
	add := func(k int) {
		tx := w.Begin()
		for range k {
			tx.Append(NewMessage{Fields: map[string][]byte{"env": val(n)}})
			n++
		}
		if _, err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	read := func(uid uint32) {
		msg, _, ok := r.View().ByUID(uid)
		if !ok {
			b.Fatalf("uid %d missing", uid)
		}
		ref, _ := msg.Field("env")
		if _, err := r.FieldValue(ctx, ref); err != nil {
			b.Fatal(err)
		}
	}
	for range 40 {
		add(100)
	}
	if err := r.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	for uid := uint32(1); uid <= 4000; uid++ { // warm: every value read once
		read(uid)
	}
	h := s.Host("mx2")
	var rpcs nfssim.Counts
	reads := 0
	b.ResetTimer()
	for i := range b.N {
		add(10)
		if err := r.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		before := h.RPCs()
		for j := range 10 { // the new values
			read(uint32(n - 9 + j))
		}
		for j := range 100 { // old ones, spread over the log
			read(uint32(1 + (j*37+i*101)%(n-10)))
		}
		rpcs = rpcs.Add(h.RPCs().Sub(before))
		reads += 110
	}
	b.ReportMetric(float64(rpcs.Get(nfssim.READ))/float64(reads), "READs/value")
	b.ReportMetric(float64(rpcs.Total())/float64(reads), "RPCs/value")
	st := r.FieldCacheStats()
	b.ReportMetric(float64(st.Hits), "cache-hits")
}
