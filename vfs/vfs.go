// Package vfs is the one file-system seam of nfsindex: every other package
// does all of its I/O through FS and File, so the same code runs on a local
// disk, on a real NFS mount (package vfs/osfs) and inside the deterministic
// NFS simulator (package nfssim), where every host gets its own FS.
//
// The interface is deliberately narrow: it offers only the calls whose
// meaning NFS preserves (docs/design.md, "The seam"). There is no mmap, no
// shared file offset and no locking. Reads and writes take explicit offsets
// (pread/pwrite: the seed's lseek/read/write model without the shared
// offset); a write is durable only after Sync or Datasync returns nil on the
// same file; the namespace operations that fail on an existing name
// (OpenFile with Excl, Link, Symlink, Mkdir) are the only cross-host
// test-and-set.
//
// Errors are *fs.PathError (one path) or *LinkError (two paths) wrapping the
// errno, so errors.Is(err, fs.ErrExist), errors.Is(err, fs.ErrNotExist) and
// errors.Is(err, ErrStale) behave the same on every implementation.
package vfs

import (
	"io/fs"
	"syscall"
	"time"
)

// Flag selects how OpenFile opens a file. The values are the host's open(2)
// flags, so an implementation on the operating system passes them through.
type Flag int

// Open flags. Exactly one of ReadOnly, WriteOnly and ReadWrite is given; the
// others are or-ed in.
const (
	ReadOnly  Flag = Flag(syscall.O_RDONLY)
	WriteOnly Flag = Flag(syscall.O_WRONLY)
	ReadWrite Flag = Flag(syscall.O_RDWR)
	// Create creates the file if it does not exist.
	Create Flag = Flag(syscall.O_CREAT)
	// Excl, with Create, fails with fs.ErrExist if the name exists. On NFS it
	// is decided atomically at the server, but a retransmitted request can
	// report EEXIST for a create that succeeded (docs/design.md, N13/N14).
	Excl Flag = Flag(syscall.O_EXCL)
	// Truncate empties an existing regular file opened for writing.
	Truncate Flag = Flag(syscall.O_TRUNC)
	// Append makes Write append at the end of file. On NFS the "end" is the
	// host's cached size: it is not atomic across hosts (N12).
	Append Flag = Flag(syscall.O_APPEND)
	// DSync makes every write durable before it returns (O_DSYNC). On NFS it
	// also switches off the page-extension of small writes (N9).
	DSync Flag = Flag(syscall.O_DSYNC)
)

// AccessMode returns the ReadOnly/WriteOnly/ReadWrite part of f.
func (f Flag) AccessMode() Flag { return f & Flag(syscall.O_ACCMODE) }

// Has reports whether every bit of g is set in f.
func (f Flag) Has(g Flag) bool { return f&g == g }

// FS is a file system. Names are slash-separated and relative to the file
// system's root, following fs.ValidPath ("." is the root); absolute names
// and ".." are rejected with an error matching fs.ErrInvalid or EINVAL.
// Implementations must be safe for concurrent use. One that holds
// resources (osfs holds a directory descriptor) implements io.Closer.
type FS interface {
	// OpenFile opens name. perm is used only when the file is created.
	OpenFile(name string, flag Flag, perm fs.FileMode) (File, error)

	// Stat returns the attributes of name, following a final symlink. On
	// NFS they may come from the attribute cache and be up to acregmax old
	// (N1): never use them as another host's truth without revalidating.
	Stat(name string) (FileInfo, error)
	// Lstat is Stat without following a final symlink.
	Lstat(name string) (FileInfo, error)
	// StatFresh is Stat (it follows a final symlink) with the attributes
	// fetched from the server, never from the attribute cache: on Linux,
	// statx(2) with AT_STATX_FORCE_SYNC. It is the cheapest way to learn
	// another host's change to a file without opening it (N1).
	//
	// What it guarantees, on NFS: the attributes (size, mtime, ctime,
	// nlink) are those the server holds when its GETATTR runs, so a
	// change another host made visible at the server (Sync, Close)
	// before the call started is seen; this host's dirty pages of the
	// file are written first. If the attributes show a change (N3: v3
	// cannot see one within the server's timestamp granularity that kept
	// the size) the host also drops its cached pages of the file, as an
	// open would (N2), so descriptors already open read the new data.
	//
	// What it does not: the name is resolved as Stat resolves it, through
	// this host's cached directory entries (N4, N5). A name another host
	// created is still missing (fs.ErrNotExist) while a negative entry is
	// cached, with no RPC at all; StatFresh of the directory (one GETATTR)
	// notices the directory changed and ends that. A name another host
	// replaced by rename answers for the file this host last resolved it
	// to while that file lives at the server (a host holds it open: the
	// renaming host silly-renames it, N17; a v4 server may preserve it,
	// N15), until the directory's attributes expire. Once the replaced or
	// removed file is gone its GETATTR fails with ESTALE and the walk is
	// redone once with fresh lookups, as the kernel redoes any path call:
	// a removed file is fs.ErrNotExist, a replaced one the new file;
	// ErrStale surfaces only if the name changes again in between (N16).
	//
	// Its cost on NFS, v3 and v4 alike (measured on Linux 6.1): one
	// GETATTR every call, plus what the path walk costs, as for Stat (a
	// LOOKUP, or a GETATTR of the directory, when the directory's
	// attributes have expired: on a v3 mount with actimeo=0, where they
	// always have, the real client sent three GETATTRs a call). A
	// removed file costs GETATTR + LOOKUP, a
	// replaced one GETATTR + LOOKUP + GETATTR (on v3 the real client also
	// sent one more LOOKUP and an ACCESS per replacement). On a local
	// disk it is Stat.
	StatFresh(name string) (FileInfo, error)

	// Link creates newname as a hard link to oldname. It fails with
	// fs.ErrExist if newname exists. After a lost reply it may report
	// fs.ErrExist although it succeeded (N14): check the link count.
	Link(oldname, newname string) error
	// Symlink creates name as a symbolic link holding target. Like Link it
	// fails with fs.ErrExist on an existing name, and its answer may lie
	// after a retransmission.
	Symlink(target, name string) error
	// Readlink returns the target stored in the symbolic link name.
	Readlink(name string) (string, error)
	// Rename atomically replaces newname by oldname (rename(2)). Other
	// hosts' handles on a replaced file may go stale (N15).
	Rename(oldname, newname string) error
	// Remove removes a file, symlink or empty directory.
	Remove(name string) error
	// Mkdir creates a directory; fs.ErrExist if the name exists.
	Mkdir(name string, perm fs.FileMode) error
	// ReadDir returns the names in a directory, sorted, without "." and
	// "..". On NFS a listing may be cached or miss concurrent changes (N6).
	ReadDir(name string) ([]string, error)
	// SyncDir makes the directory's entries durable (fsync of the
	// directory). On a local disk that is needed after create, link and
	// rename; on NFS namespace operations are already stable and it is a
	// no-op of the client.
	SyncDir(name string) error
}

// File is an open file. Its methods use explicit offsets, never a shared
// file position, except Write, which exists for Append files. A File is
// safe for concurrent use; calls after Close fail with an error matching
// fs.ErrClosed.
type File interface {
	// ReadAt reads len(p) bytes at off; like io.ReaderAt it returns io.EOF
	// when fewer bytes are available (and may return nil or io.EOF when
	// the read ends exactly at the end of file). On NFS the bytes may come from this
	// host's page cache and be stale (N2), and a read racing a write on
	// another host may see any mixture of old and new bytes (N8).
	ReadAt(p []byte, off int64) (n int, err error)
	// WriteAt writes p at off. The bytes are durable only after Sync or
	// Datasync; until then they may reach the server (or disk) in any order
	// and any subset (N7). It does not modify p. On a file opened with
	// Append its effect is unspecified (Linux appends): use Write.
	WriteAt(p []byte, off int64) (n int, err error)
	// Write appends p at the end of a file opened with Append; on other
	// files it writes at offset 0 and then onwards like write(2) would from
	// a fresh descriptor. Prefer WriteAt.
	Write(p []byte) (n int, err error)
	// Sync makes the file's data and metadata durable (fsync).
	Sync() error
	// Datasync makes the file's data durable (fdatasync).
	Datasync() error
	// Stat returns the file's attributes (fstat); the same caching caveats
	// as FS.Stat apply.
	Stat() (FileInfo, error)
	// Truncate changes the file's size (ftruncate).
	Truncate(size int64) error
	// Close releases the file. On NFS it flushes dirty data and reports
	// write errors that happened in the background (N11): check it.
	Close() error
	// Name returns the name the file was opened with.
	Name() string
}

// FileInfo is what Stat returns. Times are those of whoever stamps them: the
// local kernel, or the NFS server's clock (N18), never the caller's clock.
type FileInfo struct {
	Name    string      // base name
	Size    int64       // bytes
	Mode    fs.FileMode // type and permission bits
	ModTime time.Time   // mtime
	// ChangeTime is ctime: the last change of data or attributes.
	ChangeTime time.Time
	Ino        uint64 // inode number (NFS file id); reused after removal
	Nlink      uint64 // link count
}

// IsDir reports whether the FileInfo describes a directory.
func (fi FileInfo) IsDir() bool { return fi.Mode.IsDir() }

// ErrStale is the stale-file-handle condition (ESTALE): the file another
// host removed or renamed over is gone at the server. errors.Is(err,
// ErrStale) matches it inside *fs.PathError and *LinkError. Treat it as
// "reopen by name and retry", never as corruption (N16).
var ErrStale error = syscall.ESTALE

// LinkError records an error of an operation on two paths (link, rename,
// symlink), like os.LinkError.
type LinkError struct {
	Op  string
	Old string
	New string
	Err error
}

func (e *LinkError) Error() string { return e.Op + " " + e.Old + " " + e.New + ": " + e.Err.Error() }

// Unwrap returns the underlying errno.
func (e *LinkError) Unwrap() error { return e.Err }
