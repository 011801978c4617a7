package appendlog

import (
	"context"
	"fmt"
	"testing"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

const benchRecordBytes = 128

func benchFS(b *testing.B) *osfs.FS {
	b.Helper()
	fsys, err := osfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fsys.Close() })
	return fsys
}

// BenchmarkCommit is a durable group commit of n appends of 128 bytes on
// the OS layer: n frames and a header copy written, one Datasync. Compare
// with BenchmarkRawFloor/group=n, which writes the same frame bytes with
// one bare WriteAt and one Datasync.
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("group=%d", n), func(b *testing.B) {
			fsys := benchFS(b)
			ctx := context.Background()
			w, err := Create(ctx, fsys, ".", "bench", Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			p := make([]byte, benchRecordBytes)
			b.SetBytes(int64(n) * FrameSize(benchRecordBytes))
			b.ResetTimer()
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
			b.ReportMetric(1, "fsyncs/op")
			b.ReportMetric(float64(n), "records/op")
		})
	}
}

// BenchmarkRawFloor is the floor for BenchmarkCommit: the same bytes (n
// frames of 128-byte records) appended with one bare WriteAt and made
// durable with one Datasync, with no header.
func BenchmarkRawFloor(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("group=%d", n), func(b *testing.B) {
			fsys := benchFS(b)
			f, err := fsys.OpenFile("raw", vfs.ReadWrite|vfs.Create, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, int64(n)*FrameSize(benchRecordBytes))
			off := int64(DataStart)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf[0] = byte(i)
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				if err := f.Datasync(); err != nil {
					b.Fatal(err)
				}
				off += int64(len(buf))
			}
			b.ReportMetric(1, "fsyncs/op")
		})
	}
}

// BenchmarkCommitLinked is a commit of one continuation of a record of an
// earlier commit: the two-sync case (frames+header, then the next word).
func BenchmarkCommitLinked(b *testing.B) {
	fsys := benchFS(b)
	ctx := context.Background()
	w, err := Create(ctx, fsys, ".", "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	p := make([]byte, benchRecordBytes)
	tail, err := w.Append(1, p)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if tail, err = w.AppendAfter(ctx, tail, 2, p); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2, "fsyncs/op")
}

// BenchmarkRead reads one committed 128-byte record by Ref.
func BenchmarkRead(b *testing.B) {
	fsys := benchFS(b)
	ctx := context.Background()
	w, err := Create(ctx, fsys, ".", "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	var refs []Ref
	for i := 0; i < 64; i++ {
		ref, err := w.Append(1, make([]byte, benchRecordBytes))
		if err != nil {
			b.Fatal(err)
		}
		refs = append(refs, ref)
	}
	if err := w.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	r, err := OpenReader(ctx, fsys, ".", "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Read(ctx, refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefresh rereads the header of a log whose last commit was 8
// records (verifying that group).
func BenchmarkRefresh(b *testing.B) {
	fsys := benchFS(b)
	ctx := context.Background()
	w, err := Create(ctx, fsys, ".", "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 8; i++ {
		if _, err := w.Append(1, make([]byte, benchRecordBytes)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	r, err := OpenReader(ctx, fsys, ".", "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
