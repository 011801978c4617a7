package nfssim

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"

	"github.com/nfsindex/nfsindex/vfs"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized nfssim tests (0: a fixed list)")

// tb is the part of testing.TB the anomaly checks use, so that they can
// also run under a recorder that expects them to fail.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// recorder is a tb that records failure instead of reporting it.
type recorder struct {
	mu     sync.Mutex
	failed bool
	msgs   []string
}

func (r *recorder) Helper() {}
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Errorf(format string, args ...any) {
	r.Logf(format, args...)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// runRecorded runs check in its own goroutine (Fatalf ends it) and
// reports whether it failed.
func runRecorded(check func(tb)) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return r
}

// newSim returns a simulation with default knobs and the given anomalies
// switched off; mutate adjusts the configuration.
func newSim(t tb, off Anomalies, mutate func(*Config)) *Sim {
	t.Helper()
	cfg := DefaultConfig(1)
	cfg.Disable = off
	if mutate != nil {
		mutate(&cfg)
	}
	return New(cfg)
}

func addHost(t tb, s *Sim, name string, mutate func(*Mount)) *Host {
	t.Helper()
	m := DefaultMount()
	if mutate != nil {
		mutate(&m)
	}
	h, err := s.AddHost(name, m)
	if err != nil {
		t.Fatalf("AddHost(%s): %v", name, err)
	}
	return h
}

// writeFile creates or truncates name and writes data, then closes it
// (close-to-open publishes it).
func writeFile(t tb, f vfs.FS, name string, data []byte) {
	t.Helper()
	fd, err := f.OpenFile(name, vfs.WriteOnly|vfs.Create|vfs.Truncate, 0o644)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := fd.WriteAt(data, 0); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := fd.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

// readFD reads a whole file through an open descriptor.
func readFD(t tb, fd vfs.File) ([]byte, error) {
	t.Helper()
	var out []byte
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := fd.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// readFile opens, reads and closes name.
func readFile(t tb, f vfs.FS, name string) []byte {
	t.Helper()
	fd, err := f.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer fd.Close()
	b, err := readFD(t, fd)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func openFile(t tb, f vfs.FS, name string, flag vfs.Flag) vfs.File {
	t.Helper()
	fd, err := f.OpenFile(name, flag, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return fd
}

func must(t tb, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantContent(t tb, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, trunc(got), trunc(want))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return append(append([]byte(nil), b[:40]...), "..."...)
	}
	return b
}

func wantErr(t tb, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

var _ = fs.ErrExist
