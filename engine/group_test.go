package engine

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/vfs/errorfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// syncCounter counts the calls that make a commit durable and visible,
// and can hold the next install until released.
type syncCounter struct {
	mu                          sync.Mutex
	symlinks, dirSyncs, publish int
	logSyncs                    int
	hold                        chan struct{} // non-nil: Symlink number holdAt waits for it
	holdAt                      int           // 0: the next one
}

func (c *syncCounter) MaybeError(op errorfs.Op) error {
	c.mu.Lock()
	var wait chan struct{}
	switch {
	case op.Kind == errorfs.OpSymlink:
		c.symlinks++
		if c.holdAt == 0 || c.symlinks == c.holdAt {
			wait, c.hold = c.hold, nil
		}
	case op.Kind == errorfs.OpSyncDir:
		c.dirSyncs++
	case op.Kind == errorfs.OpWriteAt && strings.Contains(op.Path, tailPrefix):
		c.publish++
	case (op.Kind == errorfs.OpDatasync || op.Kind == errorfs.OpSync) && strings.Contains(op.Path, "log."):
		c.logSyncs++
	}
	c.mu.Unlock()
	if wait != nil {
		<-wait
	}
	return nil
}

func (c *syncCounter) counts() [4]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return [4]int{c.symlinks, c.dirSyncs, c.publish, c.logSyncs}
}

// openCounted opens a mailbox on a temporary directory through a
// syncCounter; base is the directory without the counter.
func openCounted(t *testing.T) (*osfs.FS, *syncCounter, *Mailbox) {
	t.Helper()
	base, err := osfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &syncCounter{}
	m, err := Open(context.Background(), Options{FS: errorfs.Wrap(base, c), Dir: "mbox", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	return base, c, m
}

// TestGroupCommitSharesSyncs: while one Commit is installing, seven more
// arrive from other goroutines; they are committed as one group: seven
// records (seven sequence numbers, each its own MODSEQ), but one field-log
// sync, one directory sync and one publish for all seven.
func TestGroupCommitSharesSyncs(t *testing.T) {
	ctx := context.Background()
	base, c, m := openCounted(t)
	defer m.Close()
	first := m.Begin() // creates the field log: its creation syncs are not counted
	first.Append(NewMessage{Fields: map[string][]byte{"file": []byte("msg")}})
	if _, err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	before := c.counts()
	release := make(chan struct{})
	c.mu.Lock()
	c.hold = release
	c.mu.Unlock()
	const n = 8
	results := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx := m.Begin()
			tx.Append(NewMessage{Fields: map[string][]byte{"file": fmt.Appendf(nil, "msg%d", i)}})
			results[i], errs[i] = tx.Commit(ctx)
		}()
	}
	start(0)
	// The leader is inside its install (holding the mailbox) once the
	// counter has handed out the hold.
	for {
		c.mu.Lock()
		held := c.hold == nil
		c.mu.Unlock()
		if held {
			break
		}
		runtime.Gosched()
	}
	for i := 1; i < n; i++ {
		start(i)
	}
	for {
		m.qmu.Lock()
		queued := len(m.queue)
		m.qmu.Unlock()
		if queued == n-1 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	var seqs []uint64
	var uids []uint32
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("commit %d: %v", i, errs[i])
		}
		seqs = append(seqs, results[i].Seq)
		uids = append(uids, results[i].UIDs...)
	}
	slices.Sort(seqs)
	slices.Sort(uids)
	for i := range n {
		if seqs[i] != seqs[0]+uint64(i) || uids[i] != uids[0]+uint32(i) {
			t.Fatalf("sequence numbers %v, UIDs %v: want %d consecutive of each", seqs, uids, n)
		}
	}
	got := c.counts()
	for i := range got {
		got[i] -= before[i]
	}
	// The leader alone, then the group of seven.
	if want := [4]int{n, 2, 2, 2}; got != want {
		t.Fatalf("symlinks, directory syncs, publishes, field-log syncs = %v, want %v", got, want)
	}
	// Every host sees the eight, each with its own value.
	m2, err := Open(ctx, Options{FS: base, Dir: "mbox", Host: "other"})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	v := m2.View()
	if v.Len() != n+1 {
		t.Fatalf("a fresh open sees %d messages, want %d", v.Len(), n+1)
	}
	seen := map[string]bool{}
	v.All(func(_ int, msg Message) bool {
		ref, _ := msg.Field("file")
		val, err := m2.FieldValue(ctx, ref)
		if err != nil {
			t.Fatalf("field of %d: %v", msg.UID, err)
		}
		seen[string(val)] = true
		return true
	})
	if len(seen) != n+1 {
		t.Fatalf("field values %v, want %d distinct", seen, n+1)
	}
	if _, d1 := m.Digest(); d1 != func() uint64 { _, d := m2.Digest(); return d }() {
		t.Fatal("the committer's state differs from a fresh open's")
	}
}

// TestCommitGroupEachOwnPlace: CommitGroup gives each transaction its own
// record, place and result, and a transaction that fails (too large)
// fails alone.
func TestCommitGroupEachOwnPlace(t *testing.T) {
	ctx := context.Background()
	_, c, m := openCounted(t)
	defer m.Close()
	a := m.Begin()
	a.Append(NewMessage{Flags: Seen})
	big := m.Begin()
	for range 400 {
		big.Append(NewMessage{Keywords: []string{"$a-rather-long-keyword-name"}})
	}
	b := m.Begin()
	b.Append(NewMessage{})
	b.Append(NewMessage{})
	before := c.counts()
	res, errs := m.CommitGroup(ctx, a, big, b)
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	if errs[1] == nil {
		t.Fatal("an oversized transaction committed")
	}
	if res[0].Seq+1 != res[2].Seq || !slices.Equal(res[0].UIDs, []uint32{1}) || !slices.Equal(res[2].UIDs, []uint32{2, 3}) {
		t.Fatalf("results %+v", res)
	}
	got := c.counts()
	if got[2]-before[2] != 1 || got[1]-before[1] != 1 {
		t.Fatalf("%d publishes and %d directory syncs for one group, want 1 and 1", got[2]-before[2], got[1]-before[1])
	}
	for _, tx := range []*Tx{a, b} {
		if ok, err := m.Committed(ctx, tx.Key()); !ok || err != nil {
			t.Fatalf("Committed(%v) = %v, %v", tx.Key(), ok, err)
		}
	}
	if ok, err := m.Committed(ctx, big.Key()); ok || err != nil {
		t.Fatalf("Committed(oversized) = %v, %v", ok, err)
	}
}

// TestGroupMeetsForeignRecord: a group's second install finds the number
// taken by another host (which installed past the group's first record
// and published both). The group's first record is applied before the
// foreign one, and the rest of the group goes on after it.
func TestGroupMeetsForeignRecord(t *testing.T) {
	ctx := context.Background()
	base, err := osfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &syncCounter{}
	a, err := Open(ctx, Options{FS: errorfs.Wrap(base, c), Dir: "mbox", Host: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, Options{FS: base, Dir: "mbox", Host: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	release := make(chan struct{})
	c.mu.Lock()
	c.hold, c.holdAt = release, c.symlinks+2 // a's second install waits
	c.mu.Unlock()
	txs := []*Tx{a.Begin(), a.Begin(), a.Begin()}
	for _, tx := range txs {
		tx.Append(NewMessage{})
	}
	done := make(chan struct{})
	var res []Result
	var errs []error
	go func() {
		res, errs = a.CommitGroup(ctx, txs...)
		close(done)
	}()
	for {
		c.mu.Lock()
		held := c.hold == nil
		c.mu.Unlock()
		if held {
			break
		}
		runtime.Gosched()
	}
	tb := b.Begin()
	tb.Append(NewMessage{Flags: Flagged})
	rb, err := tb.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	<-done
	for i, err := range errs {
		if err != nil {
			t.Fatalf("a's transaction %d: %v", i, err)
		}
	}
	got := []uint64{res[0].Seq, rb.Seq, res[1].Seq, res[2].Seq}
	for i := 1; i < len(got); i++ {
		if got[i] != got[0]+uint64(i) {
			t.Fatalf("a's group at %d, %d, %d and b's commit at %d: want a, b, a, a in consecutive places", res[0].Seq, res[1].Seq, res[2].Seq, rb.Seq)
		}
	}
	if want := []uint32{res[0].UIDs[0], rb.UIDs[0], res[1].UIDs[0], res[2].UIDs[0]}; !slices.IsSorted(want) {
		t.Fatalf("UIDs along the order %v", want)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, da := a.Digest(); func() uint64 { _, d := b.Digest(); return d }() != da {
		t.Fatal("a and b disagree after the group")
	}
}

// TestGroupWindowGathersCommits: with Options.GroupWindow the first
// committer waits (here: until all eight have queued, standing in for the
// window's time) and the eight single flag changes are committed as one
// group: eight records, one directory sync, one publish. Without the
// window the first would lead alone at once.
func TestGroupWindowGathersCommits(t *testing.T) {
	ctx := context.Background()
	base, err := osfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	c := &syncCounter{}
	var m *Mailbox
	var slept []time.Duration
	gather := false
	sleep := func(d time.Duration) {
		slept = append(slept, d)
		for gather {
			m.qmu.Lock()
			queued := len(m.queue)
			m.qmu.Unlock()
			if queued == n {
				return
			}
			runtime.Gosched()
		}
	}
	m, err = Open(ctx, Options{FS: errorfs.Wrap(base, c), Dir: "mbox", Host: "local", GroupWindow: time.Millisecond, Sleep: sleep})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fillTx := m.Begin()
	fillTx.Append(NewMessage{})
	if _, err := fillTx.Commit(ctx); err != nil { // the window's opener alone: it sleeps once
		t.Fatal(err)
	}
	slept, gather = nil, true
	before := c.counts()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx := m.Begin()
			tx.SetFlags(1, Flagged, 0)
			_, errs[i] = tx.Commit(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	after := c.counts()
	if got := [3]int{after[0] - before[0], after[1] - before[1], after[2] - before[2]}; got != [3]int{n, 1, 1} || len(slept) != 1 || slept[0] != time.Millisecond {
		t.Fatalf("symlinks, directory syncs, publishes = %v, slept %v; want [%d 1 1], one window of 1ms", got, slept, n)
	}
	if _, err := Open(ctx, Options{FS: base, Dir: "mbox", Host: "other", GroupWindow: time.Millisecond}); err == nil {
		t.Fatal("Open with GroupWindow and no Sleep succeeded")
	}
}
