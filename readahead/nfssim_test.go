package readahead_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/vfs"
)

// simScan writes a file of blocks blocks on host w, then scans it on host r
// record by record through a cache with read-ahead, inside a Sim.Go task
// beside a task of w that keeps appending, and returns a transcript: what
// the scan saw, the cache's counters and every host's RPC counts.
func simScan(t *testing.T, seed uint64, opts readahead.Options, blocks int) string {
	t.Helper()
	s := nfssim.New(nfssim.DefaultConfig(seed))
	defer s.Close()
	w := s.Host("w")
	m := nfssim.DefaultMount()
	m.RSize = int(opts.BlockSize) // one block read is one READ RPC
	r, err := s.AddHost("r", m)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(blocks) * opts.BlockSize
	data := pattern(int(size), 3)
	wf, err := w.FS().OpenFile("f", vfs.ReadWrite|vfs.Create, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wf.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := wf.Sync(); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, opts)
	var out string
	s.Go(w, "append", func() {
		for i := range 8 {
			wf.WriteAt(pattern(int(opts.BlockSize), byte(i)), size+int64(i)*opts.BlockSize)
			wf.Sync()
		}
	})
	s.Go(r, "scan", func() {
		f, err := r.FS().OpenFile("f", vfs.ReadOnly, 0)
		if err != nil {
			out = err.Error()
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			out = err.Error()
			return
		}
		rd := c.Open(f, readahead.FileID{Ino: fi.Ino, Generation: 1})
		defer rd.Close()
		if err := rd.MarkImmutable(0, size); err != nil {
			out = err.Error()
			return
		}
		rec := make([]byte, 100)
		for off := int64(0); off < size; off += int64(len(rec)) {
			n, err := rd.ReadAt(rec, off)
			if err != nil && err != io.EOF {
				out += fmt.Sprintf("read %d: %v\n", off, err)
				return
			}
			for i := range min(int64(n), size-off) {
				if rec[i] != data[off+int64(i)] {
					out += fmt.Sprintf("read %d: byte %d differs\n", off, i)
					return
				}
			}
		}
	})
	if err := s.Run(100_000); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	return fmt.Sprintf("%s|stats %+v|w %v|r %v|now %v", out, st, w.RPCs(), r.RPCs(), s.Now())
}

// TestReadAheadInsideSimTask runs read-ahead inside an nfssim task, where the
// simulator decides who runs at every call: with the default (sequential)
// reads, the scan sees the file's bytes, and a second run of the same seed
// does exactly the same I/O. With ReadConcurrency above one the reads run on
// goroutines the simulator did not start, which Sim.Go forbids: two runs of
// one seed then differ (seed 0 already), or the scheduler hangs.
func TestReadAheadInsideSimTask(t *testing.T) {
	opts := readahead.Options{BlockSize: 4096, MemoryBytes: 64 * 4096, MaxReadAheadBlocks: 8}
	for seed := range uint64(4) {
		a := simScan(t, seed, opts, 40)
		if b := simScan(t, seed, opts, 40); a != b {
			t.Fatalf("seed %d: two runs differ:\n%s\n%s", seed, a, b)
		}
		t.Logf("seed %d: %s", seed, a)
	}
}
