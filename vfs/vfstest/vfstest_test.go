package vfstest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

func newOSFS(t *testing.T) vfs.FS {
	t.Helper()
	fsys, err := osfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

// recorder is a testing.TB that records failures instead of reporting
// them, so that a case can be run against a broken FS and expected to fail.
type recorder struct {
	testing.TB
	failed bool
	logs   []string
}

// failNow is the panic with which recorder stops a case, as t.FailNow
// stops a test with runtime.Goexit.
type failNow struct{}

func (r *recorder) Helper()                    {}
func (r *recorder) Fail()                      { r.failed = true }
func (r *recorder) Failed() bool               { return r.failed }
func (r *recorder) FailNow()                   { r.failed = true; panic(failNow{}) }
func (r *recorder) Log(args ...any)            { r.logs = append(r.logs, fmt.Sprint(args...)) }
func (r *recorder) Logf(f string, args ...any) { r.logs = append(r.logs, fmt.Sprintf(f, args...)) }
func (r *recorder) Error(args ...any)          { r.Log(args...); r.Fail() }
func (r *recorder) Errorf(f string, args ...any) {
	r.Logf(f, args...)
	r.Fail()
}
func (r *recorder) Fatal(args ...any)            { r.Log(args...); r.FailNow() }
func (r *recorder) Fatalf(f string, args ...any) { r.Logf(f, args...); r.FailNow() }

// runCase runs the case called name on fsys and returns what it reported.
func runCase(t *testing.T, name string, fsys vfs.FS) (failed bool, logs []string) {
	t.Helper()
	i := slices.IndexFunc(cases, func(c testCase) bool { return c.name == name })
	if i < 0 {
		t.Fatalf("no case %q", name)
	}
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(failNow); !ok {
					panic(p)
				}
			}
		}()
		cases[i].run(r, fsys)
	}()
	return r.failed, r.logs
}

// The broken file systems: each gets one thing wrong.

// brokenFS wraps an FS, changing what its hooks say.
type brokenFS struct {
	vfs.FS
	open    func(name string, flag vfs.Flag) vfs.Flag // flag actually used
	err     func(err error) error                     // every error of the FS
	names   func([]string) []string                   // ReadDir's result
	stat    func(vfs.FileInfo) vfs.FileInfo           // FS.Stat's result
	file    func(vfs.File) vfs.File                   // every opened file
	symlink func(target, name string) error           // replaces Symlink
	// statFresh replaces StatFresh; it gets the wrapped FS.
	statFresh func(fsys vfs.FS, name string) (vfs.FileInfo, error)
}

func (b brokenFS) wrapErr(err error) error {
	if err != nil && b.err != nil {
		return b.err(err)
	}
	return err
}

func (b brokenFS) OpenFile(name string, flag vfs.Flag, perm fs.FileMode) (vfs.File, error) {
	if b.open != nil {
		flag = b.open(name, flag)
	}
	f, err := b.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, b.wrapErr(err)
	}
	if b.file != nil {
		f = b.file(f)
	}
	return f, nil
}

func (b brokenFS) Stat(name string) (vfs.FileInfo, error) {
	fi, err := b.FS.Stat(name)
	if err == nil && b.stat != nil {
		fi = b.stat(fi)
	}
	return fi, b.wrapErr(err)
}

func (b brokenFS) StatFresh(name string) (vfs.FileInfo, error) {
	if b.statFresh != nil {
		return b.statFresh(b.FS, name)
	}
	return b.FS.StatFresh(name)
}

// cachingStat answers StatFresh from the first answer it got for a name:
// an attribute cache that never expires.
type cachingStat struct {
	mu    sync.Mutex
	cache map[string]vfs.FileInfo
}

func (c *cachingStat) statFresh(fsys vfs.FS, name string) (vfs.FileInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fi, ok := c.cache[name]; ok {
		return fi, nil
	}
	fi, err := fsys.StatFresh(name)
	if err == nil {
		c.cache[name] = fi
	}
	return fi, err
}

func (b brokenFS) Remove(name string) error { return b.wrapErr(b.FS.Remove(name)) }

func (b brokenFS) ReadDir(name string) ([]string, error) {
	names, err := b.FS.ReadDir(name)
	if err == nil && b.names != nil {
		names = b.names(names)
	}
	return names, b.wrapErr(err)
}

func (b brokenFS) Symlink(target, name string) error {
	if b.symlink != nil {
		return b.symlink(target, name)
	}
	return b.FS.Symlink(target, name)
}

// eofHidingFile never reports io.EOF.
type eofHidingFile struct{ vfs.File }

func (f eofHidingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// lenientClosedFile lets Sync succeed after Close.
type lenientClosedFile struct{ vfs.File }

func (f lenientClosedFile) Sync() error {
	if err := f.File.Sync(); err != nil && !errors.Is(err, fs.ErrClosed) {
		return err
	}
	return nil
}

// TestRejectsBrokenFS checks the other direction: each case fails on an
// FS that gets its behaviour wrong, so a passing suite means something.
func TestRejectsBrokenFS(t *testing.T) {
	tests := []struct {
		name   string
		cases  []string
		broken func(fsys vfs.FS) vfs.FS
	}{
		{"ExclIgnored", []string{"CreateExcl", "CreateExclConcurrent"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, open: func(_ string, f vfs.Flag) vfs.Flag { return f &^ vfs.Excl }}
		}},
		{"TruncateIgnored", []string{"OpenTruncate"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, open: func(_ string, f vfs.Flag) vfs.Flag { return f &^ vfs.Truncate }}
		}},
		{"AppendIgnored", []string{"WriteAppend"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, open: func(_ string, f vfs.Flag) vfs.Flag { return f &^ vfs.Append }}
		}},
		{"BareErrno", []string{"OpenMissing", "RemoveMissing", "CreateExcl"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, err: func(err error) error {
				var errno syscall.Errno
				if errors.As(err, &errno) {
					return errno
				}
				return err
			}}
		}},
		{"WrongErrno", []string{"RemoveNonEmptyDir", "RemoveMissing"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, err: func(err error) error {
				return &fs.PathError{Op: "x", Path: "wrong", Err: syscall.EIO}
			}}
		}},
		{"UnsortedReadDir", []string{"ReadDir"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, names: func(n []string) []string { slices.Reverse(n); return n }}
		}},
		{"DotInReadDir", []string{"ReadDir"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, names: func(n []string) []string { return append([]string{".", ".."}, n...) }}
		}},
		{"NlinkAlwaysOne", []string{"LinkNlink"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, stat: func(fi vfs.FileInfo) vfs.FileInfo { fi.Nlink = 1; return fi }}
		}},
		{"NoModTime", []string{"Stat"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, stat: func(fi vfs.FileInfo) vfs.FileInfo { fi.ModTime = time.Time{}; return fi }}
		}},
		{"EOFHidden", []string{"ReadAtEOF"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, file: func(f vfs.File) vfs.File { return eofHidingFile{f} }}
		}},
		{"SyncAfterClose", []string{"Closed"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, file: func(f vfs.File) vfs.File { return lenientClosedFile{f} }}
		}},
		{"StatFreshIsLstat", []string{"StatFresh"}, func(fsys vfs.FS) vfs.FS {
			return brokenFS{FS: fsys, statFresh: func(fsys vfs.FS, name string) (vfs.FileInfo, error) { return fsys.Lstat(name) }}
		}},
		{"StatFreshCached", []string{"StatFresh"}, func(fsys vfs.FS) vfs.FS {
			c := &cachingStat{cache: map[string]vfs.FileInfo{}}
			return brokenFS{FS: fsys, statFresh: c.statFresh}
		}},
		{"SymlinkCopies", []string{"Symlink"}, func(fsys vfs.FS) vfs.FS {
			// A "symlink" that is a copy of the target.
			return brokenFS{FS: fsys, symlink: func(target, name string) error {
				data, err := ReadFile(fsys, target)
				if err != nil {
					return err
				}
				return WriteFile(fsys, name, data)
			}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range tc.cases {
				failed, logs := runCase(t, name, tc.broken(newOSFS(t)))
				if !failed {
					t.Errorf("case %s passed on a broken FS", name)
				} else {
					t.Logf("case %s failed as it should: %s", name, strings.Join(logs, "; "))
				}
			}
		})
	}
}

// TestRecorderPasses checks that the recorder does not make a case fail by
// itself: every case passes on osfs through it.
func TestRecorderPasses(t *testing.T) {
	for _, c := range cases {
		if failed, logs := runCase(t, c.name, newOSFS(t)); failed {
			t.Errorf("case %s failed through the recorder: %s", c.name, strings.Join(logs, "; "))
		}
	}
}

func TestErrClass(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{io.EOF, "EOF"},
		{&fs.PathError{Op: "read", Path: "f", Err: fs.ErrClosed}, "closed"},
		{&fs.PathError{Op: "open", Path: "f", Err: syscall.EEXIST}, "EEXIST"},
		{&vfs.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.ENOTEMPTY}, "ENOTEMPTY"},
		{fmt.Errorf("step: %w", &fs.PathError{Op: "open", Path: "f", Err: vfs.ErrStale}), "ESTALE"},
		{&fs.PathError{Op: "open", Path: "/f", Err: fs.ErrInvalid}, "EINVAL"},
		{syscall.Errno(250), "errno 250"},
		{errors.New("something"), "other"},
	} {
		if got := ErrClass(tc.err); got != tc.want {
			t.Errorf("ErrClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestSnapshotDiff(t *testing.T) {
	a, b := newOSFS(t), newOSFS(t)
	for _, fsys := range []vfs.FS{a, b} {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(fsys, "d/f", []byte("data")); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Symlink("d/f", "l"); err != nil {
			t.Fatal(err)
		}
	}
	ta, err := Snapshot(a, ".")
	if err != nil {
		t.Fatal(err)
	}
	want := Tree{
		"d":   {Type: fs.ModeDir},
		"d/f": {Data: "data", Nlink: 1},
		"l":   {Type: fs.ModeSymlink, Data: "d/f"},
	}
	if d := ta.Diff(want); len(d) > 0 {
		t.Errorf("Snapshot differs from the expected tree:\n%s", strings.Join(d, "\n"))
	}
	if err := b.Link("d/f", "h"); err != nil {
		t.Fatal(err)
	}
	tb, err := Snapshot(b, ".")
	if err != nil {
		t.Fatal(err)
	}
	d := ta.Diff(tb)
	wantDiff := []string{
		"d/f: {Type:---------- Data:data Nlink:1} != {Type:---------- Data:data Nlink:2}",
		"h: only in the second tree: {Type:---------- Data:data Nlink:2}",
	}
	if !slices.Equal(d, wantDiff) {
		t.Errorf("Diff = %q, want %q", d, wantDiff)
	}
}

// TestRunner runs a fixed sequence and checks each Result, and that a
// broken FS gives a different one.
func TestRunner(t *testing.T) {
	ops := []struct {
		op   Op
		want Result
	}{
		{Op{Kind: OpWrite}, Result{Err: Unspecified}},
		{Op{Kind: OpOpen, Name: "a", Flag: vfs.ReadWrite | vfs.Create | vfs.Excl}, Result{N: 0}},
		{Op{Kind: OpOpen, Name: "a", Flag: vfs.ReadWrite | vfs.Create | vfs.Excl}, Result{Err: "EEXIST"}},
		{Op{Kind: OpWriteAt, Data: []byte("hello"), Offset: 2}, Result{N: 5}},
		{Op{Kind: OpReadAt, Len: 10, Offset: 0}, Result{Err: "EOF", N: 7, Data: "\x00\x00hello"}},
		{Op{Kind: OpReadAt, Len: 7, Offset: 0}, Result{N: 7, Data: "\x00\x00hello"}},
		{Op{Kind: OpWrite, Data: []byte("HI")}, Result{N: 2}},
		{Op{Kind: OpFileStat}, Result{Data: "a", Size: 7}}, // Nlink not compared while open
		{Op{Kind: OpOpen, Name: "a", Flag: vfs.WriteOnly | vfs.Create | vfs.Append}, Result{N: 1}},
		{Op{Kind: OpWriteAt, Handle: 1, Data: []byte("x")}, Result{Err: Unspecified}},
		{Op{Kind: OpWrite, Handle: 1, Data: []byte("!")}, Result{N: 1}},
		{Op{Kind: OpLink, Name: "a", NewName: "b"}, Result{}},
		{Op{Kind: OpStat, Name: "b"}, Result{Data: "b", Size: 8}},
		{Op{Kind: OpStatFresh, Name: "b"}, Result{Data: "b", Size: 8}},
		{Op{Kind: OpMkdir, Name: "d"}, Result{}},
		{Op{Kind: OpSymlink, Name: "a", NewName: "d/l"}, Result{}},
		{Op{Kind: OpLstat, Name: "d/l"}, Result{Data: "l", Type: fs.ModeSymlink, Size: 1}},
		{Op{Kind: OpReadlink, Name: "d/l"}, Result{Data: "a"}},
		{Op{Kind: OpStatFresh, Name: "d/l"}, Result{Err: "ENOENT"}}, // follows the link to d/a
		{Op{Kind: OpStat, Name: "d"}, Result{Data: "d", Type: fs.ModeDir}},
		{Op{Kind: OpReadDir, Name: "."}, Result{Data: "a/b/d"}},
		{Op{Kind: OpRename, Name: "b", NewName: "d"}, Result{Err: "EISDIR"}},
		{Op{Kind: OpRemove, Name: "d"}, Result{Err: Unspecified}}, // files are open: unspecified (N17)
		{Op{Kind: OpClose, Handle: 2}, Result{}},                  // handle 0
		{Op{Kind: OpSync, Handle: 0}, Result{Err: "closed"}},
		{Op{Kind: OpTruncate, Handle: 1, Offset: 1}, Result{}},
		{Op{Kind: OpDatasync, Handle: 1}, Result{}},
		{Op{Kind: OpSyncDir, Name: "d"}, Result{}},
		{Op{Kind: OpReadAt, Handle: 0, Len: 1}, Result{Err: "closed"}},
	}
	r := NewRunner(newOSFS(t))
	defer r.Close()
	for i, tc := range ops {
		if got := r.Apply(tc.op); got != tc.want {
			t.Errorf("op %d, %v = %v, want %v", i, tc.op, got, tc.want)
		}
	}
	// The same sequence on an FS that ignores Excl differs at op 2.
	broken := NewRunner(brokenFS{FS: newOSFS(t), open: func(_ string, f vfs.Flag) vfs.Flag { return f &^ vfs.Excl }})
	defer broken.Close()
	for i, tc := range ops[:3] {
		got := broken.Apply(tc.op)
		if (got == tc.want) != (i < 2) {
			t.Errorf("broken FS, op %d, %v = %v", i, tc.op, got)
		}
	}
}

func TestResultString(t *testing.T) {
	r := Result{Err: "EOF", N: 2, Data: "ab"}
	if got, want := r.String(), "{Err:EOF N:2 Data:ab Type:---------- Size:0 Nlink:0}"; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestOpString(t *testing.T) {
	for _, tc := range []struct {
		op   Op
		want string
	}{
		{Op{Kind: OpOpen, Name: "a", Flag: vfs.ReadOnly}, `Open("a", 0)`},
		{Op{Kind: OpWriteAt, Handle: 2, Data: []byte("x"), Offset: 9}, `WriteAt(#2, "x", 9)`},
		{Op{Kind: OpRename, Name: "a", NewName: "b"}, `Rename("a", "b")`},
		{Op{Kind: OpSync, Handle: 1}, `Sync(#1)`},
		{Op{Kind: OpReadDir, Name: "."}, `ReadDir(".")`},
		{Op{Kind: numOpKinds}, `OpKind(20)("")`},
	} {
		if got := tc.op.String(); got != tc.want {
			t.Errorf("String() = %s, want %s", got, tc.want)
		}
	}
}
