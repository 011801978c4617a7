package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

func benchOpen(b *testing.B, fsys vfs.FS, host string) *Mailbox {
	b.Helper()
	_, sim := fsys.(interface{ Readlink(string) (string, error) })
	_, local := fsys.(*osfs.FS)
	m, err := Open(context.Background(), Options{FS: fsys, Dir: "mbox", Host: host, Rand: rand.New(rand.NewPCG(1, 2)),
		NamespaceDurable: sim && !local})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// fill appends n messages in records of at most 200 appends.
func fill(b *testing.B, m *Mailbox, n int) {
	b.Helper()
	for n > 0 {
		tx := m.Begin()
		for range min(n, 200) {
			tx.Append(NewMessage{Flags: Seen})
		}
		n -= min(n, 200)
		if _, err := tx.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func reportRPCs(b *testing.B, h *nfssim.Host, before nfssim.Counts) {
	d := h.RPCs().Sub(before)
	b.ReportMetric(float64(d.Total())/float64(b.N), "RPCs/op")
	for _, r := range []nfssim.RPC{nfssim.GETATTR, nfssim.LOOKUP, nfssim.READ, nfssim.READLINK, nfssim.SYMLINK, nfssim.WRITE} {
		if n := d.Get(r); n > 0 {
			b.ReportMetric(float64(n)/float64(b.N), r.String()+"/op")
		}
	}
}

// BenchmarkSimFlagDurable: one durable flag change (target: at most 4 RPCs).
func BenchmarkSimFlagDurable(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	m := benchOpen(b, s.Host("mx1").FS(), "mx1")
	fill(b, m, 100)
	before := s.Host("mx1").RPCs()
	b.ResetTimer()
	for i := range b.N {
		tx := m.Begin()
		tx.SetFlags(uint32(1+i%100), Flagged, 0)
		if _, err := tx.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	reportRPCs(b, s.Host("mx1"), before)
}

// BenchmarkSimFlagBatch: 64 flag changes in one commit (group commit).
func BenchmarkSimFlagBatch(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	m := benchOpen(b, s.Host("mx1").FS(), "mx1")
	fill(b, m, 100)
	before := s.Host("mx1").RPCs()
	b.ResetTimer()
	for i := range b.N {
		tx := m.Begin()
		for j := range 64 {
			tx.SetFlags(uint32(1+(i+j)%100), Seen, 0)
		}
		if _, err := tx.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	reportRPCs(b, s.Host("mx1"), before)
	b.ReportMetric(float64(s.Host("mx1").RPCs().Sub(before).Total())/float64(b.N)/64, "RPCs/change")
}

// BenchmarkSimSyncIdle: a Sync with nothing new (target: 1 RPC).
func BenchmarkSimSyncIdle(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	m := benchOpen(b, s.Host("mx1").FS(), "mx1")
	fill(b, m, 10)
	before := s.Host("mx1").RPCs()
	b.ResetTimer()
	for range b.N {
		if err := m.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	reportRPCs(b, s.Host("mx1"), before)
}

// BenchmarkSimSyncRemote: a Sync after one flag change on another host.
func BenchmarkSimSyncRemote(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	w := benchOpen(b, s.Host("mx1").FS(), "mx1")
	r := benchOpen(b, s.Host("mx2").FS(), "mx2")
	fill(b, w, 10)
	var rpcs uint64
	b.ResetTimer()
	for i := range b.N {
		tx := w.Begin()
		tx.SetFlags(uint32(1+i%10), Seen, 0)
		if _, err := tx.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
		before := s.Host("mx2").RPCs()
		if err := r.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		rpcs += s.Host("mx2").RPCs().Sub(before).Total()
	}
	b.ReportMetric(float64(rpcs)/float64(b.N), "RPCs/op")
}

// BenchmarkSimAppendWithFields: delivery of one message with cached fields.
func BenchmarkSimAppendWithFields(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	m := benchOpen(b, s.Host("mx1").FS(), "mx1")
	env := make([]byte, 600)
	before := s.Host("mx1").RPCs()
	b.ResetTimer()
	for i := range b.N {
		tx := m.Begin()
		tx.Append(NewMessage{Fields: map[string][]byte{"envelope": env, "file": []byte(fmt.Sprintf("%d.M1P1.mx1", i))}})
		if _, err := tx.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	reportRPCs(b, s.Host("mx1"), before)
}

// BenchmarkSimOpen100k: opening a compacted 100,000-message mailbox on
// another host (target: the snapshot in rsize reads plus O(1)).
func BenchmarkSimOpen100k(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	m := benchOpen(b, s.Host("mx1").FS(), "mx1")
	fill(b, m, 100_000)
	if ok, err := m.Compact(context.Background()); err != nil || !ok {
		b.Fatalf("compact: %v %v", ok, err)
	}
	var rpcs, reads uint64
	b.ResetTimer()
	for i := range b.N {
		h := s.Host(fmt.Sprintf("reader%d", i))
		before := h.RPCs()
		r := benchOpen(b, h.FS(), h.Name())
		if v := r.View(); v.Len() != 100_000 {
			b.Fatalf("opened %d messages", v.Len())
		}
		d := h.RPCs().Sub(before)
		rpcs += d.Total()
		reads += d.Get(nfssim.READ)
		r.Close()
	}
	b.ReportMetric(float64(rpcs)/float64(b.N), "RPCs/op")
	b.ReportMetric(float64(reads)/float64(b.N), "READ/op")
}

// BenchmarkLocalFlagDurable and BenchmarkLocalRawFloor run side by side
// on the OS layer over a temporary directory: the ratio of their ns/op is
// the engine's cost over the raw pwrite+fdatasync floor (brief §5).
func BenchmarkLocalFlagDurable(b *testing.B) { benchLocalFlag(b, Options{}) }

// BenchmarkLocalFlagSingleKernel: the same with Options.SingleKernel
// (the publish WRITE unsynced: one sync per commit instead of two).
func BenchmarkLocalFlagSingleKernel(b *testing.B) { benchLocalFlag(b, Options{SingleKernel: true}) }

// benchLocalFlag commits single flag changes durably on a temporary
// directory, opened with opt's durability settings.
func benchLocalFlag(b *testing.B, opt Options) {
	fsys, err := osfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	opt.FS, opt.Dir, opt.Host, opt.Rand = fsys, "mbox", "local", rand.New(rand.NewPCG(1, 2))
	m, err := Open(context.Background(), opt)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	fill(b, m, 100)
	b.ResetTimer()
	for i := range b.N {
		tx := m.Begin()
		tx.SetFlags(uint32(1+i%100), Flagged, 0)
		if _, err := tx.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocalRawFloor(b *testing.B) {
	fsys, err := osfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	f, err := fsys.OpenFile("raw", vfs.ReadWrite|vfs.Create, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, 64) // about a flag-change record's size
	b.ResetTimer()
	for i := range b.N {
		if _, err := f.WriteAt(rec, int64(i%1024)*64); err != nil {
			b.Fatal(err)
		}
		if err := f.Datasync(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookupByUID(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	m := benchOpen(b, s.Host("mx1").FS(), "mx1")
	fill(b, m, 10_000)
	v := m.View()
	b.ResetTimer()
	for i := range b.N {
		if _, _, ok := v.ByUID(uint32(1 + i%10_000)); !ok {
			b.Fatal("missing")
		}
	}
}

// BenchmarkSimCompact: one compaction of a 1,000-message mailbox after
// 100 flag changes, on NFSv3 (the RPCs of Compact only; every RPC kind
// it sends is reported per op).
func BenchmarkSimCompact(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	h := s.Host("mx1")
	m := benchOpen(b, h.FS(), "mx1")
	fill(b, m, 1000)
	var total nfssim.Counts
	b.ResetTimer()
	for i := range b.N {
		for j := range 100 {
			tx := m.Begin()
			tx.SetFlags(uint32(1+(i*100+j)%1000), Flagged, 0)
			if _, err := tx.Commit(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		before := h.RPCs()
		if ok, err := m.Compact(context.Background()); err != nil || !ok {
			b.Fatalf("compact: %v %v", ok, err)
		}
		total = total.Add(h.RPCs().Sub(before))
	}
	b.ReportMetric(float64(total.Total())/float64(b.N), "RPCs/op")
	for r, n := range total.Map() {
		b.ReportMetric(float64(n)/float64(b.N), r+"/op")
	}
}

// BenchmarkLocalFlagConcurrent: single flag changes committed durably by
// 16 goroutines at once on one Mailbox (group commit); ns/op is per
// commit, to set beside BenchmarkLocalRawFloor's one pwrite+fdatasync.
func BenchmarkLocalFlagConcurrent(b *testing.B) {
	fsys, err := osfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	m := benchOpen(b, fsys, "local")
	fill(b, m, 100)
	b.SetParallelism(8) // 8 × GOMAXPROCS committers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tx := m.Begin()
			tx.SetFlags(uint32(1+i%100), Flagged, 0)
			if _, err := tx.Commit(context.Background()); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkLocalFlagOrderedJournal: BenchmarkLocalFlagDurable with
// NamespaceDurable, right on a file system whose journal is one ordered
// log (ext4, xfs): the publish's O_DSYNC write commits the install too,
// so a commit costs one sync instead of two.
func BenchmarkLocalFlagOrderedJournal(b *testing.B) {
	benchLocalFlag(b, Options{NamespaceDurable: true})
}

// BenchmarkSimCommitGroup: eight single-flag transactions committed as
// one group (Mailbox.CommitGroup, or eight concurrent Commit calls): each
// its own record and MODSEQ, one publish WRITE for all.
func BenchmarkSimCommitGroup(b *testing.B) {
	s := nfssim.New(nfssim.DefaultConfig(1))
	// No automatic compaction: its REMOVEs would be spread over the groups.
	m, err := Open(context.Background(), Options{FS: s.Host("mx1").FS(), Dir: "mbox", Host: "mx1",
		Rand: rand.New(rand.NewPCG(1, 2)), NamespaceDurable: true, CompactRatio: -1})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, m, 100)
	before := s.Host("mx1").RPCs()
	b.ResetTimer()
	for i := range b.N {
		txs := make([]*Tx, 8)
		for j := range txs {
			txs[j] = m.Begin()
			txs[j].SetFlags(uint32(1+(i*8+j)%100), Flagged, 0)
		}
		if _, errs := m.CommitGroup(context.Background(), txs...); errors.Join(errs...) != nil {
			b.Fatal(errors.Join(errs...))
		}
	}
	reportRPCs(b, s.Host("mx1"), before)
	b.ReportMetric(float64(s.Host("mx1").RPCs().Sub(before).Total())/float64(b.N)/8, "RPCs/commit")
}

// BenchmarkLocalOpen100k: opening a compacted 100,000-message mailbox on
// the OS layer over a temporary directory (the kernel's page cache warm):
// ns/op is the open time, B/message the Go heap the open Mailbox keeps
// per message (after a GC, the mailbox still referenced), messages with
// two keywords and one cached field each.
func BenchmarkLocalOpen100k(b *testing.B) {
	const n = 100_000
	fsys, err := osfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	m := benchOpen(b, fsys, "local")
	for done := 0; done < n; done += 40 {
		tx := m.Begin()
		for i := range 40 {
			tx.Append(NewMessage{Flags: Seen, Keywords: []string{"$Forwarded", "work"},
				Fields: map[string][]byte{"file": fmt.Appendf(nil, "%d.M%dP1.host", done+i, i)}})
		}
		if _, err := tx.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	if ok, err := m.Compact(context.Background()); err != nil || !ok {
		b.Fatalf("compact: %v %v", ok, err)
	}
	m.Close()
	var retained uint64
	b.ResetTimer()
	for range b.N {
		var before, after runtime.MemStats
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		r := benchOpen(b, fsys, "reader")
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if v := r.View(); v.Len() != n {
			b.Fatalf("opened %d messages", v.Len())
		}
		retained += after.HeapAlloc - before.HeapAlloc
		r.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(retained)/float64(b.N)/n, "B/message")
}
