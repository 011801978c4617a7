// Package vfstest checks that an implementation of vfs.FS behaves like a
// local POSIX file system where it must, in the spirit of
// testing/fstest.TestFS.
//
// TestFS runs one subtest per behaviour that every implementation shares
// with a local disk when there are no caches and no faults: package osfs on
// a local directory and package nfssim on a single host both pass it, so the
// simulator cannot drift from the real thing on what they must agree on
// (docs/design.md, "The seam"). It asserts nothing about permissions,
// owners, timestamps beyond "ModTime is set", or the sizes and link counts
// of directories, which differ between real file systems.
//
// The rest of the package is the building blocks of a differential property
// test (Op, OpGen, Runner, Result, Snapshot, ErrClass) and Differential,
// which uses them to run the same random operations on two file systems and
// compare every result and the final trees.
package vfstest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/nfsindex/nfsindex/vfs"
)

// TestFS runs the conformance suite. newFS must return an empty file system
// of its own for each subtest; it may register cleanups on the t it is
// given.
func TestFS(t *testing.T, newFS func(t *testing.T) vfs.FS) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newFS(t))
		})
	}
}

// testCase is one behaviour. run gets a testing.TB so that the package's
// own tests can run a case with a recorder and see it reject a broken FS.
type testCase struct {
	name string
	run  func(t testing.TB, fsys vfs.FS)
}

var cases = []testCase{
	{"CreateExcl", testCreateExcl},
	{"CreateExclConcurrent", testCreateExclConcurrent},
	{"CreateExisting", testCreateExisting},
	{"OpenTruncate", testOpenTruncate},
	{"OpenMissing", testOpenMissing},
	{"OpenInMissingDir", testOpenInMissingDir},
	{"Name", testName},
	{"ReadWriteAt", testReadWriteAt},
	{"ReadAtEOF", testReadAtEOF},
	{"Holes", testHoles},
	{"WriteAtKeepsBuffer", testWriteAtKeepsBuffer},
	{"WriteAtConcurrent", testWriteAtConcurrent},
	{"NegativeOffset", testNegativeOffset},
	{"AccessMode", testAccessMode},
	{"WriteAppend", testWriteAppend},
	{"WriteNoAppend", testWriteNoAppend},
	{"DSync", testDSync},
	{"Truncate", testTruncate},
	{"Sync", testSync},
	{"Stat", testStat},
	{"StatDir", testStatDir},
	{"StatMissing", testStatMissing},
	{"StatFresh", testStatFresh},
	{"LinkNlink", testLinkNlink},
	{"LinkErrors", testLinkErrors},
	{"Symlink", testSymlink},
	{"SymlinkRelative", testSymlinkRelative},
	{"SymlinkDangling", testSymlinkDangling},
	{"SymlinkErrors", testSymlinkErrors},
	{"Rename", testRename},
	{"RenameOverOpenFile", testRenameOverOpenFile},
	{"RenameMissing", testRenameMissing},
	{"RenameDir", testRenameDir},
	{"RenameOverNonEmptyDir", testRenameOverNonEmptyDir},
	{"Remove", testRemove},
	{"RemoveMissing", testRemoveMissing},
	{"RemoveNonEmptyDir", testRemoveNonEmptyDir},
	{"RemoveOpenFile", testRemoveOpenFile},
	{"RemoveSymlink", testRemoveSymlink},
	{"Mkdir", testMkdir},
	{"MkdirExisting", testMkdirExisting},
	{"MkdirMissingParent", testMkdirMissingParent},
	{"ReadDir", testReadDir},
	{"ReadDirErrors", testReadDirErrors},
	{"SyncDir", testSyncDir},
	{"Closed", testClosed},
	{"InvalidNames", testInvalidNames},
}

// Helpers. Each one fails the test with the step that went wrong.

// create makes name with data, checking every step.
func create(t testing.TB, fsys vfs.FS, name string, data string) {
	t.Helper()
	if err := WriteFile(fsys, name, []byte(data)); err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
}

func open(t testing.TB, fsys vfs.FS, name string, flag vfs.Flag) vfs.File {
	t.Helper()
	f, err := fsys.OpenFile(name, flag, 0o644)
	if err != nil {
		t.Fatalf("OpenFile(%q, %#o): %v", name, flag, err)
	}
	return f
}

func closeFile(t testing.TB, f vfs.File) {
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatalf("Close(%s): %v", f.Name(), err)
	}
}

// wantContent checks the whole content of name.
func wantContent(t testing.TB, fsys vfs.FS, name, want string) {
	t.Helper()
	got, err := ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	if string(got) != want {
		t.Fatalf("content of %s = %q, want %q", name, got, want)
	}
}

// readAll reads f from offset 0 to its end.
func readAll(t testing.TB, f vfs.File) string {
	t.Helper()
	data, err := readFrom(f)
	if err != nil {
		t.Fatalf("reading %s: %v", f.Name(), err)
	}
	return string(data)
}

func stat(t testing.TB, fsys vfs.FS, name string) vfs.FileInfo {
	t.Helper()
	fi, err := fsys.Stat(name)
	if err != nil {
		t.Fatalf("Stat(%q): %v", name, err)
	}
	return fi
}

func lstat(t testing.TB, fsys vfs.FS, name string) vfs.FileInfo {
	t.Helper()
	fi, err := fsys.Lstat(name)
	if err != nil {
		t.Fatalf("Lstat(%q): %v", name, err)
	}
	return fi
}

func mkdir(t testing.TB, fsys vfs.FS, name string) {
	t.Helper()
	if err := fsys.Mkdir(name, 0o755); err != nil {
		t.Fatalf("Mkdir(%q): %v", name, err)
	}
}

func wantExists(t testing.TB, fsys vfs.FS, name string, exists bool) {
	t.Helper()
	_, err := fsys.Lstat(name)
	switch {
	case exists && err != nil:
		t.Fatalf("Lstat(%q) = %v, want it to exist", name, err)
	case !exists && !errors.Is(err, fs.ErrNotExist):
		t.Fatalf("Lstat(%q) = %v, want fs.ErrNotExist", name, err)
	}
}

// wantPathError checks that err is an *fs.PathError for name carrying
// errno (any of errnos).
func wantPathError(t testing.TB, what string, err error, name string, errnos ...syscall.Errno) {
	t.Helper()
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %v (%T), want *fs.PathError", what, err, err)
	}
	if pe.Path != name {
		t.Errorf("%s: PathError.Path = %q, want %q", what, pe.Path, name)
	}
	if pe.Op == "" {
		t.Errorf("%s: PathError.Op is empty", what)
	}
	wantErrno(t, what, err, errnos...)
}

// wantLinkError checks that err is a *vfs.LinkError for oldname and newname
// carrying errno (any of errnos).
func wantLinkError(t testing.TB, what string, err error, oldname, newname string, errnos ...syscall.Errno) {
	t.Helper()
	var le *vfs.LinkError
	if !errors.As(err, &le) {
		t.Fatalf("%s: error %v (%T), want *vfs.LinkError", what, err, err)
	}
	if le.Old != oldname || le.New != newname {
		t.Errorf("%s: LinkError{Old: %q, New: %q}, want {%q, %q}", what, le.Old, le.New, oldname, newname)
	}
	if le.Op == "" {
		t.Errorf("%s: LinkError.Op is empty", what)
	}
	wantErrno(t, what, err, errnos...)
}

func wantErrno(t testing.TB, what string, err error, errnos ...syscall.Errno) {
	t.Helper()
	if len(errnos) == 0 {
		return
	}
	for _, e := range errnos {
		if errors.Is(err, e) {
			// The io/fs sentinels must match as the errno says.
			for _, sentinel := range []error{fs.ErrExist, fs.ErrNotExist, fs.ErrPermission} {
				if e.Is(sentinel) && !errors.Is(err, sentinel) {
					t.Errorf("%s: errors.Is(%v, %v) = false", what, err, sentinel)
				}
			}
			return
		}
	}
	t.Errorf("%s: error %v carries %s, want %v", what, err, ErrClass(err), errnos)
}

// sameInfo reports whether a and b describe the same file in the same
// state.
func sameInfo(a, b vfs.FileInfo) bool {
	return a.Name == b.Name && a.Size == b.Size && a.Mode == b.Mode && a.Ino == b.Ino &&
		a.Nlink == b.Nlink && a.ModTime.Equal(b.ModTime) && a.ChangeTime.Equal(b.ChangeTime)
}

// The cases, in the order of the list above.

func testCreateExcl(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create|vfs.Excl)
	closeFile(t, f)
	_, err := fsys.OpenFile("f", vfs.ReadWrite|vfs.Create|vfs.Excl, 0o644)
	wantPathError(t, "second exclusive create", err, "f", syscall.EEXIST)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("errors.Is(%v, fs.ErrExist) = false", err)
	}
	// Excl fails on any existing name, a directory or a symlink too.
	mkdir(t, fsys, "d")
	_, err = fsys.OpenFile("d", vfs.ReadWrite|vfs.Create|vfs.Excl, 0o644)
	wantPathError(t, "exclusive create over a directory", err, "d", syscall.EEXIST)
	if err := fsys.Symlink("missing", "l"); err != nil {
		t.Fatal(err)
	}
	_, err = fsys.OpenFile("l", vfs.ReadWrite|vfs.Create|vfs.Excl, 0o644)
	wantPathError(t, "exclusive create over a dangling symlink", err, "l", syscall.EEXIST)
	wantExists(t, fsys, "missing", false)
}

func testCreateExclConcurrent(t testing.TB, fsys vfs.FS) {
	const racers = 8
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			f, err := fsys.OpenFile("lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
			if err == nil {
				_, err = f.WriteAt([]byte{byte('a' + i)}, 0)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("racers %d and %d both created the file exclusively", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Fatalf("racer %d: %v, want fs.ErrExist", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no racer created the file")
	}
	wantContent(t, fsys, "lock", string(rune('a'+winner)))
}

func testCreateExisting(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "hello")
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create)
	if got := readAll(t, f); got != "hello" {
		t.Errorf("Create without Excl or Truncate changed the content to %q", got)
	}
	closeFile(t, f)
}

func testOpenTruncate(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "hello")
	f := open(t, fsys, "f", vfs.WriteOnly|vfs.Truncate)
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != 0 {
		t.Errorf("size after open with Truncate = %d, want 0", fi.Size)
	}
	closeFile(t, f)
	wantContent(t, fsys, "f", "")
}

func testOpenMissing(t testing.TB, fsys vfs.FS) {
	for _, flag := range []vfs.Flag{vfs.ReadOnly, vfs.WriteOnly, vfs.ReadWrite, vfs.ReadWrite | vfs.Truncate} {
		_, err := fsys.OpenFile("missing", flag, 0)
		wantPathError(t, fmt.Sprintf("open missing with %#o", flag), err, "missing", syscall.ENOENT)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
		}
	}
	wantExists(t, fsys, "missing", false)
}

func testOpenInMissingDir(t testing.TB, fsys vfs.FS) {
	_, err := fsys.OpenFile("nodir/f", vfs.ReadWrite|vfs.Create, 0o644)
	wantPathError(t, "create in a missing directory", err, "nodir/f", syscall.ENOENT)
	create(t, fsys, "file", "x")
	_, err = fsys.OpenFile("file/f", vfs.ReadWrite|vfs.Create, 0o644)
	wantPathError(t, "create below a regular file", err, "file/f", syscall.ENOTDIR)
}

func testName(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	f := open(t, fsys, "d/f", vfs.ReadWrite|vfs.Create)
	defer closeFile(t, f)
	if f.Name() != "d/f" {
		t.Errorf("Name() = %q, want %q", f.Name(), "d/f")
	}
}

func testReadWriteAt(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create)
	defer closeFile(t, f)
	writes := []struct {
		off  int64
		data string
	}{
		{0, "0123456789"},
		{3, "abc"},
		{10, "XY"},
		{8, "__"},
	}
	for _, w := range writes {
		n, err := f.WriteAt([]byte(w.data), w.off)
		if err != nil || n != len(w.data) {
			t.Fatalf("WriteAt(%q, %d) = %d, %v", w.data, w.off, n, err)
		}
	}
	const want = "012abc67__XY"
	for _, r := range []struct {
		off int64
		n   int
	}{{0, 12}, {3, 3}, {5, 5}, {11, 1}} {
		p := make([]byte, r.n)
		n, err := f.ReadAt(p, r.off)
		if err != nil && !(err == io.EOF && r.off+int64(r.n) == int64(len(want))) {
			t.Fatalf("ReadAt(%d bytes, %d) = %d, %v", r.n, r.off, n, err)
		}
		if n != r.n || string(p) != want[r.off:r.off+int64(r.n)] {
			t.Errorf("ReadAt(%d bytes, %d) = %d %q, want %q", r.n, r.off, n, p[:n], want[r.off:r.off+int64(r.n)])
		}
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != int64(len(want)) {
		t.Errorf("size = %d, want %d", fi.Size, len(want))
	}
	// Another File on the same name sees the writes.
	wantContent(t, fsys, "f", want)
}

func testReadAtEOF(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "hello")
	f := open(t, fsys, "f", vfs.ReadOnly)
	defer closeFile(t, f)

	// Straddling the end: the bytes there are, and io.EOF.
	p := make([]byte, 10)
	n, err := f.ReadAt(p, 2)
	if n != 3 || err != io.EOF || string(p[:n]) != "llo" {
		t.Errorf("ReadAt(10 bytes, 2) = %d %q, %v; want 3 \"llo\", io.EOF", n, p[:n], err)
	}
	// At and past the end: nothing, and io.EOF.
	for _, off := range []int64{5, 6, 1 << 20} {
		n, err := f.ReadAt(p, off)
		if n != 0 || err != io.EOF {
			t.Errorf("ReadAt(10 bytes, %d) = %d, %v; want 0, io.EOF", off, n, err)
		}
	}
	// Exactly up to the end: nil or io.EOF, as io.ReaderAt allows.
	n, err = f.ReadAt(p[:5], 0)
	if n != 5 || (err != nil && err != io.EOF) {
		t.Errorf("ReadAt(5 bytes, 0) = %d, %v; want 5, nil or io.EOF", n, err)
	}
}

func testHoles(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create)
	defer closeFile(t, f)
	const off = 3*4096 + 100 // across several pages
	if _, err := f.WriteAt([]byte("end"), off); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("start"), 0); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, off+3)
	n, err := f.ReadAt(p, 0)
	if n != len(p) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	want := make([]byte, off+3)
	copy(want, "start")
	copy(want[off:], "end")
	if !bytes.Equal(p, want) {
		t.Errorf("the hole does not read as zeros")
	}
}

func testWriteAtKeepsBuffer(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create)
	defer closeFile(t, f)
	p := []byte("do not touch")
	q := slices.Clone(p)
	if _, err := f.WriteAt(p, 7); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, q) {
		t.Errorf("WriteAt modified its argument: %q", p)
	}
}

func testWriteAtConcurrent(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create)
	defer closeFile(t, f)
	const writers, size = 8, 512
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, errs[i] = f.WriteAt(bytes.Repeat([]byte{byte('a' + i)}, size), int64(i*size))
		})
	}
	wg.Wait()
	var want []byte
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		want = append(want, bytes.Repeat([]byte{byte('a' + i)}, size)...)
	}
	if got := readAll(t, f); got != string(want) {
		t.Errorf("concurrent WriteAt of disjoint ranges lost bytes")
	}
}

func testNegativeOffset(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create)
	defer closeFile(t, f)
	if n, err := f.WriteAt([]byte("x"), -1); err == nil || n != 0 {
		t.Errorf("WriteAt at -1 = %d, %v; want 0 and an error", n, err)
	}
	if n, err := f.ReadAt(make([]byte, 1), -1); err == nil || err == io.EOF || n != 0 {
		t.Errorf("ReadAt at -1 = %d, %v; want 0 and an error other than io.EOF", n, err)
	}
}

func testAccessMode(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "data")
	r := open(t, fsys, "f", vfs.ReadOnly)
	defer closeFile(t, r)
	n, err := r.WriteAt([]byte("x"), 0)
	if n != 0 {
		t.Errorf("WriteAt on a ReadOnly file wrote %d bytes", n)
	}
	wantPathError(t, "WriteAt on a ReadOnly file", err, "f", syscall.EBADF)
	_, err = r.Write([]byte("x"))
	wantPathError(t, "Write on a ReadOnly file", err, "f", syscall.EBADF)
	err = r.Truncate(0)
	wantPathError(t, "Truncate on a ReadOnly file", err, "f", syscall.EBADF, syscall.EINVAL)

	w := open(t, fsys, "f", vfs.WriteOnly)
	defer closeFile(t, w)
	_, err = w.ReadAt(make([]byte, 1), 0)
	wantPathError(t, "ReadAt on a WriteOnly file", err, "f", syscall.EBADF)
	wantContent(t, fsys, "f", "data")
}

func testWriteAppend(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "start.")
	a := open(t, fsys, "f", vfs.WriteOnly|vfs.Append)
	defer closeFile(t, a)
	b := open(t, fsys, "f", vfs.ReadWrite|vfs.Append)
	defer closeFile(t, b)
	for _, w := range []struct {
		f    vfs.File
		data string
	}{{a, "a1."}, {b, "b1."}, {a, "a2."}} {
		if n, err := w.f.Write([]byte(w.data)); err != nil || n != len(w.data) {
			t.Fatalf("Write(%q) = %d, %v", w.data, n, err)
		}
	}
	wantContent(t, fsys, "f", "start.a1.b1.a2.")
	// The end moves with truncation too.
	if err := b.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, fsys, "f", "st!")
}

func testWriteNoAppend(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "xxxxxxxx")
	f := open(t, fsys, "f", vfs.ReadWrite)
	for _, s := range []string{"ab", "cd"} {
		if n, err := f.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	// The offset belongs to the File: WriteAt does not move it, and another
	// File starts at 0.
	if _, err := f.WriteAt([]byte("Z"), 7); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("e")); err != nil {
		t.Fatal(err)
	}
	closeFile(t, f)
	g := open(t, fsys, "f", vfs.WriteOnly)
	if _, err := g.Write([]byte("A")); err != nil {
		t.Fatal(err)
	}
	closeFile(t, g)
	wantContent(t, fsys, "f", "AbcdexxZ")
}

func testDSync(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create|vfs.DSync)
	if _, err := f.WriteAt([]byte("durable"), 0); err != nil {
		t.Fatal(err)
	}
	closeFile(t, f)
	wantContent(t, fsys, "f", "durable")
}

func testTruncate(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "0123456789")
	f := open(t, fsys, "f", vfs.ReadWrite)
	defer closeFile(t, f)
	for _, tc := range []struct {
		size int64
		want string
	}{
		{4, "0123"},
		{8, "0123\x00\x00\x00\x00"},
		{8, "0123\x00\x00\x00\x00"},
		{0, ""},
		{3, "\x00\x00\x00"},
	} {
		if err := f.Truncate(tc.size); err != nil {
			t.Fatalf("Truncate(%d): %v", tc.size, err)
		}
		if got := readAll(t, f); got != tc.want {
			t.Errorf("after Truncate(%d) content = %q, want %q", tc.size, got, tc.want)
		}
		if fi := stat(t, fsys, "f"); fi.Size != tc.size {
			t.Errorf("after Truncate(%d) Stat size = %d", tc.size, fi.Size)
		}
	}
	err := f.Truncate(-1)
	wantPathError(t, "Truncate(-1)", err, "f", syscall.EINVAL)
}

func testSync(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create)
	if _, err := f.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Datasync(); err != nil {
		t.Errorf("Datasync: %v", err)
	}
	if _, err := f.WriteAt([]byte("more"), 4); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
	closeFile(t, f)
	// A read-only File can be synced too (fsync(2) allows it).
	r := open(t, fsys, "f", vfs.ReadOnly)
	if err := r.Sync(); err != nil {
		t.Errorf("Sync of a ReadOnly file: %v", err)
	}
	closeFile(t, r)
	wantContent(t, fsys, "f", "datamore")
}

func testStat(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	create(t, fsys, "d/f", "12345")
	create(t, fsys, "g", "")
	fi := stat(t, fsys, "d/f")
	if fi.Name != "f" {
		t.Errorf("Name = %q, want the base name %q", fi.Name, "f")
	}
	if fi.Size != 5 {
		t.Errorf("Size = %d, want 5", fi.Size)
	}
	if !fi.Mode.IsRegular() || fi.IsDir() {
		t.Errorf("Mode = %v, want a regular file", fi.Mode)
	}
	if fi.ModTime.IsZero() {
		t.Errorf("ModTime is zero")
	}
	if fi.Nlink != 1 {
		t.Errorf("Nlink = %d, want 1", fi.Nlink)
	}
	if fi.Ino == 0 {
		t.Errorf("Ino = 0")
	}
	if gi := stat(t, fsys, "g"); gi.Ino == fi.Ino {
		t.Errorf("two files share Ino %d", fi.Ino)
	}
	if li := lstat(t, fsys, "d/f"); !sameInfo(li, fi) {
		t.Errorf("Lstat of a regular file = %+v, Stat = %+v", li, fi)
	}

	// The File's Stat agrees, and follows its writes.
	f := open(t, fsys, "d/f", vfs.ReadWrite)
	defer closeFile(t, f)
	ffi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if !sameInfo(ffi, fi) {
		t.Errorf("File.Stat = %+v, FS.Stat = %+v", ffi, fi)
	}
	if _, err := f.WriteAt([]byte("6789"), 5); err != nil {
		t.Fatal(err)
	}
	if ffi, err = f.Stat(); err != nil || ffi.Size != 9 {
		t.Errorf("File.Stat after a write: size %d, %v; want 9", ffi.Size, err)
	}
	if fi := stat(t, fsys, "d/f"); fi.Size != 9 {
		t.Errorf("FS.Stat after a write: size %d, want 9", fi.Size)
	}
}

func testStatDir(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	for _, name := range []string{"d", "."} {
		fi := stat(t, fsys, name)
		if !fi.IsDir() || fi.Mode.Type() != fs.ModeDir {
			t.Errorf("Stat(%q).Mode = %v, want a directory", name, fi.Mode)
		}
	}
	if fi := stat(t, fsys, "d"); fi.Name != "d" {
		t.Errorf("Stat(d).Name = %q", fi.Name)
	}
}

func testStatMissing(t testing.TB, fsys vfs.FS) {
	_, err := fsys.Stat("missing")
	wantPathError(t, "Stat of a missing name", err, "missing", syscall.ENOENT)
	_, err = fsys.Lstat("missing")
	wantPathError(t, "Lstat of a missing name", err, "missing", syscall.ENOENT)
	_, err = fsys.Stat("missing/f")
	wantPathError(t, "Stat in a missing directory", err, "missing/f", syscall.ENOENT)
}

// testStatFresh: with no cache in play (one host, one FS) StatFresh is
// Stat: it follows a final symlink, reports the same attributes, sees
// writes not yet synced or closed, and removals and replacements at once.
func testStatFresh(t testing.TB, fsys vfs.FS) {
	statFresh := func(name string) vfs.FileInfo {
		t.Helper()
		fi, err := fsys.StatFresh(name)
		if err != nil {
			t.Fatalf("StatFresh(%q): %v", name, err)
		}
		return fi
	}
	mkdir(t, fsys, "d")
	create(t, fsys, "d/f", "12345")
	fi := statFresh("d/f")
	if si := stat(t, fsys, "d/f"); !sameInfo(fi, si) {
		t.Errorf("StatFresh(d/f) = %+v, Stat = %+v", fi, si)
	}
	if fi.Name != "f" || fi.Size != 5 || !fi.Mode.IsRegular() || fi.Nlink != 1 || fi.Ino == 0 || fi.ModTime.IsZero() {
		t.Errorf("StatFresh(d/f) = %+v, want a regular file f of 5 bytes, one link", fi)
	}
	for _, name := range []string{"d", "."} {
		if di := statFresh(name); !di.IsDir() || di.Mode.Type() != fs.ModeDir {
			t.Errorf("StatFresh(%q).Mode = %v, want a directory", name, di.Mode)
		}
	}

	// A final symlink is followed, as by Stat.
	if err := fsys.Symlink("d/f", "l"); err != nil {
		t.Fatalf("Symlink: %v", err)
	}
	if li := statFresh("l"); li.Name != "l" || li.Ino != fi.Ino || !li.Mode.IsRegular() || li.Size != 5 {
		t.Errorf("StatFresh(l) = %+v, want the target's attributes %+v under the name l", li, fi)
	}
	if err := fsys.Symlink("nowhere", "dangling"); err != nil {
		t.Fatalf("Symlink: %v", err)
	}
	_, err := fsys.StatFresh("dangling")
	wantPathError(t, "StatFresh of a dangling symlink", err, "dangling", syscall.ENOENT)

	// A write through an open File, neither synced nor closed, shows.
	f := open(t, fsys, "d/f", vfs.ReadWrite)
	if _, err := f.WriteAt([]byte("6789"), 5); err != nil {
		t.Fatal(err)
	}
	if fi := statFresh("d/f"); fi.Size != 9 {
		t.Errorf("StatFresh after an unsynced write: size %d, want 9", fi.Size)
	}
	closeFile(t, f)

	// Replaced by rename: the new file; removed: ENOENT.
	create(t, fsys, "d/g", "new")
	gi := statFresh("d/g")
	if err := fsys.Rename("d/g", "d/f"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if ri := statFresh("d/f"); ri.Ino != gi.Ino || ri.Size != 3 {
		t.Errorf("StatFresh after rename over: %+v, want the renamed file %+v", ri, gi)
	}
	if err := fsys.Remove("d/f"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	_, err = fsys.StatFresh("d/f")
	wantPathError(t, "StatFresh of a removed name", err, "d/f", syscall.ENOENT)
	_, err = fsys.StatFresh("missing/f")
	wantPathError(t, "StatFresh in a missing directory", err, "missing/f", syscall.ENOENT)
}

func testLinkNlink(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "a", "shared")
	f := open(t, fsys, "a", vfs.ReadWrite)
	defer closeFile(t, f)
	if err := fsys.Link("a", "b"); err != nil {
		t.Fatalf("Link: %v", err)
	}
	ai, bi := stat(t, fsys, "a"), stat(t, fsys, "b")
	if ai.Nlink != 2 || bi.Nlink != 2 {
		t.Errorf("Nlink after Link = %d and %d, want 2", ai.Nlink, bi.Nlink)
	}
	if ai.Ino != bi.Ino {
		t.Errorf("hard links have Ino %d and %d", ai.Ino, bi.Ino)
	}
	if fi, err := f.Stat(); err != nil || fi.Nlink != 2 {
		t.Errorf("File.Stat after Link: Nlink %d, %v; want 2", fi.Nlink, err)
	}
	// One file: a write through one name shows through the other.
	if _, err := f.WriteAt([]byte("S"), 0); err != nil {
		t.Fatal(err)
	}
	wantContent(t, fsys, "b", "Shared")

	// Remove the name f was not opened through: on NFS, removing the open
	// name would silly-rename it instead (N17), keeping two links.
	if err := fsys.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if ai := stat(t, fsys, "a"); ai.Nlink != 1 {
		t.Errorf("Nlink after removing one link = %d, want 1", ai.Nlink)
	}
	if fi, err := f.Stat(); err != nil || fi.Nlink != 1 {
		t.Errorf("File.Stat after Remove: Nlink %d, %v; want 1", fi.Nlink, err)
	}
	wantContent(t, fsys, "a", "Shared")
}

func testLinkErrors(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "a", "1")
	create(t, fsys, "b", "2")
	err := fsys.Link("a", "b")
	wantLinkError(t, "Link onto an existing name", err, "a", "b", syscall.EEXIST)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("errors.Is(%v, fs.ErrExist) = false", err)
	}
	wantContent(t, fsys, "b", "2")
	err = fsys.Link("missing", "c")
	wantLinkError(t, "Link of a missing name", err, "missing", "c", syscall.ENOENT)
	wantExists(t, fsys, "c", false)
	err = fsys.Link("a", "nodir/c")
	wantLinkError(t, "Link into a missing directory", err, "a", "nodir/c", syscall.ENOENT)
	if fi := stat(t, fsys, "a"); fi.Nlink != 1 {
		t.Errorf("failed Links changed Nlink to %d", fi.Nlink)
	}
}

func testSymlink(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "target data")
	if err := fsys.Symlink("f", "l"); err != nil {
		t.Fatalf("Symlink: %v", err)
	}
	target, err := fsys.Readlink("l")
	if err != nil || target != "f" {
		t.Errorf("Readlink = %q, %v; want \"f\"", target, err)
	}
	li := lstat(t, fsys, "l")
	if li.Mode.Type() != fs.ModeSymlink {
		t.Errorf("Lstat(l).Mode = %v, want a symlink", li.Mode)
	}
	if li.Name != "l" {
		t.Errorf("Lstat(l).Name = %q", li.Name)
	}
	fi, si := stat(t, fsys, "f"), stat(t, fsys, "l")
	if !si.Mode.IsRegular() || si.Size != fi.Size || si.Ino != fi.Ino {
		t.Errorf("Stat(l) = %+v, want the target's %+v", si, fi)
	}
	if li.Ino == fi.Ino {
		t.Errorf("Lstat(l) has the target's Ino")
	}
	// Opening follows the link.
	wantContent(t, fsys, "l", "target data")
}

func testSymlinkRelative(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	create(t, fsys, "d/f", "in d")
	create(t, fsys, "f", "at root")
	// A relative target is resolved from the link's own directory.
	if err := fsys.Symlink("f", "d/l"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Symlink("../f", "d/up"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Symlink("d/f", "down"); err != nil {
		t.Fatal(err)
	}
	wantContent(t, fsys, "d/l", "in d")
	wantContent(t, fsys, "d/up", "at root")
	wantContent(t, fsys, "down", "in d")
	if target, err := fsys.Readlink("d/up"); err != nil || target != "../f" {
		t.Errorf("Readlink(d/up) = %q, %v; want the target as stored", target, err)
	}
}

func testSymlinkDangling(t testing.TB, fsys vfs.FS) {
	if err := fsys.Symlink("nowhere", "l"); err != nil {
		t.Fatal(err)
	}
	_, err := fsys.Stat("l")
	wantPathError(t, "Stat of a dangling symlink", err, "l", syscall.ENOENT)
	if li := lstat(t, fsys, "l"); li.Mode.Type() != fs.ModeSymlink {
		t.Errorf("Lstat of a dangling symlink: Mode %v", li.Mode)
	}
	_, err = fsys.OpenFile("l", vfs.ReadOnly, 0)
	wantPathError(t, "open of a dangling symlink", err, "l", syscall.ENOENT)
}

func testSymlinkErrors(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "x")
	err := fsys.Symlink("anything", "f")
	wantLinkError(t, "Symlink onto an existing name", err, "anything", "f", syscall.EEXIST)
	wantContent(t, fsys, "f", "x")
	_, err = fsys.Readlink("f")
	wantPathError(t, "Readlink of a regular file", err, "f", syscall.EINVAL)
	_, err = fsys.Readlink("missing")
	wantPathError(t, "Readlink of a missing name", err, "missing", syscall.ENOENT)
}

func testRename(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "a", "A")
	ai := stat(t, fsys, "a")
	if err := fsys.Rename("a", "b"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	wantExists(t, fsys, "a", false)
	wantContent(t, fsys, "b", "A")
	if bi := stat(t, fsys, "b"); bi.Ino != ai.Ino {
		t.Errorf("Rename changed Ino from %d to %d", ai.Ino, bi.Ino)
	}
	// Onto itself: nothing happens.
	if err := fsys.Rename("b", "b"); err != nil {
		t.Errorf("Rename onto itself: %v", err)
	}
	wantContent(t, fsys, "b", "A")
	// Into a directory.
	mkdir(t, fsys, "d")
	if err := fsys.Rename("b", "d/b"); err != nil {
		t.Fatal(err)
	}
	wantContent(t, fsys, "d/b", "A")
	wantExists(t, fsys, "b", false)
}

func testRenameOverOpenFile(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "new", "new content")
	create(t, fsys, "cur", "old content")
	old := open(t, fsys, "cur", vfs.ReadOnly)
	defer closeFile(t, old)
	oi, err := old.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.Rename("new", "cur"); err != nil {
		t.Fatalf("Rename over an existing file: %v", err)
	}
	wantExists(t, fsys, "new", false)
	wantContent(t, fsys, "cur", "new content")
	// The File opened before still reads the replaced file.
	if got := readAll(t, old); got != "old content" {
		t.Errorf("the open File of the replaced name reads %q, want the old content", got)
	}
	if ci := stat(t, fsys, "cur"); ci.Ino == oi.Ino {
		t.Errorf("the name still has the replaced file's Ino")
	}
}

func testRenameMissing(t testing.TB, fsys vfs.FS) {
	err := fsys.Rename("missing", "b")
	wantLinkError(t, "Rename of a missing name", err, "missing", "b", syscall.ENOENT)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	wantExists(t, fsys, "b", false)
	create(t, fsys, "a", "x")
	err = fsys.Rename("a", "nodir/b")
	wantLinkError(t, "Rename into a missing directory", err, "a", "nodir/b", syscall.ENOENT)
	wantContent(t, fsys, "a", "x")
}

func testRenameDir(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	create(t, fsys, "d/f", "inside")
	if err := fsys.Rename("d", "e"); err != nil {
		t.Fatal(err)
	}
	wantExists(t, fsys, "d", false)
	wantContent(t, fsys, "e/f", "inside")
	// Over an empty directory it replaces it.
	mkdir(t, fsys, "empty")
	if err := fsys.Rename("e", "empty"); err != nil {
		t.Fatalf("Rename over an empty directory: %v", err)
	}
	wantContent(t, fsys, "empty/f", "inside")
	// Into itself it cannot go.
	err := fsys.Rename("empty", "empty/sub")
	wantLinkError(t, "Rename of a directory into itself", err, "empty", "empty/sub", syscall.EINVAL)
}

func testRenameOverNonEmptyDir(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "a")
	mkdir(t, fsys, "b")
	create(t, fsys, "b/f", "x")
	err := fsys.Rename("a", "b")
	wantLinkError(t, "Rename over a non-empty directory", err, "a", "b", syscall.ENOTEMPTY, syscall.EEXIST)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("errors.Is(%v, fs.ErrExist) = false", err)
	}
	wantContent(t, fsys, "b/f", "x")
}

func testRemove(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "x")
	mkdir(t, fsys, "d")
	for _, name := range []string{"f", "d"} {
		if err := fsys.Remove(name); err != nil {
			t.Errorf("Remove(%q): %v", name, err)
		}
		wantExists(t, fsys, name, false)
	}
}

func testRemoveMissing(t testing.TB, fsys vfs.FS) {
	err := fsys.Remove("missing")
	wantPathError(t, "Remove of a missing name", err, "missing", syscall.ENOENT)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
}

func testRemoveNonEmptyDir(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	create(t, fsys, "d/f", "x")
	err := fsys.Remove("d")
	wantPathError(t, "Remove of a non-empty directory", err, "d", syscall.ENOTEMPTY, syscall.EEXIST)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("errors.Is(%v, fs.ErrExist) = false", err)
	}
	wantContent(t, fsys, "d/f", "x")
}

func testRemoveOpenFile(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "still here")
	f := open(t, fsys, "f", vfs.ReadWrite)
	defer closeFile(t, f)
	if err := fsys.Remove("f"); err != nil {
		t.Fatal(err)
	}
	wantExists(t, fsys, "f", false)
	// The open File keeps the file alive.
	if got := readAll(t, f); got != "still here" {
		t.Errorf("the open File of a removed name reads %q", got)
	}
	if _, err := f.WriteAt([]byte("S"), 0); err != nil {
		t.Errorf("WriteAt on a removed, open file: %v", err)
	}
	if got := readAll(t, f); got != "Still here" {
		t.Errorf("the open File of a removed name reads %q after a write", got)
	}
	// The name is free again.
	create(t, fsys, "f", "new")
	wantContent(t, fsys, "f", "new")
}

func testRemoveSymlink(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "target")
	if err := fsys.Symlink("f", "l"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("l"); err != nil {
		t.Fatal(err)
	}
	wantExists(t, fsys, "l", false)
	wantContent(t, fsys, "f", "target")
}

func testMkdir(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	mkdir(t, fsys, "d/e")
	create(t, fsys, "d/e/f", "deep")
	wantContent(t, fsys, "d/e/f", "deep")
	if fi := stat(t, fsys, "d/e"); !fi.IsDir() {
		t.Errorf("Mkdir made a %v", fi.Mode)
	}
}

func testMkdirExisting(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	create(t, fsys, "f", "x")
	if err := fsys.Symlink("nowhere", "l"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d", "f", "l", "."} {
		err := fsys.Mkdir(name, 0o755)
		wantPathError(t, "Mkdir of existing "+name, err, name, syscall.EEXIST)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("errors.Is(%v, fs.ErrExist) = false", err)
		}
	}
	wantContent(t, fsys, "f", "x")
}

func testMkdirMissingParent(t testing.TB, fsys vfs.FS) {
	err := fsys.Mkdir("a/b", 0o755)
	wantPathError(t, "Mkdir in a missing directory", err, "a/b", syscall.ENOENT)
	wantExists(t, fsys, "a", false)
}

func testReadDir(t testing.TB, fsys vfs.FS) {
	names, err := fsys.ReadDir(".")
	if err != nil || len(names) != 0 {
		t.Fatalf("ReadDir of an empty root = %q, %v", names, err)
	}
	// Created out of order, of every kind.
	for _, name := range []string{"m", "b", "z", "a"} {
		create(t, fsys, name, name)
	}
	mkdir(t, fsys, "dir")
	create(t, fsys, "dir/inner", "")
	if err := fsys.Symlink("nowhere", "link"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Link("a", "a2"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("m"); err != nil {
		t.Fatal(err)
	}
	names, err = fsys.ReadDir(".")
	if want := []string{"a", "a2", "b", "dir", "link", "z"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("ReadDir(.) = %q, %v; want %q", names, err, want)
	}
	names, err = fsys.ReadDir("dir")
	if want := []string{"inner"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("ReadDir(dir) = %q, %v; want %q", names, err, want)
	}
}

func testReadDirErrors(t testing.TB, fsys vfs.FS) {
	_, err := fsys.ReadDir("missing")
	wantPathError(t, "ReadDir of a missing name", err, "missing", syscall.ENOENT)
	create(t, fsys, "f", "")
	_, err = fsys.ReadDir("f")
	wantPathError(t, "ReadDir of a regular file", err, "f", syscall.ENOTDIR)
}

func testSyncDir(t testing.TB, fsys vfs.FS) {
	mkdir(t, fsys, "d")
	create(t, fsys, "d/f", "x")
	for _, name := range []string{".", "d"} {
		if err := fsys.SyncDir(name); err != nil {
			t.Errorf("SyncDir(%q): %v", name, err)
		}
	}
	err := fsys.SyncDir("missing")
	wantPathError(t, "SyncDir of a missing name", err, "missing", syscall.ENOENT)
}

func testClosed(t testing.TB, fsys vfs.FS) {
	f := open(t, fsys, "f", vfs.ReadWrite|vfs.Create|vfs.Append)
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	closeFile(t, f)
	calls := []struct {
		name string
		call func() error
	}{
		{"ReadAt", func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err }},
		{"WriteAt", func() error { _, err := f.WriteAt([]byte("y"), 0); return err }},
		{"Write", func() error { _, err := f.Write([]byte("y")); return err }},
		{"Sync", f.Sync},
		{"Datasync", f.Datasync},
		{"Stat", func() error { _, err := f.Stat(); return err }},
		{"Truncate", func() error { return f.Truncate(0) }},
		{"Close", f.Close},
	}
	for _, c := range calls {
		err := c.call()
		if !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s on a closed File = %v, want fs.ErrClosed", c.name, err)
			continue
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != "f" {
			t.Errorf("%s on a closed File = %v (%T), want a *fs.PathError for f", c.name, err, err)
		}
	}
	if f.Name() != "f" {
		t.Errorf("Name() after Close = %q", f.Name())
	}
	wantContent(t, fsys, "f", "x")
}

// testInvalidNames checks the one rule of names every FS shares: no name
// is absolute or climbs above the root. The error wraps fs.ErrInvalid
// (osfs) or EINVAL (what the kernel would say); implementations may reject
// more names than these.
func testInvalidNames(t testing.TB, fsys vfs.FS) {
	create(t, fsys, "f", "x")
	for _, name := range []string{"/f", "/", "..", "../f", "d/../../f", ""} {
		checks := []struct {
			op  string
			err func() error
		}{
			{"OpenFile", func() error { _, err := fsys.OpenFile(name, vfs.ReadWrite|vfs.Create, 0o644); return err }},
			{"Stat", func() error { _, err := fsys.Stat(name); return err }},
			{"Lstat", func() error { _, err := fsys.Lstat(name); return err }},
			{"StatFresh", func() error { _, err := fsys.StatFresh(name); return err }},
			{"Readlink", func() error { _, err := fsys.Readlink(name); return err }},
			{"Remove", func() error { return fsys.Remove(name) }},
			{"Mkdir", func() error { return fsys.Mkdir(name, 0o755) }},
			{"ReadDir", func() error { _, err := fsys.ReadDir(name); return err }},
			{"SyncDir", func() error { return fsys.SyncDir(name) }},
			{"Link from", func() error { return fsys.Link(name, "g") }},
			{"Link to", func() error { return fsys.Link("f", name) }},
			{"Rename from", func() error { return fsys.Rename(name, "g") }},
			{"Rename to", func() error { return fsys.Rename("f", name) }},
			{"Symlink", func() error { return fsys.Symlink("f", name) }},
		}
		for _, c := range checks {
			if err := c.err(); !errors.Is(err, fs.ErrInvalid) && !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s(%q) = %v, want fs.ErrInvalid or EINVAL", c.op, name, err)
			}
		}
	}
	wantContent(t, fsys, "f", "x")
	wantExists(t, fsys, "g", false)
}
