package engine

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/errorfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// opLog records, in order, the calls of one commit that matter for its
// durability: the record's symlink, the directory sync, the tail's open
// (with its flags) and its publish write.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) MaybeError(op errorfs.Op) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case op.Kind == errorfs.OpSymlink:
		l.ops = append(l.ops, "symlink")
	case op.Kind == errorfs.OpSyncDir:
		l.ops = append(l.ops, "syncdir")
	case op.Kind == errorfs.OpOpen && strings.Contains(op.Path, tailPrefix) && op.Flag.Has(vfs.WriteOnly):
		if op.Flag.Has(vfs.DSync) {
			l.ops = append(l.ops, "open-dsync")
		} else {
			l.ops = append(l.ops, "open")
		}
	case op.Kind == errorfs.OpWriteAt && strings.Contains(op.Path, tailPrefix):
		l.ops = append(l.ops, "publish")
	}
	return nil
}

// TestSingleKernelSyncsDirBeforePublish (I15): with SingleKernel the
// publish is an unsynced write, so the record must be durable before it
// becomes visible: the directory sync comes between the symlink and the
// publish. Without SingleKernel the tail is opened O_DSYNC.
func TestSingleKernelSyncsDirBeforePublish(t *testing.T) {
	for _, single := range []bool{true, false} {
		base, err := osfs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		l := &opLog{}
		m, err := Open(context.Background(), Options{FS: errorfs.Wrap(base, l), Dir: "mbox", Host: "local", SingleKernel: single})
		if err != nil {
			t.Fatal(err)
		}
		tx := m.Begin()
		tx.Append(NewMessage{Flags: Seen})
		l.mu.Lock()
		l.ops = nil
		l.mu.Unlock()
		if _, err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		m.Close()
		want := "symlink syncdir publish" // the tail stays open from Open's create
		if got := strings.Join(l.ops, " "); got != want {
			t.Errorf("SingleKernel %v: commit calls %q, want %q", single, got, want)
		}
		// The tail's flags, seen when a new Mailbox opens it to publish.
		l.ops = nil
		m, err = Open(context.Background(), Options{FS: errorfs.Wrap(base, l), Dir: "mbox", Host: "local", SingleKernel: single})
		if err != nil {
			t.Fatal(err)
		}
		tx = m.Begin()
		tx.SetFlags(1, Flagged, 0)
		if _, err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		m.Close()
		open := "open-dsync"
		if single {
			open = "open"
		}
		if got := strings.Join(l.ops, " "); !strings.HasSuffix(got, "symlink syncdir "+open+" publish") {
			t.Errorf("SingleKernel %v: calls %q, want them to end with the tail opened %s after the directory sync", single, got, open)
		}
	}
}
