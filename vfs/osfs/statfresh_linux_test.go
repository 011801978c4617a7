package osfs

import (
	"errors"
	"io/fs"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nfsindex/nfsindex/vfs"
)

// TestStatFreshWithoutStatx plays a kernel without statx(2) (ENOSYS) and
// one whose seccomp filter refuses it (EPERM): StatFresh falls back to
// open+fstat+close, remembers it, and answers as Stat does.
func TestStatFreshWithoutStatx(t *testing.T) {
	for _, errno := range []unix.Errno{unix.ENOSYS, unix.EPERM} {
		t.Run(errno.Error(), func(t *testing.T) {
			calls := 0
			statx = func(int, string, int, int, *unix.Statx_t) error { calls++; return errno }
			t.Cleanup(func() { statx = unix.Statx; noStatx.Store(false) })
			fsys, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()
			f, err := fsys.OpenFile("f", vfs.WriteOnly|vfs.Create, 0o200) // write-only: the open fallback needs read permission, root has it anyway
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("12345"), 0); err != nil {
				t.Fatal(err)
			}
			// Unsynced and still open: the fallback sees it too.
			for _, step := range []error{fsys.Mkdir("d", 0o755), fsys.Symlink("f", "l"), fsys.Symlink("nowhere", "dangling")} {
				if step != nil {
					t.Fatal(step)
				}
			}
			if unix.Geteuid() == 0 {
				for _, name := range []string{"f", "d", "l", "."} {
					got, err := fsys.StatFresh(name)
					want, werr := fsys.Stat(name)
					if err != nil || werr != nil || got != want {
						t.Errorf("StatFresh(%s) = %+v, %v; Stat = %+v, %v", name, got, err, want, werr)
					}
				}
			} else {
				_, err := fsys.StatFresh("f")
				if !errors.Is(err, fs.ErrPermission) {
					t.Errorf("StatFresh of a write-only file through open = %v, want EACCES", err)
				}
			}
			for _, name := range []string{"missing", "dangling"} {
				if _, err := fsys.StatFresh(name); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("StatFresh(%s) = %v, want fs.ErrNotExist", name, err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if calls != 1 || !noStatx.Load() {
				t.Errorf("statx was tried %d times (fallback remembered: %v), want once", calls, noStatx.Load())
			}
		})
	}
}

// TestStatFreshForcesSync pins the flag that makes StatFresh what it is:
// a local file system ignores AT_STATX_FORCE_SYNC, so nothing else on a
// local disk would notice it missing (e2e/run calib measures its effect
// on the real NFS client).
func TestStatFreshForcesSync(t *testing.T) {
	var flags []int
	statx = func(dirfd int, path string, fl int, mask int, stx *unix.Statx_t) error {
		flags = append(flags, fl)
		return unix.Statx(dirfd, path, fl, mask, stx)
	}
	t.Cleanup(func() { statx = unix.Statx })
	fsys, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if _, err := fsys.StatFresh("."); err != nil {
		t.Fatal(err)
	}
	if len(flags) != 1 || flags[0] != unix.AT_STATX_FORCE_SYNC {
		t.Errorf("statx flags %#x, want exactly AT_STATX_FORCE_SYNC (%#x): follow a final symlink, bypass the cache", flags, unix.AT_STATX_FORCE_SYNC)
	}
}
