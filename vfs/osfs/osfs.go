//go:build linux || darwin || netbsd || openbsd

package osfs

import (
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsindex/nfsindex/vfs"
)

// maxEINTR bounds the retries of one system call interrupted by a signal.
// The Go runtime installs its handlers with SA_RESTART, so EINTR is rare
// (NFS "intr" mounts, FUSE); a call interrupted this often in a row is
// reported rather than retried forever.
const maxEINTR = 100

// maxSymlinkBytes bounds the buffer Readlink grows to; no file system stores
// a longer target than PATH_MAX (4096 on Linux).
const maxSymlinkBytes = 1 << 16

// flagMask is every vfs.Flag bit OpenFile passes to the kernel. Other bits
// are rejected with fs.ErrInvalid, so code that works here cannot depend on
// a flag the simulator does not know.
const flagMask = vfs.ReadOnly | vfs.WriteOnly | vfs.ReadWrite | vfs.Create |
	vfs.Excl | vfs.Truncate | vfs.Append | vfs.DSync

// FS is a vfs.FS whose names are relative to a root directory of the
// operating system. It is safe for concurrent use.
type FS struct {
	root string

	// mu guards dirfd against Close: every operation holds it for reading
	// so that Close cannot release the descriptor (and the kernel hand its
	// number to another open) while a call is using it.
	mu     sync.RWMutex
	dirfd  int
	closed bool

	removeOnClose bool // made by NewTemp
}

var _ vfs.FS = (*FS)(nil)

// New returns the FS rooted at the directory root, a name of the operating
// system (absolute, or relative to the working directory). The FS keeps a
// descriptor of root open until Close.
func New(root string) (*FS, error) {
	fd, err := retry(func() (int, error) {
		return unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	return &FS{root: root, dirfd: fd}, nil
}

// NewTemp creates a new directory in the operating system's temporary
// directory, named from pattern as os.MkdirTemp does, and returns the FS
// rooted there. Its Close removes the directory and everything in it.
// It is for Examples, which have no t.TempDir and, outside this package,
// may not import os (internal/lint); tests use New(t.TempDir()).
func NewTemp(pattern string) (*FS, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, err
	}
	fsys, err := New(dir)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	fsys.removeOnClose = true
	return fsys, nil
}

// Root returns the directory name New was given.
func (fsys *FS) Root() string { return fsys.root }

// Close releases the root's descriptor (and, for an FS from NewTemp,
// removes the root). Files opened before stay usable; every later FS
// method returns an error wrapping fs.ErrClosed.
func (fsys *FS) Close() error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.closed {
		return &fs.PathError{Op: "close", Path: fsys.root, Err: fs.ErrClosed}
	}
	fsys.closed = true
	if err := unix.Close(fsys.dirfd); err != nil {
		return &fs.PathError{Op: "close", Path: fsys.root, Err: err}
	}
	if fsys.removeOnClose {
		return os.RemoveAll(fsys.root)
	}
	return nil
}

// at runs fn with the root's descriptor after checking name, and wraps its
// error in a PathError for op and name.
func (fsys *FS) at(op, name string, fn func(dirfd int) error) error {
	if !fs.ValidPath(name) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	fsys.mu.RLock()
	defer fsys.mu.RUnlock()
	if fsys.closed {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrClosed}
	}
	if err := fn(fsys.dirfd); err != nil {
		return &fs.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}

// at2 is at for the operations on two names; its errors are LinkErrors.
// Only the names in check are validated (Symlink's target is data).
func (fsys *FS) at2(op, oldname, newname string, check []string, fn func(dirfd int) error) error {
	for _, name := range check {
		if !fs.ValidPath(name) {
			return &vfs.LinkError{Op: op, Old: oldname, New: newname, Err: fs.ErrInvalid}
		}
	}
	fsys.mu.RLock()
	defer fsys.mu.RUnlock()
	if fsys.closed {
		return &vfs.LinkError{Op: op, Old: oldname, New: newname, Err: fs.ErrClosed}
	}
	if err := fn(fsys.dirfd); err != nil {
		return &vfs.LinkError{Op: op, Old: oldname, New: newname, Err: err}
	}
	return nil
}

// OpenFile opens name relative to the root with openat(2). flag is passed
// through (with O_CLOEXEC added); a bit that is not one of vfs's flags is
// rejected with fs.ErrInvalid. perm, with the process's umask applied by
// the kernel, is used only when the file is created.
func (fsys *FS) OpenFile(name string, flag vfs.Flag, perm fs.FileMode) (vfs.File, error) {
	if flag&^flagMask != 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	var fd int
	err := fsys.at("open", name, func(dirfd int) (err error) {
		fd, err = retry(func() (int, error) {
			return unix.Openat(dirfd, name, int(flag)|unix.O_CLOEXEC, syscallMode(perm))
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &File{name: name, fd: fd, append: flag.Has(vfs.Append)}, nil
}

// Stat returns the attributes of name (fstatat(2)), following a final
// symbolic link.
func (fsys *FS) Stat(name string) (vfs.FileInfo, error) {
	return fsys.stat("stat", name, 0)
}

// Lstat returns the attributes of name without following a final symbolic
// link (fstatat(2) with AT_SYMLINK_NOFOLLOW).
func (fsys *FS) Lstat(name string) (vfs.FileInfo, error) {
	return fsys.stat("lstat", name, unix.AT_SYMLINK_NOFOLLOW)
}

func (fsys *FS) stat(op, name string, atFlags int) (vfs.FileInfo, error) {
	var st unix.Stat_t
	err := fsys.at(op, name, func(dirfd int) error {
		return retry0(func() error { return unix.Fstatat(dirfd, name, &st, atFlags) })
	})
	if err != nil {
		return vfs.FileInfo{}, err
	}
	return fileInfo(path.Base(name), &st), nil
}

// statByOpen is StatFresh without statx: open (O_RDONLY, following a
// final symbolic link; O_NONBLOCK so that a FIFO does not wait for a
// writer), fstat, close. On NFS the open is the close-to-open
// revalidation (N2).
func (fsys *FS) statByOpen(name string) (vfs.FileInfo, error) {
	var st unix.Stat_t
	err := fsys.at("stat", name, func(dirfd int) error {
		fd, err := retry(func() (int, error) {
			return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return err
		}
		err = retry0(func() error { return unix.Fstat(fd, &st) })
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return vfs.FileInfo{}, err
	}
	return fileInfo(path.Base(name), &st), nil
}

// Link creates newname as a hard link to oldname (linkat(2) without
// AT_SYMLINK_FOLLOW: a symbolic link oldname is linked, not its target).
func (fsys *FS) Link(oldname, newname string) error {
	return fsys.at2("link", oldname, newname, []string{oldname, newname}, func(dirfd int) error {
		return retry0(func() error { return unix.Linkat(dirfd, oldname, dirfd, newname, 0) })
	})
}

// Symlink creates name as a symbolic link holding target (symlinkat(2)).
// target is stored as given and is not checked: it is resolved by the
// kernel, relative to the link's directory, whenever the link is followed.
func (fsys *FS) Symlink(target, name string) error {
	return fsys.at2("symlink", target, name, []string{name}, func(dirfd int) error {
		return retry0(func() error { return unix.Symlinkat(target, dirfd, name) })
	})
}

// Readlink returns the target of the symbolic link name (readlinkat(2)).
func (fsys *FS) Readlink(name string) (string, error) {
	var target string
	err := fsys.at("readlink", name, func(dirfd int) error {
		for size := 256; size <= maxSymlinkBytes; size *= 2 {
			buf := make([]byte, size)
			n, err := retry(func() (int, error) { return unix.Readlinkat(dirfd, name, buf) })
			if err != nil {
				return err
			}
			if n < size {
				target = string(buf[:n])
				return nil
			}
		}
		return unix.ENAMETOOLONG
	})
	return target, err
}

// Rename replaces newname by oldname (renameat(2)).
func (fsys *FS) Rename(oldname, newname string) error {
	return fsys.at2("rename", oldname, newname, []string{oldname, newname}, func(dirfd int) error {
		return retry0(func() error { return unix.Renameat(dirfd, oldname, dirfd, newname) })
	})
}

// Remove removes a file, symbolic link or empty directory, the way
// os.Remove does: unlinkat(2), then unlinkat with AT_REMOVEDIR, reporting
// the error that fits what name turned out to be.
func (fsys *FS) Remove(name string) error {
	return fsys.at("remove", name, func(dirfd int) error {
		err := retry0(func() error { return unix.Unlinkat(dirfd, name, 0) })
		if err == nil {
			return nil
		}
		err1 := retry0(func() error { return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) })
		if err1 == nil {
			return nil
		}
		// Both failed. Linux reports EISDIR for unlink of a directory and
		// macOS EPERM, but both report ENOTDIR for rmdir of a non-directory:
		// if rmdir says so, the unlink error is the real one.
		if err1 != unix.ENOTDIR {
			return err1
		}
		return err
	})
}

// Mkdir creates the directory name (mkdirat(2)); perm is subject to the
// umask.
func (fsys *FS) Mkdir(name string, perm fs.FileMode) error {
	return fsys.at("mkdir", name, func(dirfd int) error {
		return retry0(func() error { return unix.Mkdirat(dirfd, name, syscallMode(perm)) })
	})
}

// ReadDir returns the names in the directory name, sorted, without "." and
// "..".
func (fsys *FS) ReadDir(name string) ([]string, error) {
	var names []string
	err := fsys.at("readdir", name, func(dirfd int) error {
		fd, err := retry(func() (int, error) {
			return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return err
		}
		// os.File does the getdents/getdirentries decoding for every
		// Unix; it owns fd from here on and closes it.
		d := os.NewFile(uintptr(fd), name)
		names, err = d.Readdirnames(-1)
		if cerr := d.Close(); err == nil && cerr != nil {
			err = cerr
		}
		return unwrapPathError(err)
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// SyncDir makes the directory's entries durable: it opens the directory
// and fsyncs it.
func (fsys *FS) SyncDir(name string) error {
	return fsys.at("syncdir", name, func(dirfd int) error {
		fd, err := retry(func() (int, error) {
			return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return err
		}
		err = retry0(func() error { return unix.Fsync(fd) })
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		return err
	})
}

// File is an open file of an FS. It is safe for concurrent use; concurrent
// Writes on a file that was not opened with vfs.Append each claim their
// own range of the private offset.
type File struct {
	name   string
	append bool

	// mu guards fd against Close, as FS.mu guards the root's descriptor.
	mu     sync.RWMutex
	fd     int
	closed bool

	offMu sync.Mutex
	off   int64 // next offset of Write on a non-append file
}

var _ vfs.File = (*File)(nil)

// Name returns the name the file was opened with.
func (f *File) Name() string { return f.name }

// use runs fn with the file's descriptor unless the file is closed, and
// wraps fn's error in a PathError for op.
func (f *File) use(op string, fn func(fd int) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	if err := fn(f.fd); err != nil {
		if err == io.EOF {
			return err // bare, as io.ReaderAt callers compare it
		}
		return &fs.PathError{Op: op, Path: f.name, Err: err}
	}
	return nil
}

// ReadAt reads len(p) bytes at off with pread(2), looping until p is full;
// if the file ends first it returns the bytes read and io.EOF. A read that
// fills p exactly up to the end of the file returns nil.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	n := 0
	err := f.use("read", func(fd int) error {
		// At least one pread, even for an empty p, so that the kernel
		// checks the descriptor (EBADF on a WriteOnly file). Every pass
		// reads at least a byte or ends the loop.
		for {
			m, err := retry(func() (int, error) { return unix.Pread(fd, p[n:], off+int64(n)) })
			if err != nil {
				return err
			}
			n += m
			if n == len(p) {
				return nil
			}
			if m == 0 {
				return io.EOF
			}
		}
	})
	return n, err
}

// WriteAt writes p at off with pwrite(2), looping on short writes. Like
// pwrite on Linux, it writes at the end instead if the file was opened with
// vfs.Append.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrInvalid}
	}
	n := 0
	err := f.use("write", func(fd int) error {
		var err error
		n, err = writeAll(p, func(q []byte) (int, error) { return unix.Pwrite(fd, q, off+int64(len(p)-len(q))) })
		return err
	})
	return n, err
}

// Write appends p with write(2) if the file was opened with vfs.Append;
// otherwise it writes p with pwrite(2) at the file's private offset, which
// starts at 0, and advances it by the bytes written.
func (f *File) Write(p []byte) (int, error) {
	n := 0
	err := f.use("write", func(fd int) error {
		var err error
		if f.append {
			n, err = writeAll(p, func(q []byte) (int, error) { return unix.Write(fd, q) })
			return err
		}
		f.offMu.Lock()
		defer f.offMu.Unlock()
		off := f.off
		n, err = writeAll(p, func(q []byte) (int, error) { return unix.Pwrite(fd, q, off+int64(len(p)-len(q))) })
		f.off += int64(n)
		return err
	})
	return n, err
}

// writeAll calls write with the rest of p until all of p is written, the
// write fails, or it makes no progress. It calls write at least once, even
// for an empty p, so that the kernel checks the descriptor as write(2)
// does.
func writeAll(p []byte, write func(q []byte) (int, error)) (int, error) {
	n := 0
	for {
		rest := p[n:]
		m, err := retry(func() (int, error) { return write(rest) })
		if m > 0 {
			n += m
		}
		if err != nil {
			return n, err
		}
		if n == len(p) {
			return n, nil
		}
		if m <= 0 {
			return n, io.ErrShortWrite
		}
	}
}

// Sync makes the file's data and metadata durable (fsync(2)).
func (f *File) Sync() error {
	return f.use("sync", func(fd int) error {
		return retry0(func() error { return unix.Fsync(fd) })
	})
}

// Datasync makes the file's data durable: fdatasync(2) on Linux, fsync(2)
// elsewhere.
func (f *File) Datasync() error {
	return f.use("datasync", func(fd int) error {
		return retry0(func() error { return fdatasync(fd) })
	})
}

// Stat returns the file's attributes (fstat(2)).
func (f *File) Stat() (vfs.FileInfo, error) {
	var st unix.Stat_t
	err := f.use("stat", func(fd int) error {
		return retry0(func() error { return unix.Fstat(fd, &st) })
	})
	if err != nil {
		return vfs.FileInfo{}, err
	}
	return fileInfo(path.Base(f.name), &st), nil
}

// Truncate changes the file's size (ftruncate(2)).
func (f *File) Truncate(size int64) error {
	return f.use("truncate", func(fd int) error {
		return retry0(func() error { return unix.Ftruncate(fd, size) })
	})
}

// Close releases the descriptor. Its error, on NFS, can be a write error
// of data flushed at close (N11). A second Close returns an error wrapping
// fs.ErrClosed.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	// close(2) is not retried on EINTR: Linux releases the descriptor
	// anyway, and a retry could close a descriptor another open just got.
	if err := unix.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

// fileInfo converts what fstatat/fstat returned.
func fileInfo(name string, st *unix.Stat_t) vfs.FileInfo {
	return vfs.FileInfo{
		Name:       name,
		Size:       st.Size,
		Mode:       fileMode(uint32(st.Mode)),
		ModTime:    time.Unix(st.Mtim.Unix()),
		ChangeTime: time.Unix(st.Ctim.Unix()),
		Ino:        uint64(st.Ino),
		Nlink:      uint64(st.Nlink),
	}
}

// fileMode converts st_mode to an fs.FileMode, as os.Stat does.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFREG:
		// nothing to add
	default:
		mode |= fs.ModeIrregular
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// syscallMode converts perm to the mode bits of open(2) and mkdir(2).
func syscallMode(perm fs.FileMode) uint32 {
	m := uint32(perm.Perm())
	if perm&fs.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if perm&fs.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if perm&fs.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

// retry calls fn until it returns something other than EINTR, at most
// maxEINTR times.
func retry(fn func() (int, error)) (int, error) {
	for range maxEINTR - 1 {
		n, err := fn()
		if err != unix.EINTR {
			return n, err
		}
	}
	return fn()
}

// retry0 is retry for calls that return only an error.
func retry0(fn func() error) error {
	_, err := retry(func() (int, error) { return 0, fn() })
	return err
}

// unwrapPathError returns the errno inside an *fs.PathError made by package
// os, so that the FS wraps it in a PathError of its own.
func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
