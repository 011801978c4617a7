// Package atomicrectest is an in-memory vfs.FS with crash semantics, for the
// unit and property tests of atomicrec and appendlog. It is deliberately tiny
// and local-disk shaped (one host, no caches): the NFS behaviours belong to
// nfssim. What it does model is the part those packages must survive on any
// medium (nfs-semantics.md N7, N8, N10):
//
//   - a write is visible to every reader at once but durable only after
//     Sync or Datasync of that file;
//   - Crash keeps the durable image plus an arbitrary subset of the pending
//     writes, split into tear units and applied in an arbitrary order, so a
//     later write can land before an earlier one and any write can tear;
//   - namespace operations (create, rename, link, remove) are durable at once,
//     as on NFS.
//
// All randomness comes from the *rand.Rand the caller passes in.
package atomicrectest

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// ErrInjected is the error returned by an injected sync or write failure.
var ErrInjected = errors.New("atomicrectest: injected failure")

type write struct {
	off  int64
	data []byte
}

type node struct {
	ino     uint64
	data    []byte  // what reads see now
	durable []byte  // what survives a crash
	pending []write // writes since the last sync, in issue order
}

// FS is an in-memory file system. The zero value is not usable; call New.
type FS struct {
	mu      sync.Mutex
	files   map[string]*node
	nextIno uint64

	// Syncs counts Sync and Datasync calls that succeeded.
	Syncs int
	// Writes counts WriteAt and Write calls.
	Writes int
	// FailSyncs makes the next FailSyncs Sync/Datasync calls fail with
	// ErrInjected without making anything durable.
	FailSyncs int
	// FailSyncAt, when positive, counts down at every Sync/Datasync; the
	// call that brings it to zero fails with ErrInjected (so 2 lets one
	// sync succeed and fails the second).
	FailSyncAt int
	// SkipSync, when true, makes Sync and Datasync return nil without making
	// anything durable: a disk that lies. Tests use it to prove that a
	// missing barrier is caught.
	SkipSync bool
}

// New returns an empty file system.
func New() *FS { return &FS{files: make(map[string]*node)} }

func clean(name string) string { return path.Clean("/" + name) }

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// OpenFile implements vfs.FS.
func (m *FS) OpenFile(name string, flag vfs.Flag, perm fs.FileMode) (vfs.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.files[clean(name)]
	switch {
	case ok && flag.Has(vfs.Create|vfs.Excl):
		return nil, pathErr("open", name, fs.ErrExist)
	case !ok && !flag.Has(vfs.Create):
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok:
		m.nextIno++
		n = &node{ino: m.nextIno}
		m.files[clean(name)] = n
	}
	if ok && flag.Has(vfs.Truncate) {
		n.data, n.durable, n.pending = nil, nil, nil
	}
	return &File{fs: m, n: n, name: name, flag: flag}, nil
}

// Stat implements vfs.FS.
func (m *FS) Stat(name string) (vfs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.files[clean(name)]
	if !ok {
		return vfs.FileInfo{}, pathErr("stat", name, fs.ErrNotExist)
	}
	return m.info(name, n), nil
}

func (m *FS) info(name string, n *node) vfs.FileInfo {
	nlink := uint64(0)
	for _, o := range m.files {
		if o == n {
			nlink++
		}
	}
	return vfs.FileInfo{Name: path.Base(name), Size: int64(len(n.data)), Mode: 0o644,
		ModTime: time.Unix(0, 0), ChangeTime: time.Unix(0, 0), Ino: n.ino, Nlink: nlink}
}

// Lstat implements vfs.FS.
func (m *FS) Lstat(name string) (vfs.FileInfo, error) { return m.Stat(name) }

// StatFresh implements vfs.FS: there is no cache to bypass, so it is Stat.
func (m *FS) StatFresh(name string) (vfs.FileInfo, error) { return m.Stat(name) }

// Link implements vfs.FS.
func (m *FS) Link(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.files[clean(oldname)]
	if !ok {
		return &vfs.LinkError{Op: "link", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if _, ok := m.files[clean(newname)]; ok {
		return &vfs.LinkError{Op: "link", Old: oldname, New: newname, Err: fs.ErrExist}
	}
	m.files[clean(newname)] = n
	return nil
}

// Symlink is not supported.
func (m *FS) Symlink(target, name string) error {
	return &vfs.LinkError{Op: "symlink", Old: target, New: name, Err: syscall.ENOTSUP}
}

// Readlink is not supported.
func (m *FS) Readlink(name string) (string, error) {
	return "", pathErr("readlink", name, syscall.EINVAL)
}

// Rename implements vfs.FS.
func (m *FS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.files[clean(oldname)]
	if !ok {
		return &vfs.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	delete(m.files, clean(oldname))
	m.files[clean(newname)] = n
	return nil
}

// Remove implements vfs.FS.
func (m *FS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[clean(name)]; !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	delete(m.files, clean(name))
	return nil
}

// Mkdir is a no-op: directories are implicit.
func (m *FS) Mkdir(name string, perm fs.FileMode) error { return nil }

// ReadDir lists the files directly under dir.
func (m *FS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	d := clean(dir)
	for p := range m.files {
		if path.Dir(p) == d {
			names = append(names, path.Base(p))
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir is a no-op: namespace operations are durable at once.
func (m *FS) SyncDir(name string) error { return nil }

// Bytes returns a copy of what reads of name see now.
func (m *FS) Bytes(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.files[clean(name)]
	if n == nil {
		return nil
	}
	return append([]byte(nil), n.data...)
}

// SetBytes replaces the content of name (durably), creating it if needed.
// Tests use it to plant damaged images.
func (m *FS) SetBytes(name string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.files[clean(name)]
	if n == nil {
		m.nextIno++
		n = &node{ino: m.nextIno}
		m.files[clean(name)] = n
	}
	n.data = append([]byte(nil), b...)
	n.durable = append([]byte(nil), b...)
	n.pending = nil
}

// Pending reports how many writes to name are not yet durable.
func (m *FS) Pending(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.files[clean(name)]; n != nil {
		return len(n.pending)
	}
	return 0
}

// Crash returns the file system as a crash at this instant leaves it: every
// file keeps its durable image plus a random subset of its pending writes,
// cut into pieces at multiples of tearBytes (1 = any byte may tear) and
// applied in a random order. Open files of m are not valid on the result.
func (m *FS) Crash(rng *rand.Rand, tearBytes int) *FS {
	m.mu.Lock()
	defer m.mu.Unlock()
	if tearBytes <= 0 {
		tearBytes = 1
	}
	out := New()
	out.nextIno = m.nextIno
	done := make(map[*node]*node)
	names := make([]string, 0, len(m.files))
	for p := range m.files {
		names = append(names, p)
	}
	sort.Strings(names) // determinism: map order must not reach rng
	for _, p := range names {
		n := m.files[p]
		if c, ok := done[n]; ok {
			out.files[p] = c
			continue
		}
		img := append([]byte(nil), n.durable...)
		var pieces []write
		for _, w := range n.pending {
			for start := int64(0); start < int64(len(w.data)); {
				end := (w.off+start)/int64(tearBytes)*int64(tearBytes) + int64(tearBytes) - w.off
				end = min(end, int64(len(w.data)))
				pieces = append(pieces, write{off: w.off + start, data: w.data[start:end]})
				start = end
			}
		}
		rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
		for _, pc := range pieces {
			if rng.IntN(2) == 0 {
				img = applyWrite(img, pc.off, pc.data)
			}
		}
		c := &node{ino: n.ino, data: img, durable: append([]byte(nil), img...)}
		done[n] = c
		out.files[p] = c
	}
	return out
}

// CrashKeep is Crash with the pending writes chosen by keep (called once per
// piece, in issue order) and applied in issue order: a deterministic crash
// for exhaustive enumeration. It returns the number of pieces, so a caller
// can enumerate every subset of a small pending set.
func (m *FS) CrashKeep(tearBytes int, keep func(i int) bool) (*FS, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := New()
	out.nextIno = m.nextIno
	names := make([]string, 0, len(m.files))
	for p := range m.files {
		names = append(names, p)
	}
	sort.Strings(names)
	i := 0
	done := make(map[*node]*node)
	for _, p := range names {
		n := m.files[p]
		if c, ok := done[n]; ok {
			out.files[p] = c
			continue
		}
		img := append([]byte(nil), n.durable...)
		for _, w := range n.pending {
			for start := int64(0); start < int64(len(w.data)); {
				end := (w.off+start)/int64(tearBytes)*int64(tearBytes) + int64(tearBytes) - w.off
				end = min(end, int64(len(w.data)))
				if keep(i) {
					img = applyWrite(img, w.off+start, w.data[start:end])
				}
				i++
				start = end
			}
		}
		c := &node{ino: n.ino, data: img, durable: append([]byte(nil), img...)}
		done[n] = c
		out.files[p] = c
	}
	return out, i
}

func applyWrite(img []byte, off int64, data []byte) []byte {
	if end := off + int64(len(data)); end > int64(len(img)) {
		img = append(img, make([]byte, end-int64(len(img)))...)
	}
	copy(img[off:], data)
	return img
}

// File is an open file of FS.
type File struct {
	fs     *FS
	n      *node
	name   string
	flag   vfs.Flag
	closed bool
	pos    int64
}

var _ vfs.File = (*File)(nil)
var _ vfs.FS = (*FS)(nil)

// ReadAt implements vfs.File.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, pathErr("read", f.name, fs.ErrClosed)
	}
	if off < 0 {
		return 0, pathErr("read", f.name, syscall.EINVAL)
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements vfs.File.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, pathErr("write", f.name, fs.ErrClosed)
	}
	if f.flag.AccessMode() == vfs.ReadOnly {
		return 0, pathErr("write", f.name, syscall.EBADF)
	}
	if off < 0 {
		return 0, pathErr("write", f.name, syscall.EINVAL)
	}
	f.fs.Writes++
	f.n.data = applyWrite(f.n.data, off, p)
	f.n.pending = append(f.n.pending, write{off: off, data: append([]byte(nil), p...)})
	return len(p), nil
}

// Write implements vfs.File.
func (f *File) Write(p []byte) (int, error) {
	off := f.pos
	if f.flag.Has(vfs.Append) {
		f.fs.mu.Lock()
		off = int64(len(f.n.data))
		f.fs.mu.Unlock()
	}
	n, err := f.WriteAt(p, off)
	f.pos = off + int64(n)
	return n, err
}

// Sync implements vfs.File.
func (f *File) Sync() error { return f.Datasync() }

// Datasync implements vfs.File.
func (f *File) Datasync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("sync", f.name, fs.ErrClosed)
	}
	if f.fs.FailSyncs > 0 {
		f.fs.FailSyncs--
		return pathErr("sync", f.name, ErrInjected)
	}
	if f.fs.FailSyncAt > 0 {
		f.fs.FailSyncAt--
		if f.fs.FailSyncAt == 0 {
			return pathErr("sync", f.name, ErrInjected)
		}
	}
	if f.fs.SkipSync {
		return nil
	}
	f.fs.Syncs++
	f.n.durable = append(f.n.durable[:0], f.n.data...)
	f.n.pending = nil
	return nil
}

// Stat implements vfs.File.
func (f *File) Stat() (vfs.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.fs.info(f.name, f.n), nil
}

// Truncate implements vfs.File. The new size is durable at once (a
// simplification: the packages under test never rely on it either way).
func (f *File) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if size < int64(len(f.n.data)) {
		f.n.data = f.n.data[:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	if size < int64(len(f.n.durable)) {
		f.n.durable = f.n.durable[:size]
	} else {
		f.n.durable = append(f.n.durable, make([]byte, size-int64(len(f.n.durable)))...)
	}
	return nil
}

// Close implements vfs.File.
func (f *File) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, fs.ErrClosed)
	}
	f.closed = true
	return nil
}

// Name implements vfs.File.
func (f *File) Name() string { return f.name }
