//go:build darwin || netbsd || openbsd

package osfs

import "github.com/nfsindex/nfsindex/vfs"

// StatFresh returns the attributes of name, following a final symbolic
// link, revalidated with the file system: these systems have no statx(2),
// so it opens the file (O_RDONLY), fstats it and closes it, which an NFS
// client answers with its close-to-open revalidation (N2). It needs read
// permission on the file.
func (fsys *FS) StatFresh(name string) (vfs.FileInfo, error) {
	return fsys.statByOpen(name)
}
