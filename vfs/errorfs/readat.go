package errorfs

import (
	"io"
	"io/fs"

	"github.com/nfsindex/nfsindex/vfs"
)

// HalfReadAt returns a File whose ReadAt reads only the first half of p
// (rounded up) and, when that is less than asked, returns io.EOF with it:
// the file looks shorter than it is, as it does to a host whose cached
// size is stale (N1) or that reads while another host's extension is still
// arriving (N7). Code that trusts a read's length without a checksum or a
// committed size fails under it.
func HalfReadAt(f vfs.File) vfs.File { return halfReadAt{f} }

type halfReadAt struct{ vfs.File }

func (f halfReadAt) ReadAt(p []byte, off int64) (int, error) {
	half := (len(p) + 1) / 2
	n, err := f.File.ReadAt(p[:half], off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// DataErrReadAt returns a File whose ReadAt returns io.EOF together with
// the last bytes of the file, also when they fill p exactly, which
// io.ReaderAt allows (osfs returns nil there). Code that drops the data of
// a read that returned io.EOF fails under it.
func DataErrReadAt(f vfs.File) vfs.File { return dataErrReadAt{f} }

type dataErrReadAt struct{ vfs.File }

func (f dataErrReadAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	if err != nil || len(p) == 0 {
		return n, err
	}
	// Full: does the file end right here? Probe the next byte.
	var probe [1]byte
	if m, perr := f.File.ReadAt(probe[:], off+int64(n)); m == 0 && perr == io.EOF {
		return n, io.EOF
	}
	return n, nil
}

// WrapFiles returns an FS whose OpenFile returns wrap(f) for every File f
// that fsys opens, so that files the code under test opens itself get a
// wrapper such as HalfReadAt.
func WrapFiles(fsys vfs.FS, wrap func(vfs.File) vfs.File) vfs.FS {
	return wrapFiles{FS: fsys, wrap: wrap}
}

type wrapFiles struct {
	vfs.FS
	wrap func(vfs.File) vfs.File
}

func (w wrapFiles) OpenFile(name string, flag vfs.Flag, perm fs.FileMode) (vfs.File, error) {
	f, err := w.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return w.wrap(f), nil
}
