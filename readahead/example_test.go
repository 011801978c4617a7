package readahead_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"sync/atomic"

	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/vfs"
)

// memFile is the smallest vfs.File for the example: bytes in memory, with
// the ReadAt calls counted (each would be one READ RPC on NFS). The count is
// atomic because with Options.ReadConcurrency above one the cache calls
// ReadAt from several goroutines at once, as pread allows.
type memFile struct {
	data  []byte
	reads atomic.Int64
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads.Add(1)
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (f *memFile) Stat() (vfs.FileInfo, error) {
	return vfs.FileInfo{Name: "index", Size: int64(len(f.data)), Ino: 12, Nlink: 1}, nil
}
func (f *memFile) WriteAt(p []byte, off int64) (int, error) { return 0, fmt.Errorf("read-only") }
func (f *memFile) Write(p []byte) (int, error)              { return 0, fmt.Errorf("read-only") }
func (f *memFile) Sync() error                              { return nil }
func (f *memFile) Datasync() error                          { return nil }
func (f *memFile) Truncate(int64) error                     { return fmt.Errorf("read-only") }
func (f *memFile) Close() error                             { return nil }
func (f *memFile) Name() string                             { return "index" }

// A snapshot file: a 64-byte header holding its generation, then 10,000
// records of 64 bytes that never change until the file is replaced by rename.
// Opening it reads the records in block-sized reads; a later Sync that finds
// nothing changed costs one Stat and no read.
func Example() {
	const headerSize, recordSize, records = 64, 64, 10_000
	f := &memFile{data: make([]byte, headerSize+records*recordSize)}
	binary.LittleEndian.PutUint64(f.data, 7) // the snapshot's generation
	for i := range records {
		binary.LittleEndian.PutUint32(f.data[headerSize+i*recordSize:], uint32(1000+i)) // a UID
	}

	c, err := readahead.New(readahead.Options{}) // 64 KiB blocks, 32 MiB
	if err != nil {
		log.Fatal(err)
	}
	// The identity: the inode number, and the generation from the header
	// (read directly: it decides the key, so it cannot come from the cache).
	fi, err := f.Stat()
	if err != nil {
		log.Fatal(err)
	}
	var hdr [headerSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		log.Fatal(err)
	}
	r := c.Open(f, readahead.FileID{Ino: fi.Ino, Generation: binary.LittleEndian.Uint64(hdr[:])})
	defer r.Close()
	if _, err := r.Revalidate(); err != nil { // baseline: size, mtime, ctime
		log.Fatal(err)
	}
	if err := r.MarkImmutable(headerSize, fi.Size); err != nil { // the records
		log.Fatal(err)
	}

	readAll := func() (last uint32) {
		rec := make([]byte, recordSize)
		for off := int64(headerSize); off < fi.Size; off += recordSize {
			if _, err := r.ReadAt(rec, off); err != nil {
				log.Fatal(err)
			}
			last = binary.LittleEndian.Uint32(rec)
		}
		return last
	}
	f.reads.Store(0)
	last := readAll()
	fmt.Printf("open: last UID %d, %d reads for %d bytes\n", last, f.reads.Load(), fi.Size)

	f.reads.Store(0)
	changed, err := r.Revalidate()
	if err != nil {
		log.Fatal(err)
	}
	readAll()
	fmt.Printf("sync: changed %v, %d reads\n", changed, f.reads.Load())

	s := c.Stats()
	fmt.Printf("stats: %d read calls, %d stat calls, %d RPCs saved\n", s.ReadCalls, s.StatCalls, s.RPCsSaved)
	// Output:
	// open: last UID 10999, 10 reads for 640064 bytes
	// sync: changed false, 0 reads
	// stats: 10 read calls, 2 stat calls, 19990 RPCs saved
}
