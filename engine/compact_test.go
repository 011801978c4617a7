package engine

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/rename"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/vfstest"
)

func TestCompactionFoldsAndOthersFollow(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(5))
	a, b := openOn(t, s, "mx1", 1), openOn(t, s, "mx2", 2)
	v := b.View()
	for i := range 20 {
		tx := a.Begin()
		tx.Append(NewMessage{Keywords: []string{"k" + string(rune('a'+i%3))}, Fields: map[string][]byte{"file": []byte{byte(i)}}})
		commit(t, tx)
	}
	tx := a.Begin()
	for uid := uint32(1); uid <= 10; uid++ {
		tx.Expunge(uid)
	}
	commit(t, tx)
	done, err := a.Compact(ctx)
	if err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	names, err := s.Host("judge").FS().ReadDir("mbox")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "t.1.") || n == "index.1" || strings.Contains(n, ".pin.") ||
			strings.HasPrefix(n, "index.claim.") || strings.HasPrefix(n, "index.probe.") {
			t.Fatalf("after compaction %s is still there: %v", n, names)
		}
	}
	// The claim was released by the install: the lock directory is empty.
	if held, err := s.Host("judge").FS().ReadDir("mbox/" + claimBase + rename.LockSuffix); err != nil || len(held) != 0 {
		t.Fatalf("the compaction lock after compaction: %v, %v; want empty", held, err)
	}
	// The old tail stays as a tombstone, marked dead.
	if st, err := s.Host("judge").FS().Stat("mbox/tail.1"); err != nil || st.Size < deadOffset {
		t.Fatalf("tail.1 after compaction: %+v, %v; want a dead tombstone", st, err)
	}
	if next := tailName(2, a.st.tail); a.st.tail == 0 || !slices.Contains(names, "index.2") || !slices.Contains(names, next) {
		t.Fatalf("no snapshot or next tail %s: %v", next, names)
	}
	// b was behind: its Sync finds the generation gone and loads the
	// snapshot; its view reports the difference.
	ch, err := v.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 10 || len(ch.Appended) != 10 {
		t.Fatalf("b's view: len %d, appended %v", v.Len(), ch.Appended)
	}
	msg, _, ok := v.ByUID(15)
	if !ok || !slices.Equal(msg.Keywords, []string{"kc"}) {
		t.Fatalf("message 15 after the snapshot: %+v", msg)
	}
	ref, _ := msg.Field("file")
	if val, err := b.FieldValue(ctx, ref); err != nil || !slices.Equal(val, []byte{14}) {
		t.Fatalf("field after snapshot: %v %v", val, err)
	}
	// Both go on committing in the new generation and agree.
	tb := b.Begin()
	tb.SetFlags(15, Seen, 0)
	rb := commit(t, tb)
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sa, da := a.Digest()
	sb, db := b.Digest()
	if sa != sb || da != db || sa != rb.Seq {
		t.Fatalf("after compaction a is at %d (%x), b at %d (%x), b committed %d", sa, da, sb, db, rb.Seq)
	}
	// A new host opening now starts from the snapshot.
	c := openOn(t, s, "mx3", 3)
	if sc, dc := c.Digest(); sc != sa || dc != da {
		t.Fatalf("a new host starts at %d (%x), want %d (%x)", sc, dc, sa, da)
	}
}

// TestZombieCommitIsFenced: a host that fell behind installs its record
// under a number that a compaction has already folded and removed (the
// name is free again). Its publish meets the dead or removed tail, so it
// removes its zombie and commits again in the new generation: the change
// is in the mailbox exactly once.
func TestZombieCommitIsFenced(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(6))
	a, b := openOn(t, s, "mx1", 1), openOn(t, s, "mx2", 2)
	tx := b.Begin() // b publishes once, so it holds gen 1's tail open
	tx.Append(NewMessage{})
	commit(t, tx)
	for range 5 {
		tx := a.Begin()
		tx.Append(NewMessage{})
		commit(t, tx)
	}
	if done, err := a.Compact(ctx); err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	// b still believes gen 1 is current and seq 3 is next: that name was
	// removed, so b's exclusive create succeeds — a zombie.
	stale := b.Begin()
	stale.Append(NewMessage{Flags: Flagged})
	r, err := stale.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq <= 7 {
		t.Fatalf("the fenced commit got seq %d, inside the folded generation", r.Seq)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	v := a.View()
	flagged := 0
	v.All(func(_ int, m Message) bool {
		if m.Flags == Flagged {
			flagged++
		}
		return true
	})
	if flagged != 1 || v.Len() != 7 {
		t.Fatalf("the fenced commit is in the mailbox %d times (messages %d, want 7)", flagged, v.Len())
	}
	names, _ := s.Host("judge").FS().ReadDir("mbox")
	for _, n := range names {
		if strings.HasPrefix(n, "t.1.") {
			t.Fatalf("the zombie %s was left behind: %v", n, names)
		}
	}
	ok, err := a.Committed(ctx, stale.Key())
	if !ok || err != nil {
		t.Fatalf("Committed(fenced) = %v, %v", ok, err)
	}
}

// TestCompactSkipsWhenClaimed: a fresh claim held by another host (a
// rename claim, or the file index.lock an older engine claimed with) makes
// Compact return false at once, without waiting; once the claim is older
// than CompactStaleAge by the server's clock, Compact takes it over and
// compacts (I8).
func TestCompactSkipsWhenClaimed(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		ctx := context.Background()
		s := nfssim.New(nfssim.DefaultConfig(7))
		a := openOn(t, s, "mx1", 1)
		tx := a.Begin()
		tx.Append(NewMessage{})
		commit(t, tx)
		other := s.Host("mx2").FS()
		if legacy {
			f, err := other.OpenFile("mbox/"+claimBase+rename.LockSuffix, vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		} else if _, err := rename.Begin(ctx, other, "mbox/"+claimBase, 9, rename.Options{Host: "mx2", Rand: rand.New(rand.NewPCG(7, 7))}); err != nil {
			t.Fatal(err)
		}
		before := s.Now()
		done, err := a.Compact(ctx)
		if err != nil || done {
			t.Fatalf("legacy %v: Compact with a claim held elsewhere = %v, %v; want skipped", legacy, done, err)
		}
		if s.Now()-before > 10*time.Millisecond {
			t.Fatalf("legacy %v: skipping took %v of simulated time: it waited", legacy, s.Now()-before)
		}
		s.Advance(rename.DefaultStaleAge - 10*time.Second)
		if done, err := a.Compact(ctx); err != nil || done {
			t.Fatalf("legacy %v: Compact with a claim short of stale = %v, %v; want skipped", legacy, done, err)
		}
		s.Advance(20 * time.Second)
		if done, err := a.Compact(ctx); err != nil || !done {
			t.Fatalf("legacy %v: Compact over a stale claim = %v, %v; want a takeover", legacy, done, err)
		}
		if v := openOn(t, s, "mx3", 3).View(); v.Len() != 1 {
			t.Fatalf("legacy %v: after the takeover another host sees %d messages", legacy, v.Len())
		}
	}
}

// TestRenameNamesAreNotGenerations: the names the rename package makes in
// the mailbox directory are never taken for a generation's, and pins are
// recognized as pins of their snapshot.
func TestRenameNamesAreNotGenerations(t *testing.T) {
	for _, n := range []string{"index.lock", "index.claim.00000000000000ff", "index.probe.00000000000000ff",
		"index.pin.00000000000000ff", "index.3.pin.00000000000000ff", "index.3.lock", "index.03", "index.0",
		"index.", "index.3.", ".nfs0000000000000001", "index.lock.nfs1", "tail.3.pin.0000000000000001"} {
		if g, ok := parseGen(n, indexPrefix); ok {
			t.Errorf("parseGen(%q, index.) = %d", n, g)
		}
		if g, ok := oldName(n); ok {
			t.Errorf("oldName(%q) = %d", n, g)
		}
	}
	for n, want := range map[string]uint32{"index.3.pin.00000000000000ff": 3, "index.12.pin.x": 12} {
		if g, ok := pinGen(n); !ok || g != want {
			t.Errorf("pinGen(%q) = %d, %v; want %d", n, g, ok, want)
		}
	}
	for _, n := range []string{"index.pin.00000000000000ff", "index.3", "index.03.pin.1", "index.3.pin.", "index.lock", "tail.3.pin.1", "index.3.probe.1"} {
		if g, ok := pinGen(n); ok {
			t.Errorf("pinGen(%q) = %d", n, g)
		}
	}
}

// TestAutomaticCompaction: commits trigger a compaction once the log
// reaches the threshold, and the mailbox stays whole.
func TestAutomaticCompaction(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(8))
	m, err := Open(ctx, Options{FS: s.Host("mx1").FS(), Dir: "mbox", Host: "mx1", CompactMinRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	for range 25 {
		tx := m.Begin()
		tx.Append(NewMessage{})
		commit(t, tx)
	}
	names, _ := s.Host("judge").FS().ReadDir("mbox")
	if !slices.ContainsFunc(names, func(n string) bool { _, ok := parseGen(n, indexPrefix); return ok }) {
		t.Fatalf("no snapshot after 25 commits with a threshold of 10: %v", names)
	}
	other := openOn(t, s, "mx2", 2)
	if v := other.View(); v.Len() != 25 {
		t.Fatalf("after automatic compactions another host sees %d messages", v.Len())
	}
}

// TestRetireRemovesRenameLitter: a compaction removes the pins of the
// snapshot it retires (a reader that stopped while reading it), sweeps a
// stale private claim directory and probe file of the rename package, and
// leaves the snapshot it installs and the (empty) lock.
func TestRetireRemovesRenameLitter(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(9))
	a := openOn(t, s, "mx1", 1)
	fsys := s.Host("litter").FS()
	step := func() {
		t.Helper()
		tx := a.Begin()
		tx.Append(NewMessage{})
		commit(t, tx)
		if done, err := a.Compact(ctx); err != nil || !done {
			t.Fatalf("Compact = %v, %v", done, err)
		}
	}
	step() // index.2
	for _, err := range []error{
		fsys.Link("mbox/index.2", "mbox/index.2.pin.00000000000000aa"),
		fsys.Mkdir("mbox/index.claim.00000000000000bb", 0o755),
		vfstest.WriteFile(fsys, "mbox/index.claim.00000000000000bb/00000000000000bb", []byte("x")),
		vfstest.WriteFile(fsys, "mbox/index.probe.00000000000000cc", []byte("x")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Advance(rename.DefaultStaleAge + time.Second)
	step() // index.3, retiring index.2
	names, err := s.Host("judge").FS().ReadDir("mbox")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "index.2") || strings.HasPrefix(n, "index.claim.") || strings.HasPrefix(n, "index.probe.") {
			t.Fatalf("%s left after the compaction that retired generation 2: %v", n, names)
		}
	}
	for _, n := range []string{"index.3", "index.lock"} {
		if !slices.Contains(names, n) {
			t.Fatalf("%s was removed: %v", n, names)
		}
	}
	if v := openOn(t, s, "mx2", 2).View(); v.Len() != 2 {
		t.Fatalf("after the compactions another host sees %d messages", v.Len())
	}
}
