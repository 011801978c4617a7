package errorfs_test

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

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/errorfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
	"github.com/nfsindex/nfsindex/vfs/vfstest"
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

var never = errorfs.InjectorFunc(func(errorfs.Op) error { return nil })

// TestTransparent runs the conformance suite through wrappers that inject
// nothing: wrapping must not change any behaviour.
func TestTransparent(t *testing.T) {
	t.Run("Wrap", func(t *testing.T) {
		vfstest.TestFS(t, func(t *testing.T) vfs.FS { return errorfs.Wrap(newOSFS(t), never) })
	})
	t.Run("ToggleOff", func(t *testing.T) {
		vfstest.TestFS(t, func(t *testing.T) vfs.FS {
			return errorfs.Wrap(newOSFS(t), &errorfs.Toggle{Injector: errorfs.Inject(errorfs.ErrInjected)})
		})
	})
	// io.ReaderAt allows io.EOF with a full read at the end; the suite
	// accepts it.
	t.Run("DataErrReadAt", func(t *testing.T) {
		vfstest.TestFS(t, func(t *testing.T) vfs.FS { return errorfs.WrapFiles(newOSFS(t), errorfs.DataErrReadAt) })
	})
}

// recorder is an Injector that records every op and injects nothing.
type recorder struct {
	mu  sync.Mutex
	ops []errorfs.Op
}

func (r *recorder) MaybeError(op errorfs.Op) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	return nil
}

// script makes one call of every kind, in the order of the OpKinds, and
// returns the first unexpected error.
func script(fsys vfs.FS) error {
	f, err := fsys.OpenFile("f", vfs.ReadWrite|vfs.Create, 0o644) // Create
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { // Open
			g, err := fsys.OpenFile("f", vfs.ReadOnly, 0)
			if err == nil {
				g.Close() // Close, recorded here
			}
			return err
		},
		func() error { _, err := f.ReadAt(make([]byte, 3), 5); return ignoreEOF(err) },
		func() error { _, err := f.WriteAt([]byte("hello"), 7); return err },
		func() error { _, err := f.Write([]byte("ab")); return err },
		f.Sync,
		f.Datasync,
		func() error { _, err := fsys.Stat("f"); return err },
		func() error { _, err := fsys.Lstat("f"); return err },
		func() error { _, err := f.Stat(); return err },
		func() error { return f.Truncate(4) },
		f.Close,
		func() error { return fsys.Link("f", "h") },
		func() error { return fsys.Symlink("f", "l") },
		func() error { _, err := fsys.Readlink("l"); return err },
		func() error { return fsys.Rename("h", "i") },
		func() error { return fsys.Remove("i") },
		func() error { return fsys.Mkdir("d", 0o755) },
		func() error { _, err := fsys.ReadDir("."); return err },
		func() error { return fsys.SyncDir(".") },
		func() error { _, err := fsys.StatFresh("f"); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

func ignoreEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// TestOps checks the Op of every call.
func TestOps(t *testing.T) {
	r := &recorder{}
	if err := script(errorfs.Wrap(newOSFS(t), r)); err != nil {
		t.Fatal(err)
	}
	want := []errorfs.Op{
		{Kind: errorfs.OpCreate, Path: "f", Flag: vfs.ReadWrite | vfs.Create},
		{Kind: errorfs.OpOpen, Path: "f", Flag: vfs.ReadOnly},
		{Kind: errorfs.OpClose, Path: "f"},
		{Kind: errorfs.OpReadAt, Path: "f", Offset: 5, Len: 3},
		{Kind: errorfs.OpWriteAt, Path: "f", Offset: 7, Len: 5},
		{Kind: errorfs.OpWrite, Path: "f", Offset: -1, Len: 2},
		{Kind: errorfs.OpSync, Path: "f"},
		{Kind: errorfs.OpDatasync, Path: "f"},
		{Kind: errorfs.OpStat, Path: "f"},
		{Kind: errorfs.OpLstat, Path: "f"},
		{Kind: errorfs.OpFileStat, Path: "f"},
		{Kind: errorfs.OpTruncate, Path: "f", Offset: 4},
		{Kind: errorfs.OpClose, Path: "f"},
		{Kind: errorfs.OpLink, Path: "f", NewPath: "h"},
		{Kind: errorfs.OpSymlink, Path: "f", NewPath: "l"},
		{Kind: errorfs.OpReadlink, Path: "l"},
		{Kind: errorfs.OpRename, Path: "h", NewPath: "i"},
		{Kind: errorfs.OpRemove, Path: "i"},
		{Kind: errorfs.OpMkdir, Path: "d"},
		{Kind: errorfs.OpReadDir, Path: "."},
		{Kind: errorfs.OpSyncDir, Path: "."},
		{Kind: errorfs.OpStatFresh, Path: "f"},
	}
	if !slices.Equal(r.ops, want) {
		t.Errorf("ops:\n%v\nwant:\n%v", r.ops, want)
	}
	kinds := map[errorfs.OpKind]bool{}
	for _, op := range r.ops {
		kinds[op.Kind] = true
	}
	for k := errorfs.OpOpen; k <= errorfs.OpStatFresh; k++ {
		if !kinds[k] {
			t.Errorf("the script makes no %v", k)
		}
	}
}

// call is one call of a kind, after a setup that uses other kinds only,
// and a check of whether the call took effect.
type call struct {
	kind  errorfs.OpKind
	setup func(base, fsys vfs.FS) (vfs.File, error)
	call  func(fsys vfs.FS, f vfs.File) error
	// effect reports whether the call happened, judged on the
	// unwrapped FS; nil if it leaves no trace.
	effect func(fsys vfs.FS) bool
	link   bool // the error is a *vfs.LinkError
}

func exists(fsys vfs.FS, name string) bool {
	_, err := fsys.Lstat(name)
	return err == nil
}

func content(fsys vfs.FS, name string) string {
	data, _ := vfstest.ReadFile(fsys, name)
	return string(data)
}

// openF writes f on the unwrapped FS and opens it through the wrapper.
func openF(flag vfs.Flag) func(base, fsys vfs.FS) (vfs.File, error) {
	return func(base, fsys vfs.FS) (vfs.File, error) {
		if err := vfstest.WriteFile(base, "f", []byte("0123456789")); err != nil {
			return nil, err
		}
		return fsys.OpenFile("f", flag, 0)
	}
}

func noFile(vfs.FS, vfs.FS) (vfs.File, error) { return nil, nil }

var calls = []call{
	{kind: errorfs.OpOpen, setup: openF(vfs.ReadWrite | vfs.Create), call: func(fsys vfs.FS, _ vfs.File) error {
		g, err := fsys.OpenFile("f", vfs.WriteOnly|vfs.Truncate, 0)
		if err == nil {
			g.Close()
		}
		return err
	}, effect: func(fsys vfs.FS) bool { return content(fsys, "f") == "" }},
	{kind: errorfs.OpCreate, setup: noFile, call: func(fsys vfs.FS, _ vfs.File) error {
		g, err := fsys.OpenFile("new", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
		if err == nil {
			g.Close()
		}
		return err
	}, effect: func(fsys vfs.FS) bool { return exists(fsys, "new") }},
	{kind: errorfs.OpReadAt, setup: openF(vfs.ReadOnly), call: func(_ vfs.FS, f vfs.File) error {
		_, err := f.ReadAt(make([]byte, 4), 0)
		return err
	}},
	{kind: errorfs.OpWriteAt, setup: openF(vfs.ReadWrite), call: func(_ vfs.FS, f vfs.File) error {
		_, err := f.WriteAt([]byte("X"), 0)
		return err
	}, effect: func(fsys vfs.FS) bool { return content(fsys, "f") == "X123456789" }},
	{kind: errorfs.OpWrite, setup: openF(vfs.WriteOnly | vfs.Append), call: func(_ vfs.FS, f vfs.File) error {
		_, err := f.Write([]byte("X"))
		return err
	}, effect: func(fsys vfs.FS) bool { return content(fsys, "f") == "0123456789X" }},
	{kind: errorfs.OpSync, setup: openF(vfs.ReadWrite), call: func(_ vfs.FS, f vfs.File) error { return f.Sync() }},
	{kind: errorfs.OpDatasync, setup: openF(vfs.ReadWrite), call: func(_ vfs.FS, f vfs.File) error { return f.Datasync() }},
	{kind: errorfs.OpStat, setup: openF(vfs.ReadOnly), call: func(fsys vfs.FS, _ vfs.File) error {
		_, err := fsys.Stat("f")
		return err
	}},
	{kind: errorfs.OpLstat, setup: openF(vfs.ReadOnly), call: func(fsys vfs.FS, _ vfs.File) error {
		_, err := fsys.Lstat("f")
		return err
	}},
	{kind: errorfs.OpFileStat, setup: openF(vfs.ReadOnly), call: func(_ vfs.FS, f vfs.File) error {
		_, err := f.Stat()
		return err
	}},
	{kind: errorfs.OpTruncate, setup: openF(vfs.ReadWrite), call: func(_ vfs.FS, f vfs.File) error {
		return f.Truncate(3)
	}, effect: func(fsys vfs.FS) bool { return content(fsys, "f") == "012" }},
	{kind: errorfs.OpClose, setup: openF(vfs.ReadWrite | vfs.Create), call: func(_ vfs.FS, f vfs.File) error { return f.Close() }},
	{kind: errorfs.OpLink, setup: openF(vfs.ReadOnly), call: func(fsys vfs.FS, _ vfs.File) error {
		return fsys.Link("f", "h")
	}, effect: func(fsys vfs.FS) bool { return exists(fsys, "h") }, link: true},
	{kind: errorfs.OpSymlink, setup: noFile, call: func(fsys vfs.FS, _ vfs.File) error {
		return fsys.Symlink("f", "l")
	}, effect: func(fsys vfs.FS) bool { return exists(fsys, "l") }, link: true},
	{kind: errorfs.OpReadlink, setup: func(base, _ vfs.FS) (vfs.File, error) { return nil, base.Symlink("f", "l") },
		call: func(fsys vfs.FS, _ vfs.File) error { _, err := fsys.Readlink("l"); return err }},
	{kind: errorfs.OpRename, setup: openF(vfs.ReadOnly), call: func(fsys vfs.FS, _ vfs.File) error {
		return fsys.Rename("f", "g")
	}, effect: func(fsys vfs.FS) bool { return exists(fsys, "g") }, link: true},
	{kind: errorfs.OpRemove, setup: openF(vfs.ReadOnly), call: func(fsys vfs.FS, _ vfs.File) error {
		return fsys.Remove("f")
	}, effect: func(fsys vfs.FS) bool { return !exists(fsys, "f") }},
	{kind: errorfs.OpMkdir, setup: noFile, call: func(fsys vfs.FS, _ vfs.File) error {
		return fsys.Mkdir("d", 0o755)
	}, effect: func(fsys vfs.FS) bool { return exists(fsys, "d") }},
	{kind: errorfs.OpReadDir, setup: noFile, call: func(fsys vfs.FS, _ vfs.File) error {
		_, err := fsys.ReadDir(".")
		return err
	}},
	{kind: errorfs.OpSyncDir, setup: noFile, call: func(fsys vfs.FS, _ vfs.File) error { return fsys.SyncDir(".") }},
	{kind: errorfs.OpStatFresh, setup: openF(vfs.ReadOnly), call: func(fsys vfs.FS, _ vfs.File) error {
		_, err := fsys.StatFresh("f")
		return err
	}},
}

// TestInjectEveryKind fails one kind at a time: the call returns the
// injected error in the right wrapper, and does not happen.
func TestInjectEveryKind(t *testing.T) {
	for _, c := range calls {
		t.Run(c.kind.String(), func(t *testing.T) {
			base := newOSFS(t)
			counter := &errorfs.Counter{Injector: errorfs.Inject(errorfs.Errno(syscall.EIO), errorfs.OnKind(c.kind))}
			fsys := errorfs.Wrap(base, counter)
			f, err := c.setup(base, fsys)
			if err != nil {
				t.Fatalf("setup: %v", err)
			}
			err = c.call(fsys, f)
			if !errors.Is(err, errorfs.ErrInjected) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("%v = %v, want the injected EIO", c.kind, err)
			}
			if c.link {
				var le *vfs.LinkError
				if !errors.As(err, &le) || le.Old == "" || le.New == "" {
					t.Errorf("%v error %v (%T), want a *vfs.LinkError", c.kind, err, err)
				}
			} else {
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path == "" || pe.Op == "" {
					t.Errorf("%v error %v (%T), want a *fs.PathError", c.kind, err, err)
				}
			}
			if n := counter.Count(); n != 1 {
				t.Errorf("Counter = %d, want 1", n)
			}
			if c.effect != nil && c.effect(base) {
				t.Errorf("the failed %v took effect", c.kind)
			}
			if f != nil && c.kind != errorfs.OpClose {
				if err := f.Close(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestDone checks that Done makes the call and then fails it, for every
// kind that leaves a trace.
func TestDone(t *testing.T) {
	for _, c := range calls {
		if c.effect == nil {
			continue
		}
		t.Run(c.kind.String(), func(t *testing.T) {
			base := newOSFS(t)
			fsys := errorfs.Wrap(base, errorfs.Inject(errorfs.Done(errorfs.Errno(syscall.ETIMEDOUT)), errorfs.OnKind(c.kind)))
			f, err := c.setup(base, fsys)
			if err != nil {
				t.Fatalf("setup: %v", err)
			}
			err = c.call(fsys, f)
			if !errors.Is(err, errorfs.ErrInjected) || !errors.Is(err, syscall.ETIMEDOUT) {
				t.Fatalf("%v = %v, want the injected ETIMEDOUT", c.kind, err)
			}
			if !c.effect(base) {
				t.Errorf("the %v did not happen", c.kind)
			}
			if f != nil {
				f.Close()
			}
		})
	}
}

// TestDoneRetransmittedCreate is N14: the exclusive create succeeded, the
// reply was lost, and the retransmission reports EEXIST.
func TestDoneRetransmittedCreate(t *testing.T) {
	base := newOSFS(t)
	fsys := errorfs.Wrap(base, errorfs.Inject(errorfs.Done(errorfs.Errno(syscall.EEXIST)), errorfs.OnKind(errorfs.OpCreate)))
	f, err := fsys.OpenFile("index.lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
	if f != nil || !errors.Is(err, fs.ErrExist) || !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("OpenFile = %v, %v; want no File and the injected EEXIST", f, err)
	}
	if !exists(base, "index.lock") {
		t.Errorf("the create did not happen")
	}
	// A real failure wins over Done's error.
	_, err = fsys.OpenFile("nodir/x", vfs.WriteOnly|vfs.Create, 0o644)
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, errorfs.ErrInjected) {
		t.Errorf("OpenFile in a missing directory = %v, want the real ENOENT", err)
	}
}

// TestCloseAlwaysCloses checks that an injected Close error still closes.
func TestCloseAlwaysCloses(t *testing.T) {
	toggle := &errorfs.Toggle{Injector: errorfs.Inject(errorfs.Errno(syscall.EIO), errorfs.OnKind(errorfs.OpClose))}
	toggle.On()
	fsys := errorfs.Wrap(newOSFS(t), toggle)
	f, err := fsys.OpenFile("f", vfs.ReadWrite|vfs.Create, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close = %v, want the injected EIO", err)
	}
	toggle.Off()
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("ReadAt after a failed Close = %v, want fs.ErrClosed", err)
	}
}

func TestErrno(t *testing.T) {
	err := &fs.PathError{Op: "open", Path: "f", Err: errorfs.Errno(syscall.EEXIST)}
	for _, target := range []error{errorfs.ErrInjected, syscall.EEXIST, fs.ErrExist} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOENT) {
		t.Errorf("%v matches ENOENT", err)
	}
	if vfstest.ErrClass(err) != "EEXIST" {
		t.Errorf("ErrClass(%v) = %q", err, vfstest.ErrClass(err))
	}
	if got, want := err.Error(), "open f: errorfs: injected file exists"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// opsOn runs a fixed sequence of calls through inj and returns, for each,
// whether it failed with an injected error.
func opsOn(t *testing.T, inj errorfs.Injector, paths []string, rounds int) []bool {
	t.Helper()
	fsys := errorfs.Wrap(newOSFS(t), inj)
	var hits []bool
	for i := range rounds {
		for _, p := range paths {
			var err error
			if i%2 == 0 {
				_, err = fsys.Stat(p)
			} else {
				err = fsys.Mkdir(p, 0o755)
			}
			if err != nil && !errors.Is(err, errorfs.ErrInjected) && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
				t.Fatalf("call %d on %s: %v", i, p, err)
			}
			hits = append(hits, errors.Is(err, errorfs.ErrInjected))
		}
	}
	return hits
}

// where lists the indexes that are true.
func where(hits []bool) []int {
	var idx []int
	for i, h := range hits {
		if h {
			idx = append(idx, i)
		}
	}
	return idx
}

// TestPredicates checks that each predicate fires exactly where chosen.
// opsOn makes, per round, one call on each path: Stat in even rounds and
// Mkdir in odd ones.
func TestPredicates(t *testing.T) {
	paths := []string{"a", "b", "c"}
	tests := []struct {
		name string
		inj  func() errorfs.Injector
		want []int
	}{
		{"Always", func() errorfs.Injector { return errorfs.Inject(errorfs.ErrInjected) }, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"OnKind", func() errorfs.Injector {
			return errorfs.Inject(errorfs.ErrInjected, errorfs.OnKind(errorfs.OpMkdir))
		}, []int{3, 4, 5, 9, 10, 11}},
		{"OnKindSeveral", func() errorfs.Injector {
			return errorfs.Inject(errorfs.ErrInjected, errorfs.OnKind(errorfs.OpMkdir, errorfs.OpStat))
		}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"OnPath", func() errorfs.Injector {
			return errorfs.Inject(errorfs.ErrInjected, errorfs.OnPath(func(p string) bool { return p == "b" }))
		}, []int{1, 4, 7, 10}},
		{"AtNth", func() errorfs.Injector { return errorfs.Inject(errorfs.ErrInjected, errorfs.AtNth(5)) }, []int{4}},
		{"AtNthMatching", func() errorfs.Injector {
			return errorfs.Inject(errorfs.ErrInjected, errorfs.OnPath(func(p string) bool { return p == "c" }), errorfs.AtNth(2))
		}, []int{5}},
		{"AtNthBeyond", func() errorfs.Injector { return errorfs.Inject(errorfs.ErrInjected, errorfs.AtNth(13)) }, nil},
		{"FromNth", func() errorfs.Injector {
			return errorfs.Inject(errorfs.ErrInjected, errorfs.OnKind(errorfs.OpStat), errorfs.FromNth(3))
		}, []int{2, 6, 7, 8}},
		{"AndOrder", func() errorfs.Injector {
			// AtNth first counts every op, so the 2nd op (on b) is not on a.
			return errorfs.Inject(errorfs.ErrInjected, errorfs.AtNth(2), errorfs.OnPath(func(p string) bool { return p == "a" }))
		}, nil},
		{"Any", func() errorfs.Injector {
			return errorfs.Any(
				errorfs.Inject(errorfs.ErrInjected, errorfs.OnPath(func(p string) bool { return p == "a" }), errorfs.AtNth(1)),
				errorfs.Inject(errorfs.ErrInjected, errorfs.AtNth(11)),
			)
		}, []int{0, 11}},
		{"RandomlyNever", func() errorfs.Injector { return errorfs.Inject(errorfs.ErrInjected, errorfs.Randomly(0, 1)) }, nil},
		{"RandomlyAlways", func() errorfs.Injector { return errorfs.Inject(errorfs.ErrInjected, errorfs.Randomly(1, 1)) },
			[]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := where(opsOn(t, tc.inj(), paths, 4)); !slices.Equal(got, tc.want) {
				t.Errorf("injected at %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRandomlyDeterministic checks that Randomly decides the same way for
// the same seed, differently for another, independently per path, at
// about the rate asked.
func TestRandomlyDeterministic(t *testing.T) {
	const n = 2000
	decide := func(p errorfs.Predicate, paths ...string) map[string][]bool {
		got := map[string][]bool{}
		for i := range n {
			path := paths[i%len(paths)]
			got[path] = append(got[path], p.Match(errorfs.Op{Kind: errorfs.OpWriteAt, Path: path}))
		}
		return got
	}
	a := decide(errorfs.Randomly(0.25, 42), "x")["x"]
	b := decide(errorfs.Randomly(0.25, 42), "x")["x"]
	c := decide(errorfs.Randomly(0.25, 43), "x")["x"]
	if !slices.Equal(a, b) {
		t.Errorf("the same seed gave different decisions")
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same %d decisions", n)
	}
	if hits := len(where(a)); hits < n/4-100 || hits > n/4+100 {
		t.Errorf("%d hits in %d at p=0.25", hits, n)
	}
	// Calls on other paths in between change nothing for x.
	mixed := decide(errorfs.Randomly(0.25, 42), "x", "y", "z", "y")
	if xs := mixed["x"]; !slices.Equal(xs, a[:len(xs)]) {
		t.Errorf("decisions on x changed when calls on other paths were interleaved")
	}
	if slices.Equal(mixed["y"][:len(mixed["z"])], mixed["z"]) {
		t.Errorf("paths y and z share a generator")
	}
}

func TestToggle(t *testing.T) {
	toggle := &errorfs.Toggle{Injector: errorfs.Inject(errorfs.ErrInjected)}
	fsys := errorfs.Wrap(newOSFS(t), toggle)
	stat := func() bool { _, err := fsys.Stat("."); return errors.Is(err, errorfs.ErrInjected) }
	var got []bool
	got = append(got, stat())
	toggle.On()
	got = append(got, stat(), stat())
	toggle.Off()
	got = append(got, stat())
	if want := []bool{false, true, true, false}; !slices.Equal(got, want) {
		t.Errorf("injected %v, want %v", got, want)
	}
}

// TestCounter checks that the Counter's count equals the injected errors
// the caller saw, under concurrent calls.
func TestCounter(t *testing.T) {
	counter := &errorfs.Counter{Injector: errorfs.Inject(errorfs.Errno(syscall.EIO), errorfs.Randomly(0.3, 7))}
	fsys := errorfs.Wrap(newOSFS(t), counter)
	var mu sync.Mutex
	seen := 0
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				_, err := fsys.Stat(fmt.Sprintf("p%d-%d", g, i%3))
				if errors.Is(err, errorfs.ErrInjected) {
					mu.Lock()
					seen++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if int64(seen) != counter.Count() || seen == 0 {
		t.Errorf("the caller saw %d injected errors, the Counter counted %d", seen, counter.Count())
	}
}

// TestWriteFault checks short and torn writes at byte, sector and page
// boundaries.
func TestWriteFault(t *testing.T) {
	const size = 3 * errorfs.PageSize
	tests := []struct {
		name     string
		off      int64
		n        int
		fault    errorfs.WriteFault
		wantN    int
		wantKept int
	}{
		{"ShortByte", 10, 100, errorfs.WriteFault{Keep: 37, Err: errorfs.Errno(syscall.ENOSPC)}, 37, 37},
		{"TornByte", 10, 100, errorfs.WriteFault{Keep: 37}, 100, 37},
		{"TornNothing", 10, 100, errorfs.WriteFault{Keep: 0}, 100, 0},
		{"KeepTooMuch", 10, 100, errorfs.WriteFault{Keep: 1000}, 100, 100},
		{"KeepNegative", 10, 100, errorfs.WriteFault{Keep: -5, Err: errorfs.ErrInjected}, 0, 0},
		// 100+1000 = 1100, down to the sector boundary 1024.
		{"TornSector", 100, 2000, errorfs.WriteFault{Keep: 1000, Align: errorfs.SectorSize}, 2000, 924},
		// Inside the first sector: nothing survives.
		{"TornSectorNone", 100, 2000, errorfs.WriteFault{Keep: 300, Align: errorfs.SectorSize}, 2000, 0},
		// 1000+7000 = 8000, down to the page boundary 4096.
		{"ShortPage", 1000, 8000, errorfs.WriteFault{Keep: 7000, Align: errorfs.PageSize, Err: errorfs.Errno(syscall.EIO)}, 3096, 3096},
		{"AlignedStart", 4096, 4096, errorfs.WriteFault{Keep: 4095, Align: errorfs.SectorSize}, 4096, 3584},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := newOSFS(t)
			old := strings.Repeat(".", size)
			if err := vfstest.WriteFile(base, "f", []byte(old)); err != nil {
				t.Fatal(err)
			}
			fault := tc.fault
			fsys := errorfs.Wrap(base, errorfs.Inject(&fault, errorfs.OnKind(errorfs.OpWriteAt)))
			f, err := fsys.OpenFile("f", vfs.ReadWrite, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p := []byte(strings.Repeat("#", tc.n))
			n, err := f.WriteAt(p, tc.off)
			if n != tc.wantN {
				t.Errorf("WriteAt = %d, want %d", n, tc.wantN)
			}
			switch {
			case tc.fault.Err == nil && err != nil:
				t.Errorf("a torn write reported %v", err)
			case tc.fault.Err != nil && (!errors.Is(err, tc.fault.Err) || !errors.Is(err, errorfs.ErrInjected)):
				t.Errorf("a short write reported %v, want %v", err, tc.fault.Err)
			case tc.fault.Err != nil:
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path != "f" {
					t.Errorf("error %v (%T), want a *fs.PathError", err, err)
				}
			}
			want := []byte(old)
			copy(want[tc.off:], p[:tc.wantKept])
			if got := content(base, "f"); got != string(want) {
				t.Errorf("the file does not hold exactly the first %d bytes of the write", tc.wantKept)
			}
		})
	}
}

func TestWriteFaultOnAppend(t *testing.T) {
	base := newOSFS(t)
	fsys := errorfs.Wrap(base, errorfs.Inject(&errorfs.WriteFault{Keep: 3}, errorfs.OnKind(errorfs.OpWrite), errorfs.AtNth(2)))
	f, err := fsys.OpenFile("log", vfs.WriteOnly|vfs.Create|vfs.Append, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, rec := range []string{"first;", "second;", "third;"} {
		if n, err := f.Write([]byte(rec)); err != nil || n != len(rec) {
			t.Fatalf("Write(%q) = %d, %v", rec, n, err)
		}
	}
	if got, want := content(base, "log"), "first;secthird;"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

// TestWriteFaultOtherKinds checks that a WriteFault answering another call
// is a plain error.
func TestWriteFaultOtherKinds(t *testing.T) {
	fsys := errorfs.Wrap(newOSFS(t), errorfs.Inject(&errorfs.WriteFault{Keep: 1}, errorfs.OnKind(errorfs.OpMkdir)))
	err := fsys.Mkdir("d", 0o755)
	var wf *errorfs.WriteFault
	if !errors.As(err, &wf) || !errors.Is(err, errorfs.ErrInjected) {
		t.Errorf("Mkdir = %v, want the WriteFault as an error", err)
	}
}

// TestRandomTearDeterministic checks that RandomTear cuts the same writes
// at the same places for the same seed, always at the alignment.
func TestRandomTearDeterministic(t *testing.T) {
	run := func(seed uint64) []string {
		base := newOSFS(t)
		// Another seed for Randomly: with the same one, both would draw
		// from equal streams on each path.
		inj := errorfs.If(errorfs.RandomTear(seed, errorfs.SectorSize, nil), errorfs.Randomly(0.5, seed+1000))
		fsys := errorfs.Wrap(base, inj)
		var files []string
		for i := range 8 {
			name := fmt.Sprintf("f%d", i%2)
			f, err := fsys.OpenFile(name, vfs.WriteOnly|vfs.Create|vfs.Truncate, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := f.WriteAt([]byte(strings.Repeat("x", 5000)), 0); err != nil || n != 5000 {
				t.Fatalf("WriteAt = %d, %v", n, err)
			}
			f.Close()
			fi, err := base.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size != 5000 && fi.Size%errorfs.SectorSize != 0 {
				t.Errorf("torn at %d, not at a sector boundary", fi.Size)
			}
			files = append(files, fmt.Sprint(fi.Size))
		}
		return files
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Errorf("seed 1 tore %v, then %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 tore alike: %v", a)
	}
	if !slices.ContainsFunc(a, func(s string) bool { return s != "5000" }) {
		t.Errorf("nothing was torn: %v", a)
	}
}

func TestHalfReadAt(t *testing.T) {
	base := newOSFS(t)
	if err := vfstest.WriteFile(base, "f", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	fsys := errorfs.WrapFiles(base, errorfs.HalfReadAt)
	f, err := fsys.OpenFile("f", vfs.ReadOnly, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		off     int64
		n       int
		want    string
		wantErr error
	}{
		{0, 10, "01234", io.EOF},
		{2, 5, "234", io.EOF},
		{9, 1, "9", nil},
		{8, 4, "89", io.EOF},
		{9, 4, "9", io.EOF},
		{0, 0, "", nil},
	} {
		p := make([]byte, tc.n)
		n, err := f.ReadAt(p, tc.off)
		if string(p[:n]) != tc.want || err != tc.wantErr {
			t.Errorf("ReadAt(%d bytes, %d) = %q, %v; want %q, %v", tc.n, tc.off, p[:n], err, tc.want, tc.wantErr)
		}
	}
	// A reader that trusts io.EOF sees a shorter file.
	if err := vfstest.WriteFile(base, "big", make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	if data, err := vfstest.ReadFile(fsys, "big"); err != nil || len(data) != 2048 {
		t.Errorf("ReadFile through HalfReadAt = %d bytes, %v; want the 2048 of the first half read", len(data), err)
	}
}

func TestDataErrReadAt(t *testing.T) {
	base := newOSFS(t)
	if err := vfstest.WriteFile(base, "f", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	f, err := base.OpenFile("f", vfs.ReadOnly, 0)
	if err != nil {
		t.Fatal(err)
	}
	f = errorfs.DataErrReadAt(f)
	defer f.Close()
	for _, tc := range []struct {
		off     int64
		n       int
		want    string
		wantErr error
	}{
		{0, 10, "0123456789", io.EOF},
		{0, 9, "012345678", nil},
		{5, 5, "56789", io.EOF},
		{5, 10, "56789", io.EOF},
		{10, 1, "", io.EOF},
		{3, 0, "", nil},
	} {
		p := make([]byte, tc.n)
		n, err := f.ReadAt(p, tc.off)
		if string(p[:n]) != tc.want || err != tc.wantErr {
			t.Errorf("ReadAt(%d bytes, %d) = %q, %v; want %q, %v", tc.n, tc.off, p[:n], err, tc.want, tc.wantErr)
		}
	}
}

func TestOpString(t *testing.T) {
	for _, tc := range []struct {
		op   errorfs.Op
		want string
	}{
		{errorfs.Op{Kind: errorfs.OpCreate, Path: "f", Flag: vfs.ReadWrite | vfs.Create}, `Create("f", 0102)`},
		{errorfs.Op{Kind: errorfs.OpWriteAt, Path: "f", Offset: 5, Len: 3}, `WriteAt("f", 3 bytes at 5)`},
		{errorfs.Op{Kind: errorfs.OpWrite, Path: "f", Offset: -1, Len: 3}, `Write("f", 3 bytes)`},
		{errorfs.Op{Kind: errorfs.OpTruncate, Path: "f", Offset: 9}, `Truncate("f", 9)`},
		{errorfs.Op{Kind: errorfs.OpRename, Path: "a", NewPath: "b"}, `Rename("a", "b")`},
		{errorfs.Op{Kind: errorfs.OpSyncDir, Path: "."}, `SyncDir(".")`},
		{errorfs.Op{Kind: errorfs.OpStatFresh, Path: "f"}, `StatFresh("f")`},
		{errorfs.Op{Kind: 99, Path: "x"}, `OpKind(99)("x")`},
	} {
		if got := tc.op.String(); got != tc.want {
			t.Errorf("String() = %s, want %s", got, tc.want)
		}
	}
}
