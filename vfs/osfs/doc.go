// Package osfs is the operating system's implementation of vfs.FS: a local
// disk or a real NFS mount, through golang.org/x/sys/unix and nothing else.
//
// New opens a directory, the root, and keeps a descriptor of it; every name
// given to the FS is resolved relative to that descriptor with the *at system
// calls (openat, fstatat, linkat, symlinkat, readlinkat, renameat, unlinkat,
// mkdirat). Renaming or removing the root directory does not redirect the
// FS: it keeps operating on the directory it opened (on NFS, on the file
// handle it looked up, which goes stale if another host removes it, N16).
// NewTemp makes a temporary root that Close removes, for Examples.
//
// Names follow io/fs.ValidPath: slash-separated, unrooted, no empty, "." or
// ".." elements, except that "." alone names the root. Absolute names and
// names with ".." are rejected with an *fs.PathError wrapping fs.ErrInvalid,
// so no name can climb out of the root. Symbolic links are followed by the
// kernel, so a link whose target leaves the root does lead outside: the root
// confines names, it is not a security boundary.
//
// Every call is one system call (or a bounded loop of them) and nothing is
// cached: the NFS client's caches (docs/design.md, N1-N9) apply unchanged.
// StatFresh is statx(2) with AT_STATX_FORCE_SYNC on Linux, which makes the
// NFS client fetch the attributes from the server (one GETATTR) instead of
// its attribute cache; where statx is missing (other systems, kernels
// before 4.11, seccomp filters that refuse it) it opens the file, fstats
// it and closes it, which costs an open but revalidates too (N2).
// ReadAt uses pread and loops until p is full or the file ends, returning
// io.EOF if it ends first; WriteAt uses pwrite and loops on short writes.
// Calls interrupted by a signal (EINTR) are retried a bounded number of
// times. Write on a file opened with vfs.Append uses write(2), so the
// kernel appends; on any other file it writes at a private offset that
// starts at 0 and is not shared with any other File.
//
// Errors are *fs.PathError, or *vfs.LinkError for Link, Symlink and Rename,
// wrapping the raw unix.Errno, so errors.Is(err, fs.ErrExist),
// errors.Is(err, fs.ErrNotExist) and errors.Is(err, vfs.ErrStale) work.
// Methods of a closed File, and of a closed FS, return an error wrapping
// fs.ErrClosed.
//
// Datasync is fdatasync(2) on Linux and fsync(2) elsewhere. On macOS fsync
// does not flush the drive's cache (F_FULLFSYNC would): osfs is built and
// tested for Linux, where the product runs; the other Unix builds exist so
// that developers can run the tests on their laptops.
package osfs
