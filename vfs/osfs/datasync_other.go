//go:build darwin || netbsd || openbsd

package osfs

import "golang.org/x/sys/unix"

// fdatasync is fsync where x/sys/unix offers no fdatasync: it does more
// than asked, never less.
func fdatasync(fd int) error { return unix.Fsync(fd) }
