package readahead_test

import (
	"io"
	"io/fs"
	"slices"
	"sync"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// fakeFile is a vfs.File over a []byte that counts ReadAt and Stat calls,
// so that the counts a test asserts are exact, as RPC counts are. Every
// change bumps mtime and ctime by one tick (a server with a perfect clock);
// tests that need a change the attributes do not show use setAttrs.
type fakeFile struct {
	mu    sync.Mutex
	name  string
	ino   uint64
	data  []byte
	mtime time.Time
	ctime time.Time

	readCalls int
	statCalls int
	logReads  bool    // record offsets in readAt (off in benchmarks)
	readAt    []int64 // offsets of the ReadAt calls, in order of arrival

	readErr error // returned by every ReadAt when set
	statErr error // returned by every Stat when set
	// readHook, when set, is called (unlocked) before a read: an error is
	// returned as the read's error, non-nil bytes replace the file's.
	readHook func(off int64) ([]byte, error)
}

var epoch0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeFile(name string, ino uint64, data []byte) *fakeFile {
	return &fakeFile{name: name, ino: ino, data: slices.Clone(data), mtime: epoch0, ctime: epoch0}
}

func staleErr(op, name string) error { return &fs.PathError{Op: op, Path: name, Err: vfs.ErrStale} }

func (f *fakeFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	f.readCalls++
	if f.logReads {
		f.readAt = append(f.readAt, off)
	}
	hook, rerr := f.readHook, f.readErr
	f.mu.Unlock()
	if rerr != nil {
		return 0, rerr
	}
	if hook != nil {
		b, err := hook(off)
		if err != nil {
			return 0, err
		}
		if b != nil {
			n := copy(p, b)
			if n < len(p) {
				return n, io.EOF
			}
			return n, nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *fakeFile) Stat() (vfs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statCalls++
	if f.statErr != nil {
		return vfs.FileInfo{}, f.statErr
	}
	return vfs.FileInfo{Name: f.name, Size: int64(len(f.data)), Mode: 0o644, ModTime: f.mtime,
		ChangeTime: f.ctime, Ino: f.ino, Nlink: 1}, nil
}

// WriteAt writes like pwrite and bumps mtime and ctime.
func (f *fakeFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(f.data)) {
		f.data = append(f.data, make([]byte, end-int64(len(f.data)))...)
	}
	copy(f.data[off:], p)
	f.tick()
	return len(p), nil
}

func (f *fakeFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if size <= int64(len(f.data)) {
		f.data = f.data[:size]
	} else {
		f.data = append(f.data, make([]byte, size-int64(len(f.data)))...)
	}
	f.tick()
	return nil
}

func (f *fakeFile) tick() {
	f.mtime = f.mtime.Add(time.Millisecond)
	f.ctime = f.mtime
}

// setSilently replaces the bytes without touching the attributes: the N3
// case, a change the attributes cannot show.
func (f *fakeFile) setSilently(data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = slices.Clone(data)
}

// setAttrs lets a test change one attribute alone.
func (f *fakeFile) setAttrs(change func(f *fakeFile)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeFile) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.data)
}

func (f *fakeFile) counts() (reads, stats int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readCalls, f.statCalls
}

// takeReads returns the offsets read since the last call, sorted (with
// ReadConcurrency above one, read-ahead issues them in parallel and arrival
// order is not deterministic; takeReadsInOrder keeps it).
func (f *fakeFile) takeReads() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.readAt
	f.readAt = nil
	slices.Sort(r)
	return r
}

// takeReadsInOrder returns the offsets read since the last call in the order
// the reads arrived.
func (f *fakeFile) takeReadsInOrder() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.readAt
	f.readAt = nil
	return r
}

func (f *fakeFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	n := int64(len(f.data))
	f.mu.Unlock()
	return f.WriteAt(p, n)
}
func (f *fakeFile) Sync() error     { return nil }
func (f *fakeFile) Datasync() error { return nil }
func (f *fakeFile) Close() error    { return nil }
func (f *fakeFile) Name() string    { return f.name }

var _ vfs.File = (*fakeFile)(nil)
