package osfs

import (
	"errors"
	"io"
	"io/fs"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFileMode(t *testing.T) {
	for _, tc := range []struct {
		st   uint32
		want fs.FileMode
	}{
		{unix.S_IFREG | 0o644, 0o644},
		{unix.S_IFDIR | 0o755, fs.ModeDir | 0o755},
		{unix.S_IFLNK | 0o777, fs.ModeSymlink | 0o777},
		{unix.S_IFIFO | 0o600, fs.ModeNamedPipe | 0o600},
		{unix.S_IFSOCK | 0o600, fs.ModeSocket | 0o600},
		{unix.S_IFBLK | 0o660, fs.ModeDevice | 0o660},
		{unix.S_IFCHR | 0o666, fs.ModeDevice | fs.ModeCharDevice | 0o666},
		{unix.S_IFREG | unix.S_ISUID | unix.S_ISGID | 0o755, fs.ModeSetuid | fs.ModeSetgid | 0o755},
		{unix.S_IFDIR | unix.S_ISVTX | 0o777, fs.ModeDir | fs.ModeSticky | 0o777},
	} {
		if got := fileMode(tc.st); got != tc.want {
			t.Errorf("fileMode(%#o) = %v, want %v", tc.st, got, tc.want)
		}
	}
	for _, perm := range []fs.FileMode{0o644, fs.ModeSetuid | 0o755, fs.ModeSetgid | fs.ModeSticky | 0o700} {
		if got := fileMode(unix.S_IFREG | syscallMode(perm)); got != perm {
			t.Errorf("fileMode(syscallMode(%v)) = %v", perm, got)
		}
	}
}

func TestRetryEINTR(t *testing.T) {
	calls := 0
	n, err := retry(func() (int, error) {
		calls++
		if calls < 3 {
			return 0, unix.EINTR
		}
		return 7, nil
	})
	if n != 7 || err != nil || calls != 3 {
		t.Errorf("retry = %d, %v after %d calls; want 7, nil after 3", n, err, calls)
	}
	// A call that is always interrupted is given up, not retried forever.
	calls = 0
	err = retry0(func() error { calls++; return unix.EINTR })
	if err != unix.EINTR || calls != maxEINTR {
		t.Errorf("retry0 = %v after %d calls; want EINTR after %d", err, calls, maxEINTR)
	}
}

func TestWriteAllShortWrites(t *testing.T) {
	p := []byte("0123456789")
	var got []byte
	// Two bytes a call, and one EINTR on the way.
	interrupted := false
	n, err := writeAll(p, func(q []byte) (int, error) {
		if len(got) == 4 && !interrupted {
			interrupted = true
			return 0, unix.EINTR
		}
		m := min(2, len(q))
		got = append(got, q[:m]...)
		return m, nil
	})
	if n != len(p) || err != nil || string(got) != string(p) {
		t.Errorf("writeAll = %d, %v, wrote %q", n, err, got)
	}
	// A write that stops making progress ends the loop.
	n, err = writeAll(p, func(q []byte) (int, error) { return 0, nil })
	if n != 0 || !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("writeAll without progress = %d, %v; want 0, io.ErrShortWrite", n, err)
	}
	// An error after a partial write reports the bytes written.
	n, err = writeAll(p, func(q []byte) (int, error) {
		if len(q) < len(p) {
			return 0, unix.ENOSPC
		}
		return 3, nil
	})
	if n != 3 || err != unix.ENOSPC {
		t.Errorf("writeAll with ENOSPC = %d, %v; want 3, ENOSPC", n, err)
	}
}
