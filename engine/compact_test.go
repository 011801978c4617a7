package engine

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
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
		if strings.HasPrefix(n, "t.1.") || n == lockName {
			t.Fatalf("after compaction %s is still there: %v", n, names)
		}
	}
	// The old tail stays as a tombstone, marked dead.
	if st, err := s.Host("judge").FS().Stat("mbox/tail.1"); err != nil || st.Size < deadOffset {
		t.Fatalf("tail.1 after compaction: %+v, %v; want a dead tombstone", st, err)
	}
	if !slices.Contains(names, "index.2") || !slices.Contains(names, "tail.2") {
		t.Fatalf("no snapshot or next tail: %v", names)
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

func TestCompactSkipsWhenClaimed(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(7))
	a := openOn(t, s, "mx1", 1)
	f, err := s.Host("mx2").FS().OpenFile("mbox/"+lockName, 0x41, 0o644) // O_WRONLY|O_CREAT
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := s.Now()
	done, err := a.Compact(ctx)
	if err != nil || done {
		t.Fatalf("Compact with a claim held elsewhere = %v, %v; want skipped", done, err)
	}
	if s.Now()-before > 0 && s.Now()-before > 10*1e6 {
		t.Fatalf("skipping took %v of simulated time: it waited", s.Now()-before)
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
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, indexPrefix) && n != lockName }) {
		t.Fatalf("no snapshot after 25 commits with a threshold of 10: %v", names)
	}
	other := openOn(t, s, "mx2", 2)
	if v := other.View(); v.Len() != 25 {
		t.Fatalf("after automatic compactions another host sees %d messages", v.Len())
	}
}
