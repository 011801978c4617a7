package vfstest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"
	"testing"

	"pgregory.net/rapid"

	"github.com/nfsindex/nfsindex/vfs"
)

// ReadFile returns the whole content of name, read with ReadAt from a File
// opened ReadOnly and closed again.
func ReadFile(fsys vfs.FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		return nil, err
	}
	data, err := readFrom(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return data, err
}

// readFrom reads f from offset 0 until ReadAt reports io.EOF.
func readFrom(f vfs.File) ([]byte, error) {
	var data []byte
	buf := make([]byte, 4096)
	for {
		n, err := f.ReadAt(buf, int64(len(data)))
		data = append(data, buf[:n]...)
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return data, err
		}
		if n == 0 {
			return data, fmt.Errorf("vfstest: ReadAt of %s at %d returned no bytes and no error", f.Name(), len(data))
		}
		if len(buf) < 1<<20 {
			buf = make([]byte, 2*len(buf))
		}
	}
}

// WriteFile creates or truncates name and writes data into it with
// WriteAt. It does not sync: the bytes are visible, not durable.
func WriteFile(fsys vfs.FS, name string, data []byte) error {
	f, err := fsys.OpenFile(name, vfs.WriteOnly|vfs.Create|vfs.Truncate, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ErrClass names the outcome of a call the way all implementations must
// agree on it: "" for nil, "EOF" for io.EOF, "closed" for fs.ErrClosed,
// the errno's name (such as "EEXIST") for an error carrying a
// syscall.Errno, "EINVAL" also for an error wrapping fs.ErrInvalid (an
// argument the implementation rejected before asking the kernel, which
// would have said EINVAL), and "other" for anything else. It ignores the
// Op and the wrapping, which may differ between implementations.
func ErrClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, fs.ErrClosed):
		return "closed"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name, ok := errnoNames[errno]; ok {
			return name
		}
		return fmt.Sprintf("errno %d", uint(errno))
	}
	if errors.Is(err, fs.ErrInvalid) {
		return "EINVAL"
	}
	return "other"
}

var errnoNames = map[syscall.Errno]string{
	syscall.EACCES:       "EACCES",
	syscall.EAGAIN:       "EAGAIN",
	syscall.EBADF:        "EBADF",
	syscall.EBUSY:        "EBUSY",
	syscall.EDQUOT:       "EDQUOT",
	syscall.EEXIST:       "EEXIST",
	syscall.EFBIG:        "EFBIG",
	syscall.EINTR:        "EINTR",
	syscall.EINVAL:       "EINVAL",
	syscall.EIO:          "EIO",
	syscall.EISDIR:       "EISDIR",
	syscall.ELOOP:        "ELOOP",
	syscall.EMLINK:       "EMLINK",
	syscall.ENAMETOOLONG: "ENAMETOOLONG",
	syscall.ENOENT:       "ENOENT",
	syscall.ENOSPC:       "ENOSPC",
	syscall.ENOTDIR:      "ENOTDIR",
	syscall.ENOTEMPTY:    "ENOTEMPTY",
	syscall.EPERM:        "EPERM",
	syscall.EROFS:        "EROFS",
	syscall.ESTALE:       "ESTALE",
	syscall.ETIMEDOUT:    "ETIMEDOUT",
	syscall.EXDEV:        "EXDEV",
}

// Node is what Snapshot records of one name: its type, the content of a
// regular file or the target of a symbolic link, and a regular file's link
// count. Permissions, times, inode numbers and the sizes and link counts of
// directories are left out: they legitimately differ between file systems.
type Node struct {
	Type  fs.FileMode // Mode.Type(): 0 for a regular file
	Data  string      // file content or symlink target
	Nlink uint64      // regular files only
}

// Tree maps every name below a directory to its Node.
type Tree map[string]Node

// Snapshot walks dir without following symbolic links and records every
// name below it (dir itself excluded), with names as the FS takes them.
// Like Runner, it leaves out the names an NFS client gives the files it
// silly-renames (N17), which a local file system does not have.
func Snapshot(fsys vfs.FS, dir string) (Tree, error) {
	tree := Tree{}
	err := snapshot(fsys, dir, tree)
	return tree, err
}

func snapshot(fsys vfs.FS, dir string, tree Tree) error {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, base := range withoutSillyRenames(names) {
		name := path.Join(dir, base)
		fi, err := fsys.Lstat(name)
		if err != nil {
			return err
		}
		node := Node{Type: fi.Mode.Type()}
		switch {
		case fi.Mode.IsRegular():
			data, err := ReadFile(fsys, name)
			if err != nil {
				return err
			}
			node.Data, node.Nlink = string(data), fi.Nlink
		case fi.Mode.Type() == fs.ModeSymlink:
			if node.Data, err = fsys.Readlink(name); err != nil {
				return err
			}
		case fi.IsDir():
			if err := snapshot(fsys, name, tree); err != nil {
				return err
			}
		}
		tree[name] = node
	}
	return nil
}

// sillyPrefix starts the names of the files an NFS client renames instead
// of removing while they are open (".nfs" and a unique suffix, N17).
const sillyPrefix = ".nfs"

// withoutSillyRenames returns names without those starting with
// sillyPrefix. OpGen never generates such a name.
func withoutSillyRenames(names []string) []string {
	return slices.DeleteFunc(names, func(name string) bool { return strings.HasPrefix(name, sillyPrefix) })
}

// Diff lists the names whose nodes differ between t and u, one line each,
// sorted; it is empty when the trees are equal.
func (t Tree) Diff(u Tree) []string {
	var diffs []string
	for name, a := range t {
		b, ok := u[name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: only in the first tree: %+v", name, a))
		case a != b:
			diffs = append(diffs, fmt.Sprintf("%s: %+v != %+v", name, a, b))
		}
	}
	for name, b := range u {
		if _, ok := t[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in the second tree: %+v", name, b))
		}
	}
	slices.Sort(diffs)
	return diffs
}

// OpKind is the kind of an Op.
type OpKind uint8

// The kinds of Op: one per method of vfs.FS and vfs.File except Name.
const (
	OpOpen      OpKind = iota // FS.OpenFile(Name, Flag): a new handle
	OpClose                   // File.Close of Handle
	OpReadAt                  // File.ReadAt of Len bytes at Offset
	OpWriteAt                 // File.WriteAt of Data at Offset
	OpWrite                   // File.Write of Data
	OpTruncate                // File.Truncate to Offset
	OpSync                    // File.Sync
	OpDatasync                // File.Datasync
	OpFileStat                // File.Stat
	OpStat                    // FS.Stat(Name)
	OpLstat                   // FS.Lstat(Name)
	OpStatFresh               // FS.StatFresh(Name)
	OpLink                    // FS.Link(Name, NewName)
	OpSymlink                 // FS.Symlink(Name, NewName): Name is the target
	OpReadlink                // FS.Readlink(Name)
	OpRename                  // FS.Rename(Name, NewName)
	OpRemove                  // FS.Remove(Name)
	OpMkdir                   // FS.Mkdir(Name)
	OpReadDir                 // FS.ReadDir(Name)
	OpSyncDir                 // FS.SyncDir(Name)
	numOpKinds
)

var opKindNames = [...]string{
	"Open", "Close", "ReadAt", "WriteAt", "Write", "Truncate", "Sync", "Datasync", "FileStat",
	"Stat", "Lstat", "StatFresh", "Link", "Symlink", "Readlink", "Rename", "Remove", "Mkdir", "ReadDir", "SyncDir",
}

func (k OpKind) String() string {
	if k < numOpKinds {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one call for a Runner to make. The File methods act on the open
// file number Handle (modulo the number of files opened so far, closed ones
// included), so that a generated sequence stays meaningful whatever opens
// failed.
type Op struct {
	Kind    OpKind
	Name    string
	NewName string
	Flag    vfs.Flag
	Handle  int
	Offset  int64
	Len     int
	Data    []byte
}

func (op Op) String() string {
	switch op.Kind {
	case OpOpen:
		return fmt.Sprintf("Open(%q, %#o)", op.Name, op.Flag)
	case OpClose, OpSync, OpDatasync, OpFileStat:
		return fmt.Sprintf("%v(#%d)", op.Kind, op.Handle)
	case OpReadAt:
		return fmt.Sprintf("ReadAt(#%d, %d bytes, %d)", op.Handle, op.Len, op.Offset)
	case OpWriteAt:
		return fmt.Sprintf("WriteAt(#%d, %q, %d)", op.Handle, op.Data, op.Offset)
	case OpWrite:
		return fmt.Sprintf("Write(#%d, %q)", op.Handle, op.Data)
	case OpTruncate:
		return fmt.Sprintf("Truncate(#%d, %d)", op.Handle, op.Offset)
	case OpLink, OpSymlink, OpRename:
		return fmt.Sprintf("%v(%q, %q)", op.Kind, op.Name, op.NewName)
	default:
		return fmt.Sprintf("%v(%q)", op.Kind, op.Name)
	}
}

// openFlags are the flags OpGen opens files with.
var openFlags = []vfs.Flag{
	vfs.ReadOnly,
	vfs.WriteOnly,
	vfs.ReadWrite,
	vfs.ReadWrite | vfs.Create,
	vfs.ReadWrite | vfs.Create | vfs.Excl,
	vfs.WriteOnly | vfs.Create | vfs.Truncate,
	vfs.WriteOnly | vfs.Create | vfs.Append,
	vfs.ReadWrite | vfs.Append,
}

// OpGen generates Ops on the given names (which should include a directory
// name and names inside it, as "d" and "d/a"), for rapid to run and shrink.
// Offsets reach past the first pages so that holes and page boundaries
// occur.
func OpGen(names []string) *rapid.Generator[Op] {
	dirs := append([]string{"."}, names...)
	// Symlink targets are names too (or a missing one): a target with ".."
	// could lead a real FS out of its root.
	targets := append([]string{"missing"}, names...)
	return rapid.Custom(func(t *rapid.T) Op {
		op := Op{Kind: OpKind(rapid.IntRange(0, int(numOpKinds)-1).Draw(t, "kind"))}
		switch op.Kind {
		case OpOpen:
			op.Name = rapid.SampledFrom(names).Draw(t, "name")
			op.Flag = rapid.SampledFrom(openFlags).Draw(t, "flag")
		case OpClose, OpSync, OpDatasync, OpFileStat:
			op.Handle = rapid.IntRange(0, 7).Draw(t, "handle")
		case OpReadAt:
			op.Handle = rapid.IntRange(0, 7).Draw(t, "handle")
			op.Offset = rapid.Int64Range(0, 3*4096+64).Draw(t, "offset")
			op.Len = rapid.IntRange(0, 512).Draw(t, "len")
		case OpWriteAt:
			op.Handle = rapid.IntRange(0, 7).Draw(t, "handle")
			op.Offset = rapid.Int64Range(0, 3*4096+64).Draw(t, "offset")
			op.Data = rapid.SliceOfN(rapid.Byte(), 1, 64).Draw(t, "data")
		case OpWrite:
			op.Handle = rapid.IntRange(0, 7).Draw(t, "handle")
			op.Data = rapid.SliceOfN(rapid.Byte(), 1, 64).Draw(t, "data")
		case OpTruncate:
			op.Handle = rapid.IntRange(0, 7).Draw(t, "handle")
			op.Offset = rapid.Int64Range(0, 2*4096+64).Draw(t, "size")
		case OpLink, OpRename:
			op.Name = rapid.SampledFrom(names).Draw(t, "name")
			op.NewName = rapid.SampledFrom(names).Draw(t, "newname")
		case OpSymlink:
			op.Name = rapid.SampledFrom(targets).Draw(t, "target")
			op.NewName = rapid.SampledFrom(names).Draw(t, "newname")
		case OpReadDir, OpSyncDir:
			op.Name = rapid.SampledFrom(dirs).Draw(t, "dir")
		default:
			op.Name = rapid.SampledFrom(names).Draw(t, "name")
		}
		return op
	})
}

// Result is what a Runner observed of one Op; Results of two file systems
// that behave alike are ==.
type Result struct {
	Err   string      // ErrClass of the error
	N     int         // bytes read or written; the handle number of an Open
	Data  string      // bytes read, link target, names listed (joined by "/"), base name from a stat
	Type  fs.FileMode // Mode.Type() from a stat
	Size  int64       // size from a stat of a non-directory
	Nlink uint64      // link count from a stat of a non-directory
}

func (r Result) String() string {
	type fields Result // without the String method
	return fmt.Sprintf("%+v", fields(r))
}

// Unspecified is the Result.Err of an Op whose outcome POSIX leaves to the
// implementation, which a Runner therefore does not make: WriteAt on a file
// opened with Append (Linux appends, ignoring the offset; see pwrite(2),
// BUGS), and File operations before any file was opened.
const Unspecified = "unspecified"

// Runner applies Ops to one file system, keeping the Files they open.
// Listings leave out the names of silly-renamed files (N17): removing an
// open file on NFS leaves a ".nfs..." name until the last close.
type Runner struct {
	fsys  vfs.FS
	files []runnerFile
}

type runnerFile struct {
	f      vfs.File
	append bool
	closed bool
}

// anyOpen reports whether a file is open. While one is, link counts are
// not compared: removing an open name on NFS silly-renames it (N17), so
// the file keeps a link that a local file system would have dropped.
func (r *Runner) anyOpen() bool {
	for _, rf := range r.files {
		if !rf.closed {
			return true
		}
	}
	return false
}

// linkCountsUnknown clears Nlink in a stat result while files are open.
func (r *Runner) linkCountsUnknown(res Result) Result {
	if r.anyOpen() {
		res.Nlink = 0
	}
	return res
}

// NewRunner returns a Runner on fsys with no files open.
func NewRunner(fsys vfs.FS) *Runner { return &Runner{fsys: fsys} }

// Close closes every file the Runner opened that is still open.
func (r *Runner) Close() error {
	var first error
	for _, rf := range r.files {
		if err := rf.f.Close(); err != nil && !errors.Is(err, fs.ErrClosed) && first == nil {
			first = err
		}
	}
	return first
}

// Apply makes the call op describes and returns what it observed.
func (r *Runner) Apply(op Op) Result {
	switch op.Kind {
	case OpOpen:
		f, err := r.fsys.OpenFile(op.Name, op.Flag, 0o644)
		if err != nil {
			return Result{Err: ErrClass(err)}
		}
		r.files = append(r.files, runnerFile{f: f, append: op.Flag.Has(vfs.Append)})
		return Result{N: len(r.files) - 1}
	case OpStat, OpLstat, OpStatFresh:
		stat := r.fsys.Stat
		switch op.Kind {
		case OpLstat:
			stat = r.fsys.Lstat
		case OpStatFresh:
			stat = r.fsys.StatFresh
		}
		fi, err := stat(op.Name)
		return r.linkCountsUnknown(statResult(fi, err))
	case OpLink:
		return Result{Err: ErrClass(r.fsys.Link(op.Name, op.NewName))}
	case OpSymlink:
		return Result{Err: ErrClass(r.fsys.Symlink(op.Name, op.NewName))}
	case OpReadlink:
		target, err := r.fsys.Readlink(op.Name)
		return Result{Err: ErrClass(err), Data: target}
	case OpRename:
		return Result{Err: ErrClass(r.fsys.Rename(op.Name, op.NewName))}
	case OpRemove:
		// Removing a directory while files are open is unspecified: on NFS
		// a removed open file lives on as a .nfs name inside it (N17), so
		// the directory is not empty until the file is closed.
		if r.anyOpen() {
			if fi, err := r.fsys.Lstat(op.Name); err == nil && fi.IsDir() {
				return Result{Err: Unspecified}
			}
		}
		return Result{Err: ErrClass(r.fsys.Remove(op.Name))}
	case OpMkdir:
		return Result{Err: ErrClass(r.fsys.Mkdir(op.Name, 0o755))}
	case OpReadDir:
		names, err := r.fsys.ReadDir(op.Name)
		return Result{Err: ErrClass(err), Data: strings.Join(withoutSillyRenames(names), "/")}
	case OpSyncDir:
		return Result{Err: ErrClass(r.fsys.SyncDir(op.Name))}
	}

	if len(r.files) == 0 {
		return Result{Err: Unspecified}
	}
	rf := &r.files[op.Handle%len(r.files)]
	f := rf.f
	switch op.Kind {
	case OpClose:
		rf.closed = true
		return Result{Err: ErrClass(f.Close())}
	case OpReadAt:
		p := make([]byte, op.Len)
		n, err := f.ReadAt(p, op.Offset)
		if err == io.EOF && n == len(p) {
			err = nil // io.ReaderAt allows either at the exact end
		}
		return Result{Err: ErrClass(err), N: n, Data: string(p[:n])}
	case OpWriteAt:
		if rf.append {
			return Result{Err: Unspecified}
		}
		n, err := f.WriteAt(op.Data, op.Offset)
		return Result{Err: ErrClass(err), N: n}
	case OpWrite:
		n, err := f.Write(op.Data)
		return Result{Err: ErrClass(err), N: n}
	case OpTruncate:
		return Result{Err: ErrClass(f.Truncate(op.Offset))}
	case OpSync:
		return Result{Err: ErrClass(f.Sync())}
	case OpDatasync:
		return Result{Err: ErrClass(f.Datasync())}
	case OpFileStat:
		fi, err := f.Stat()
		return r.linkCountsUnknown(statResult(fi, err))
	}
	panic(fmt.Sprintf("vfstest: Apply of %v", op.Kind))
}

func statResult(fi vfs.FileInfo, err error) Result {
	if err != nil {
		return Result{Err: ErrClass(err)}
	}
	r := Result{Data: fi.Name, Type: fi.Mode.Type()}
	if !fi.IsDir() {
		r.Size, r.Nlink = fi.Size, fi.Nlink
	}
	return r
}

// diffNames are the names Differential generates Ops on.
var diffNames = []string{"a", "b", "d", "d/a", "d/b", "d/e"}

// Differential runs random sequences of Ops on a file system from newA and
// one from newB (both new and empty for each sequence) and fails at the
// first Op whose Results differ, or if the trees differ at the end. It
// uses rapid, so a failure is shrunk to a short sequence and can be
// replayed with the -rapid.seed flag rapid prints.
//
// newA and newB get the test's t, so their cleanups run only when the test
// ends; a file system that implements io.Closer is therefore also closed
// after each sequence (a shrinking run makes thousands), and a later Close
// by a cleanup must tolerate that.
func Differential(t *testing.T, newA, newB func(t *testing.T) vfs.FS) {
	t.Helper()
	gen := OpGen(diffNames)
	rapid.Check(t, func(rt *rapid.T) {
		fa, fb := newA(t), newB(t)
		for _, fsys := range []vfs.FS{fa, fb} {
			if c, ok := fsys.(io.Closer); ok {
				defer c.Close()
			}
		}
		a, b := NewRunner(fa), NewRunner(fb)
		count := rapid.IntRange(1, 60).Draw(rt, "count")
		for i := range count {
			op := gen.Draw(rt, fmt.Sprintf("op%d", i))
			if ra, rb := a.Apply(op), b.Apply(op); ra != rb {
				a.Close()
				b.Close()
				rt.Fatalf("op %d, %v: first FS %v, second FS %v", i, op, ra, rb)
			}
		}
		// Close before comparing, so that what closing does (an NFS
		// client removing its silly-renamed files) is done on both.
		if ea, eb := ErrClass(a.Close()), ErrClass(b.Close()); ea != eb {
			rt.Fatalf("closing the open files: first FS %q, second FS %q", ea, eb)
		}
		ta, err := Snapshot(a.fsys, ".")
		if err != nil {
			rt.Fatalf("snapshot of the first FS: %v", err)
		}
		tb, err := Snapshot(b.fsys, ".")
		if err != nil {
			rt.Fatalf("snapshot of the second FS: %v", err)
		}
		if d := ta.Diff(tb); len(d) > 0 {
			rt.Fatalf("the trees differ:\n%s", strings.Join(d, "\n"))
		}
	})
}
