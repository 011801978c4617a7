package osfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
	"github.com/nfsindex/nfsindex/vfs/vfstest"
)

// newFS returns an FS on a new temporary directory, closed at the end of
// the test unless the test closed it.
func newFS(t *testing.T) vfs.FS {
	t.Helper()
	fsys, err := osfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fsys.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
			t.Errorf("closing the FS: %v", err)
		}
	})
	return fsys
}

// TestConformance runs the shared suite: osfs on a local directory is the
// reference every other FS is held to.
func TestConformance(t *testing.T) {
	vfstest.TestFS(t, newFS)
}

// TestDifferential runs random operations on two local directories: they
// must agree on every result, or the Runner itself is nondeterministic.
func TestDifferential(t *testing.T) {
	vfstest.Differential(t, newFS, newFS)
}

// TestStricterNames checks the names osfs rejects beyond the shared rule
// (io/fs.ValidPath): "." and ".." elements and empty elements, even when
// they stay inside the root.
func TestStricterNames(t *testing.T) {
	fsys := newFS(t)
	if err := vfstest.WriteFile(fsys, "f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"./f", "d/../f", "d//f", "d/", "d/.", "f/"} {
		if _, err := fsys.Stat(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Stat(%q) = %v, want fs.ErrInvalid", name, err)
		}
	}
	// The root itself is ".".
	if fi, err := fsys.Stat("."); err != nil || !fi.IsDir() {
		t.Errorf("Stat(.) = %+v, %v", fi, err)
	}
	// A symlink target is data: it may hold anything.
	if err := fsys.Symlink("/etc/../x/./y", "l"); err != nil {
		t.Fatalf("Symlink with an unusual target: %v", err)
	}
	if target, err := fsys.Readlink("l"); err != nil || target != "/etc/../x/./y" {
		t.Errorf("Readlink = %q, %v", target, err)
	}
}

func TestUnknownFlag(t *testing.T) {
	fsys := newFS(t)
	_, err := fsys.OpenFile("f", vfs.ReadWrite|vfs.Create|vfs.Flag(syscall.O_NONBLOCK), 0o644)
	if !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("OpenFile with O_NONBLOCK = %v, want fs.ErrInvalid", err)
	}
	if _, err := fsys.Stat("f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a rejected OpenFile created the file: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		root string
		want error
	}{
		{filepath.Join(dir, "missing"), syscall.ENOENT},
		{file, syscall.ENOTDIR},
	} {
		_, err := osfs.New(tc.root)
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != tc.root || !errors.Is(err, tc.want) {
			t.Errorf("New(%q) = %v, want a PathError carrying %v", tc.root, err, tc.want)
		}
	}
}

func TestClosedFS(t *testing.T) {
	fsys, err := osfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.OpenFile("f", vfs.ReadWrite|vfs.Create, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close = %v, want fs.ErrClosed", err)
	}
	if _, err := fsys.Stat("f"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Stat on a closed FS = %v, want fs.ErrClosed", err)
	}
	if err := fsys.Rename("f", "g"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Rename on a closed FS = %v, want fs.ErrClosed", err)
	}
	if _, err := fsys.StatFresh("f"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("StatFresh on a closed FS = %v, want fs.ErrClosed", err)
	}
	// Files opened before stay usable.
	if _, err := f.WriteAt([]byte("x"), 0); err != nil {
		t.Errorf("WriteAt on a File of a closed FS: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

// TestRootMoved checks that the FS follows the directory it opened, not
// the name it was given.
func TestRootMoved(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	fsys, err := osfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if fsys.Root() != root {
		t.Errorf("Root() = %q, want %q", fsys.Root(), root)
	}
	moved := filepath.Join(parent, "moved")
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	if err := vfstest.WriteFile(fsys, "f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(moved, "f")); err != nil || string(data) != "x" {
		t.Errorf("the file is not in the moved root: %q, %v", data, err)
	}
}

// TestAgainstOS checks what osfs reports against package os on the same
// files: the mode bits, times, inode numbers and link counts that the
// shared suite cannot pin down.
func TestAgainstOS(t *testing.T) {
	root := t.TempDir()
	fsys, err := osfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f, err := fsys.OpenFile("f", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		fsys.Mkdir("d", 0o750),
		fsys.Symlink("f", "l"),
		fsys.Link("f", "h"),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	for _, name := range []string{"f", "d", "l", "h", "."} {
		got, err := fsys.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		st := want.Sys().(*syscall.Stat_t)
		if got.Name != want.Name() && name != "." {
			t.Errorf("%s: Name %q, os says %q", name, got.Name, want.Name())
		}
		if got.Mode != want.Mode() {
			t.Errorf("%s: Mode %v, os says %v", name, got.Mode, want.Mode())
		}
		if !got.IsDir() && got.Size != want.Size() {
			t.Errorf("%s: Size %d, os says %d", name, got.Size, want.Size())
		}
		if !got.ModTime.Equal(want.ModTime()) {
			t.Errorf("%s: ModTime %v, os says %v", name, got.ModTime, want.ModTime())
		}
		if got.ChangeTime.IsZero() || got.ChangeTime.Before(got.ModTime) {
			t.Errorf("%s: ChangeTime %v before ModTime %v", name, got.ChangeTime, got.ModTime)
		}
		if got.Ino != st.Ino || got.Nlink != uint64(st.Nlink) {
			t.Errorf("%s: Ino %d Nlink %d, os says %d %d", name, got.Ino, got.Nlink, st.Ino, st.Nlink)
		}
	}
	if fi, _ := fsys.Lstat("l"); fi.Size != int64(len("f")) {
		t.Errorf("a symlink's Lstat size = %d, want the length of its target", fi.Size)
	}
	// StatFresh (statx on Linux) reports what os.Stat and Stat (fstatat)
	// do, link followed, to the nanosecond.
	for _, name := range []string{"f", "d", "l", "h", "."} {
		got, err := fsys.StatFresh(name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Stat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		st := want.Sys().(*syscall.Stat_t)
		if got.Mode != want.Mode() || (!got.IsDir() && got.Size != want.Size()) ||
			!got.ModTime.Equal(want.ModTime()) || got.Ino != st.Ino || got.Nlink != uint64(st.Nlink) {
			t.Errorf("StatFresh(%s) = %+v, os.Stat says %+v", name, got, want)
		}
		if fi, err := fsys.Stat(name); err != nil || !fi.ChangeTime.Equal(got.ChangeTime) || fi.Name != got.Name {
			t.Errorf("StatFresh(%s) = %+v, Stat = %+v, %v", name, got, fi, err)
		}
	}
}

func TestLongSymlink(t *testing.T) {
	fsys := newFS(t)
	target := strings.Repeat("long-component/", 200)[:3000] // beyond Readlink's first buffer
	if err := fsys.Symlink(target, "l"); err != nil {
		t.Fatal(err)
	}
	if got, err := fsys.Readlink("l"); err != nil || got != target {
		t.Errorf("Readlink = %d bytes, %v; want %d bytes", len(got), err, len(target))
	}
}

func TestReadDirLarge(t *testing.T) {
	fsys := newFS(t)
	var want []string
	for i := range 1000 { // more entries than one getdents buffer holds
		name := strings.Repeat("n", 40) + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if err := vfstest.WriteFile(fsys, name, nil); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	got, err := fsys.ReadDir(".")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ReadDir = %d names, %v; want %d sorted names", len(got), err, len(want))
	}
}

// TestSymlinkLeavesRoot documents that the root confines names, not
// symbolic links: the kernel follows a link out of it.
func TestSymlinkLeavesRoot(t *testing.T) {
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("out"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	fsys, err := osfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if err := fsys.Symlink("../outside", "l"); err != nil {
		t.Fatal(err)
	}
	if data, err := vfstest.ReadFile(fsys, "l"); err != nil || string(data) != "out" {
		t.Errorf("reading through a link out of the root: %q, %v", data, err)
	}
}

// TestEmptyIO checks that an empty ReadAt or WriteAt still asks the
// kernel, which checks the descriptor's access mode (a difference the
// differential test found: osfs used to skip the call).
func TestEmptyIO(t *testing.T) {
	fsys := newFS(t)
	w, err := fsys.OpenFile("f", vfs.WriteOnly|vfs.Create, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n, err := w.ReadAt(nil, 0); n != 0 || !errors.Is(err, syscall.EBADF) {
		t.Errorf("empty ReadAt on a WriteOnly file = %d, %v; want EBADF", n, err)
	}
	if n, err := w.WriteAt(nil, 0); n != 0 || err != nil {
		t.Errorf("empty WriteAt on a WriteOnly file = %d, %v; want 0, nil", n, err)
	}
	r, err := fsys.OpenFile("f", vfs.ReadOnly, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.WriteAt(nil, 0); n != 0 || !errors.Is(err, syscall.EBADF) {
		t.Errorf("empty WriteAt on a ReadOnly file = %d, %v; want EBADF", n, err)
	}
	if n, err := r.Write(nil); n != 0 || !errors.Is(err, syscall.EBADF) {
		t.Errorf("empty Write on a ReadOnly file = %d, %v; want EBADF", n, err)
	}
	if n, err := r.ReadAt(nil, 100); n != 0 || err != nil {
		t.Errorf("empty ReadAt past the end = %d, %v; want 0, nil", n, err)
	}
}

func TestNewTemp(t *testing.T) {
	fsys, err := osfs.NewTemp("osfs-test")
	if err != nil {
		t.Fatal(err)
	}
	root := fsys.Root()
	if err := fsys.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := vfstest.WriteFile(fsys, "d/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary root is still there after Close: %v", err)
	}
}
