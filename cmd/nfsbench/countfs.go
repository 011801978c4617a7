package main

import (
	"io/fs"
	"sync/atomic"

	"github.com/nfsindex/nfsindex/vfs"
)

// ioStats are what a program handed to the file system through the seam:
// the bytes it asked to write (file data, plus the targets of symbolic
// links, which hold the engine's records) and the durability barriers it
// asked for (Sync, Datasync, SyncDir). They are the same on every mode, so
// they compare a local run, an NFS run and the simulator.
type ioStats struct {
	Bytes  uint64
	Syncs  uint64
	Create uint64 // names created: files (O_CREAT), symlinks, links, dirs
}

func (s ioStats) sub(b ioStats) ioStats {
	return ioStats{Bytes: s.Bytes - b.Bytes, Syncs: s.Syncs - b.Syncs, Create: s.Create - b.Create}
}

func (s ioStats) add(d ioStats) ioStats {
	return ioStats{Bytes: s.Bytes + d.Bytes, Syncs: s.Syncs + d.Syncs, Create: s.Create + d.Create}
}

// countFS wraps a vfs.FS and counts ioStats. It neither blocks nor
// allocates on the counting path, so a task of the simulator may use it.
// The calls that write nothing and create nothing (Stat, Lstat, StatFresh,
// Readlink, ReadDir, Rename, Remove) pass through uncounted: their cost
// is in the RPC counts, which the simulator or mountstats give.
type countFS struct {
	vfs.FS
	bytes, syncs, creates atomic.Uint64
}

var _ vfs.FS = (*countFS)(nil)

func newCountFS(fsys vfs.FS) *countFS { return &countFS{FS: fsys} }

func (c *countFS) stats() ioStats {
	return ioStats{Bytes: c.bytes.Load(), Syncs: c.syncs.Load(), Create: c.creates.Load()}
}

func (c *countFS) OpenFile(name string, flag vfs.Flag, perm fs.FileMode) (vfs.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if flag&vfs.Create != 0 {
		c.creates.Add(1)
	}
	return &countFile{File: f, c: c, dsync: flag&vfs.DSync != 0}, nil
}

func (c *countFS) Symlink(target, name string) error {
	err := c.FS.Symlink(target, name)
	if err == nil {
		c.bytes.Add(uint64(len(target)))
		c.creates.Add(1)
	}
	return err
}

func (c *countFS) Link(oldname, newname string) error {
	err := c.FS.Link(oldname, newname)
	if err == nil {
		c.creates.Add(1)
	}
	return err
}

func (c *countFS) Mkdir(name string, perm fs.FileMode) error {
	err := c.FS.Mkdir(name, perm)
	if err == nil {
		c.creates.Add(1)
	}
	return err
}

func (c *countFS) SyncDir(name string) error {
	c.syncs.Add(1)
	return c.FS.SyncDir(name)
}

// countFile counts one open file's writes and syncs. A write to a file
// opened with DSync is a durability barrier of its own and counts as one.
type countFile struct {
	vfs.File
	c     *countFS
	dsync bool
}

func (f *countFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.c.bytes.Add(uint64(n))
	if f.dsync && n > 0 {
		f.c.syncs.Add(1)
	}
	return n, err
}

func (f *countFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.c.bytes.Add(uint64(n))
	if f.dsync && n > 0 {
		f.c.syncs.Add(1)
	}
	return n, err
}

func (f *countFile) Sync() error {
	f.c.syncs.Add(1)
	return f.File.Sync()
}

func (f *countFile) Datasync() error {
	f.c.syncs.Add(1)
	return f.File.Datasync()
}
