package osfs

import "golang.org/x/sys/unix"

// fdatasync flushes the file's data and the metadata needed to read it back
// (the size), but not timestamps.
func fdatasync(fd int) error { return unix.Fdatasync(fd) }
