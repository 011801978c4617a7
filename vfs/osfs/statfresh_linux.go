package osfs

import (
	"path"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsindex/nfsindex/vfs"
)

// statx is unix.Statx; a test replaces it to play a kernel without it.
var statx = unix.Statx

// noStatx is set once statx(2) answered ENOSYS (a kernel older than 4.11)
// or EPERM (a seccomp filter that does not know it, as old container
// runtimes had); from then on StatFresh opens the file instead.
var noStatx atomic.Bool

// StatFresh returns the attributes of name, following a final symbolic
// link, fetched from the file system rather than from a cache: statx(2)
// with AT_STATX_FORCE_SYNC, which the Linux NFS client answers with one
// GETATTR whatever its attribute cache holds (nfs_getattr). A local file
// system ignores the flag, so on a local disk it is Stat.
//
// Where statx is missing it opens the file (O_RDONLY), fstats it and
// closes it: close-to-open revalidates the attributes too (N2), at the
// cost of an open (NFSv4: OPEN and CLOSE) and of needing read permission.
func (fsys *FS) StatFresh(name string) (vfs.FileInfo, error) {
	if noStatx.Load() {
		return fsys.statByOpen(name)
	}
	var stx unix.Statx_t
	var fallback bool
	err := fsys.at("stat", name, func(dirfd int) error {
		err := retry0(func() error {
			return statx(dirfd, name, unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS, &stx)
		})
		if err == unix.ENOSYS || err == unix.EPERM {
			noStatx.Store(true)
			fallback = true
			return nil
		}
		return err
	})
	if fallback {
		return fsys.statByOpen(name)
	}
	if err != nil {
		return vfs.FileInfo{}, err
	}
	return vfs.FileInfo{
		Name:       path.Base(name),
		Size:       int64(stx.Size),
		Mode:       fileMode(uint32(stx.Mode)),
		ModTime:    time.Unix(stx.Mtime.Sec, int64(stx.Mtime.Nsec)),
		ChangeTime: time.Unix(stx.Ctime.Sec, int64(stx.Ctime.Nsec)),
		Ino:        stx.Ino,
		Nlink:      uint64(stx.Nlink),
	}, nil
}
