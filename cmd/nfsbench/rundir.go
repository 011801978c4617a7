package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// inputError is bad input that is not a flag's syntax (a missing or
// unwritable directory, a directory that is not ours): exit status 2.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

func inputf(format string, args ...any) error {
	return &inputError{err: fmt.Errorf(format, args...)}
}

// checkDir checks that dir is an existing directory this process can
// create files in.
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return inputf("-dir %s: no such directory (nfsbench does not create it: give an existing directory, for example on the NFS mount to measure)", dir)
	case err != nil:
		return inputf("-dir %s: %v", dir, err)
	case !st.IsDir():
		return inputf("-dir %s: not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".nfsbench-probe-*")
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && (errno == syscall.EACCES || errno == syscall.EPERM || errno == syscall.EROFS) {
			return inputf("-dir %s: not writable (%v): nfsbench creates its files there", dir, errno)
		}
		return inputf("-dir %s: cannot create a file there: %v", dir, err)
	}
	probe := f.Name()
	f.Close()
	if err := os.Remove(probe); err != nil {
		return inputf("-dir %s: cannot remove the file it created: %v", dir, err)
	}
	return nil
}

// runDirName is the run's directory under -dir.
func runDirName(id string) string { return "nfsbench-" + id }

// ourNames are the names nfsbench makes in a run's directory.
var ourNames = regexp.MustCompile(`^(mbox|mixed|barrier|slot\.[0-9]+|log\.[A-Za-z0-9._-]+\.jsonl|floor\.[a-z-]+|baselines|\.nfsbench-probe-[0-9]+)$`)

// prepareRunDir creates PATH/nfsbench-ID. A single-host run needs it new;
// the hosts of a multi-host run share it, so it may exist, but then it
// must hold nothing but nfsbench's own names.
func prepareRunDir(dir, id string, shared bool) (string, error) {
	p := filepath.Join(dir, runDirName(id))
	err := os.Mkdir(p, 0o755)
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", inputf("creating %s: %v", p, err)
	}
	if !shared {
		return "", inputf("%s exists: it holds an earlier run; choose another -run-id or remove it", p)
	}
	if err := checkRunDir(p); err != nil {
		return "", err
	}
	return p, nil
}

// checkRunDir rejects a directory holding a name nfsbench does not make.
func checkRunDir(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return inputf("%s: %v", p, err)
	}
	if !st.IsDir() {
		return inputf("%s: not a directory", p)
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return inputf("%s: %v", p, err)
	}
	for _, e := range ents {
		if !ourNames.MatchString(e.Name()) {
			return inputf("%s holds %q, which nfsbench does not make: it is not an nfsbench run directory (choose another -run-id)", p, e.Name())
		}
	}
	return nil
}

// engineNames are the names of an engine index directory
// (docs/design.md 8e): records, tails, snapshots, the rename package's
// compaction claim (index.lock/), private claim directories, clock probes
// and readers' pins, and a host's field log with its temporary name.
var engineNames = regexp.MustCompile(`^(t\.[0-9]+\.[0-9]+|tail\.[0-9]+(\.[0-9a-f]{16})?|index\.[0-9]+|index\.lock|` +
	`index\.(claim|probe)\.[0-9a-f]{16}|index\.[0-9]+\.pin\.[0-9a-f]{16}|(\.creating\.)?log\..+)$`)

// indexNames are the names that show an index is there.
var indexNames = regexp.MustCompile(`^(tail\.[0-9]+(\.[0-9a-f]{16})?|index\.[0-9]+)$`)

// checkIndexDir tells whether p holds an index: it must exist and hold a
// tail or a snapshot, and nothing the engine does not make.
func checkIndexDir(p string) error {
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return inputf("%s: no index there (did any host of this run start?)", p)
	}
	if err != nil {
		return inputf("%s: %v", p, err)
	}
	found := false
	for _, e := range ents {
		n := e.Name()
		if !engineNames.MatchString(n) {
			return inputf("%s holds %q: not an nfsindex index directory", p, n)
		}
		found = found || indexNames.MatchString(n)
	}
	if !found {
		return inputf("%s: not an nfsindex index (no tail.<gen> or index.<gen>)", p)
	}
	return nil
}

// barrier makes the hosts of a multi-host run start together. Each host
// claims the first free slot.<k> by exclusive create (decided at the NFS
// server), then writes byte k of the file "barrier" with O_SYNC. Slots are
// claimed in order, so the barrier's size reaches n only once the n-th
// host has arrived. Waiting hosts reopen the file to read its size:
// close-to-open makes each open revalidate it (one GETATTR), and a size
// that only grows is seen even where timestamps are coarse. No host looks
// up a name that may not exist yet, so the negative lookup cache cannot
// hide an arrival (the engine's own rule, docs/design.md 8e).
func barrier(ctx context.Context, runDir, host string, n int, timeout time.Duration, status func(string)) (int, error) {
	slot := -1
	for k := range n {
		p := filepath.Join(runDir, "slot."+strconv.Itoa(k))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("barrier: %w", err)
		}
		_, werr := f.WriteString(host + "\n")
		cerr := f.Close()
		if werr != nil || cerr != nil {
			return -1, fmt.Errorf("barrier: writing %s: %v %v", p, werr, cerr)
		}
		slot = k
		break
	}
	if slot < 0 {
		return -1, inputf("barrier: all %d slots of this run are taken: more hosts than -hosts %d joined, or -run-id names a finished run", n, n)
	}
	bp := filepath.Join(runDir, "barrier")
	f, err := os.OpenFile(bp, os.O_WRONLY|os.O_CREATE|os.O_SYNC, 0o644)
	if err != nil {
		return slot, fmt.Errorf("barrier: %w", err)
	}
	_, werr := f.WriteAt([]byte{1}, int64(slot))
	cerr := f.Close()
	if werr != nil || cerr != nil {
		return slot, fmt.Errorf("barrier: writing %s: %v %v", bp, werr, cerr)
	}
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		f, err := os.Open(bp)
		if err != nil {
			return slot, fmt.Errorf("barrier: %w", err)
		}
		st, err := f.Stat()
		f.Close()
		if err != nil {
			return slot, fmt.Errorf("barrier: %w", err)
		}
		if st.Size() >= int64(n) {
			return slot, nil
		}
		if time.Now().After(deadline) {
			return slot, fmt.Errorf("barrier: %d of %d hosts arrived in %v (-barrier-timeout)", st.Size(), n, timeout)
		}
		if i%20 == 0 {
			status(fmt.Sprintf("waiting at the barrier: %d of %d hosts", st.Size(), n))
		}
		select {
		case <-ctx.Done():
			return slot, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
