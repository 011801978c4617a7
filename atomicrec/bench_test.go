package atomicrec

import (
	"context"
	"testing"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// benchFile opens a fresh file on the OS layer in b.TempDir().
func benchFile(b *testing.B) vfs.File {
	b.Helper()
	fsys, err := osfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fsys.Close() })
	f, err := fsys.OpenFile("rec", vfs.ReadWrite|vfs.Create, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

var benchLayout = PageAligned(0, 256, 0)

// BenchmarkUpdate is a durable update: one WriteAt of a copy and one
// Datasync. Compare with BenchmarkRawFloor (same bytes, same calls).
func BenchmarkUpdate(b *testing.B) {
	f := benchFile(b)
	r, err := New(f, benchLayout, Options{})
	if err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 200)
	ctx := context.Background()
	if _, err := r.Update(ctx, p); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(benchLayout.CopySize()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p[0] = byte(i)
		if _, err := r.Update(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1, "fsyncs/op")
}

// BenchmarkRawFloor is the floor a durable update is measured against: a
// bare WriteAt of CopySize bytes alternating between the two copy places,
// and a Datasync.
func BenchmarkRawFloor(b *testing.B) {
	f := benchFile(b)
	buf := make([]byte, benchLayout.CopySize())
	for s := 0; s < 2; s++ {
		if _, err := f.WriteAt(buf, benchLayout.CopyOffset(s)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Datasync(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf[0] = byte(i)
		if _, err := f.WriteAt(buf, benchLayout.CopyOffset(i%2)); err != nil {
			b.Fatal(err)
		}
		if err := f.Datasync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1, "fsyncs/op")
}

// BenchmarkRead reads the record (one ReadAt of both copies, two checksums).
func BenchmarkRead(b *testing.B) {
	f := benchFile(b)
	r, err := New(f, benchLayout, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := r.Update(ctx, make([]byte, 200)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
