package errorfs

import (
	"errors"
	"io/fs"

	"github.com/nfsindex/nfsindex/vfs"
)

// Wrap returns an FS that asks inj before every call to fsys and to the
// Files it opens, and fails the calls inj chooses (see the package doc).
func Wrap(fsys vfs.FS, inj Injector) vfs.FS {
	return &errFS{fsys: fsys, inj: inj}
}

type errFS struct {
	fsys vfs.FS
	inj  Injector
}

// decide asks the injector about op. It returns the error to report before
// the call (fail), or the error to report after making it (after), or
// neither.
func decide(inj Injector, op Op) (fail, after error) {
	err := inj.MaybeError(op)
	if err == nil {
		return nil, nil
	}
	var done *doneError
	if errors.As(err, &done) {
		return nil, done.err
	}
	return err, nil
}

func pathError(op Op, err error) error {
	return &fs.PathError{Op: opNames[op.Kind], Path: op.Path, Err: err}
}

func linkError(op Op, err error) error {
	return &vfs.LinkError{Op: opNames[op.Kind], Old: op.Path, New: op.NewPath, Err: err}
}

// do runs call for op unless the injector fails it first, and reports an
// injected error after it if the injector said Done.
func (e *errFS) do(op Op, wrap func(Op, error) error, call func() error) error {
	fail, after := decide(e.inj, op)
	if fail != nil {
		return wrap(op, fail)
	}
	if err := call(); err != nil {
		return err
	}
	if after != nil {
		return wrap(op, after)
	}
	return nil
}

func (e *errFS) OpenFile(name string, flag vfs.Flag, perm fs.FileMode) (vfs.File, error) {
	op := Op{Kind: OpOpen, Path: name, Flag: flag}
	if flag.Has(vfs.Create) {
		op.Kind = OpCreate
	}
	var f vfs.File
	err := e.do(op, pathError, func() (err error) {
		f, err = e.fsys.OpenFile(name, flag, perm)
		return err
	})
	if err != nil {
		if f != nil {
			f.Close() // opened, then "failed" (Done): the caller gets no File
		}
		return nil, err
	}
	return &errFile{File: f, inj: e.inj}, nil
}

func (e *errFS) stat(kind OpKind, name string, stat func(string) (vfs.FileInfo, error)) (vfs.FileInfo, error) {
	var fi vfs.FileInfo
	err := e.do(Op{Kind: kind, Path: name}, pathError, func() (err error) {
		fi, err = stat(name)
		return err
	})
	return fi, err
}

func (e *errFS) Stat(name string) (vfs.FileInfo, error) { return e.stat(OpStat, name, e.fsys.Stat) }

func (e *errFS) Lstat(name string) (vfs.FileInfo, error) { return e.stat(OpLstat, name, e.fsys.Lstat) }

func (e *errFS) StatFresh(name string) (vfs.FileInfo, error) {
	return e.stat(OpStatFresh, name, e.fsys.StatFresh)
}

func (e *errFS) Link(oldname, newname string) error {
	return e.do(Op{Kind: OpLink, Path: oldname, NewPath: newname}, linkError, func() error {
		return e.fsys.Link(oldname, newname)
	})
}

func (e *errFS) Symlink(target, name string) error {
	return e.do(Op{Kind: OpSymlink, Path: target, NewPath: name}, linkError, func() error {
		return e.fsys.Symlink(target, name)
	})
}

func (e *errFS) Readlink(name string) (string, error) {
	var target string
	err := e.do(Op{Kind: OpReadlink, Path: name}, pathError, func() (err error) {
		target, err = e.fsys.Readlink(name)
		return err
	})
	return target, err
}

func (e *errFS) Rename(oldname, newname string) error {
	return e.do(Op{Kind: OpRename, Path: oldname, NewPath: newname}, linkError, func() error {
		return e.fsys.Rename(oldname, newname)
	})
}

func (e *errFS) Remove(name string) error {
	return e.do(Op{Kind: OpRemove, Path: name}, pathError, func() error { return e.fsys.Remove(name) })
}

func (e *errFS) Mkdir(name string, perm fs.FileMode) error {
	return e.do(Op{Kind: OpMkdir, Path: name}, pathError, func() error { return e.fsys.Mkdir(name, perm) })
}

func (e *errFS) ReadDir(name string) ([]string, error) {
	var names []string
	err := e.do(Op{Kind: OpReadDir, Path: name}, pathError, func() (err error) {
		names, err = e.fsys.ReadDir(name)
		return err
	})
	return names, err
}

func (e *errFS) SyncDir(name string) error {
	return e.do(Op{Kind: OpSyncDir, Path: name}, pathError, func() error { return e.fsys.SyncDir(name) })
}

// errFile is a File of an errFS.
type errFile struct {
	vfs.File
	inj Injector
}

func (f *errFile) op(kind OpKind) Op { return Op{Kind: kind, Path: f.File.Name()} }

func (f *errFile) ReadAt(p []byte, off int64) (int, error) {
	op := f.op(OpReadAt)
	op.Offset, op.Len = off, len(p)
	fail, after := decide(f.inj, op)
	if fail != nil {
		return 0, pathError(op, fail)
	}
	n, err := f.File.ReadAt(p, off)
	if err == nil && after != nil {
		err = pathError(op, after)
	}
	return n, err
}

func (f *errFile) WriteAt(p []byte, off int64) (int, error) {
	op := f.op(OpWriteAt)
	op.Offset, op.Len = off, len(p)
	return f.write(op, p, func(q []byte) (int, error) { return f.File.WriteAt(q, off) })
}

func (f *errFile) Write(p []byte) (int, error) {
	op := f.op(OpWrite)
	op.Offset, op.Len = -1, len(p)
	return f.write(op, p, f.File.Write)
}

// write makes a WriteAt or Write, honouring a WriteFault.
func (f *errFile) write(op Op, p []byte, write func([]byte) (int, error)) (int, error) {
	fail, after := decide(f.inj, op)
	var wf *WriteFault
	if errors.As(fail, &wf) {
		keep := wf.cut(len(p), op.Offset)
		n, err := write(p[:keep])
		switch {
		case err != nil:
			return n, err
		case wf.Err != nil:
			return n, pathError(op, wf)
		default:
			return len(p), nil // torn: the rest is silently lost
		}
	}
	if fail != nil {
		return 0, pathError(op, fail)
	}
	n, err := write(p)
	if err == nil && after != nil {
		err = pathError(op, after)
	}
	return n, err
}

// do is errFS.do for the File methods that return only an error.
func (f *errFile) do(op Op, call func() error) error {
	fail, after := decide(f.inj, op)
	if fail != nil {
		return pathError(op, fail)
	}
	if err := call(); err != nil {
		return err
	}
	if after != nil {
		return pathError(op, after)
	}
	return nil
}

func (f *errFile) Sync() error     { return f.do(f.op(OpSync), f.File.Sync) }
func (f *errFile) Datasync() error { return f.do(f.op(OpDatasync), f.File.Datasync) }

func (f *errFile) Truncate(size int64) error {
	op := f.op(OpTruncate)
	op.Offset = size
	return f.do(op, func() error { return f.File.Truncate(size) })
}

func (f *errFile) Stat() (vfs.FileInfo, error) {
	var fi vfs.FileInfo
	err := f.do(f.op(OpFileStat), func() (err error) {
		fi, err = f.File.Stat()
		return err
	})
	return fi, err
}

// Close always closes the underlying file, then reports an injected error
// if there is one, as NFS reports a write error at close (N11).
func (f *errFile) Close() error {
	op := f.op(OpClose)
	fail, after := decide(f.inj, op)
	err := f.File.Close()
	if fail == nil {
		fail = after
	}
	if fail != nil {
		return pathError(op, fail)
	}
	return err
}
