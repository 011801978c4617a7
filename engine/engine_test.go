package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

func openOn(t *testing.T, s *nfssim.Sim, host string, seed uint64) *Mailbox {
	t.Helper()
	m, err := Open(context.Background(), Options{FS: s.Host(host).FS(), Dir: "mbox", Host: host,
		Rand: rand.New(rand.NewPCG(seed, 7))})
	if err != nil {
		t.Fatalf("open on %s: %v", host, err)
	}
	return m
}

func commit(t *testing.T, tx *Tx) Result {
	t.Helper()
	r, err := tx.Commit(context.Background())
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return r
}

func TestTwoHostsAppendFlagSync(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(1))
	a, b := openOn(t, s, "mx1", 1), openOn(t, s, "mx2", 2)
	if a.Header() != b.Header() {
		t.Fatalf("two opens created two mailboxes: %+v vs %+v", a.Header(), b.Header())
	}
	tx := a.Begin()
	tx.Append(NewMessage{Flags: Seen, Keywords: []string{"$Junk"}, Fields: map[string][]byte{"file": []byte("1700000000.M1P2.mx1")}})
	tx.Append(NewMessage{})
	ra := commit(t, tx)
	if !slices.Equal(ra.UIDs, []uint32{1, 2}) {
		t.Fatalf("UIDs %v, want [1 2]", ra.UIDs)
	}
	v := b.View()
	ch, err := v.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Appended, []uint32{1, 2}) || v.Len() != 2 {
		t.Fatalf("b's view after sync: appended %v, len %d", ch.Appended, v.Len())
	}
	msg, seq, ok := v.ByUID(1)
	if !ok || seq != 1 || msg.Flags != Seen || !slices.Equal(msg.Keywords, []string{"$Junk"}) {
		t.Fatalf("message 1 on b: %+v seq %d ok %v", msg, seq, ok)
	}
	ref, ok := msg.Field("file")
	if !ok {
		t.Fatal("no cached field")
	}
	val, err := b.FieldValue(ctx, ref)
	if err != nil || string(val) != "1700000000.M1P2.mx1" {
		t.Fatalf("field on b: %q %v", val, err)
	}
	// b flags, a expunges: both commit against stale states; the total
	// order decides and both converge.
	tb := b.Begin()
	tb.SetFlags(2, Flagged, 0)
	rb := commit(t, tb)
	ta := a.Begin()
	ta.Expunge(1)
	ra2 := commit(t, ta)
	if ra2.Seq <= rb.Seq {
		t.Fatalf("a's commit got seq %d after b's %d", ra2.Seq, rb.Seq)
	}
	ch, err = v.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Expunged, []int{1}) || len(ch.Changed) != 1 || ch.Changed[0].UID != 2 || ch.Changed[0].Flags != Flagged {
		t.Fatalf("changes %+v", ch)
	}
	if ch.HighestModSeq != ra2.Seq {
		t.Fatalf("HIGHESTMODSEQ %d, want %d", ch.HighestModSeq, ra2.Seq)
	}
}

// TestSyncIdleCostsOneRPC: a Sync with nothing new is one revalidation
// (brief §5), and one remote change costs that plus reading one record.
func TestSyncIdleCostsOneRPC(t *testing.T) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		t.Run(v.String(), func(t *testing.T) { syncIdleCosts(t, v) })
	}
}

func syncIdleCosts(t *testing.T, v nfssim.Version) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(1))
	mnt := nfssim.DefaultMount()
	mnt.Version = v
	for _, h := range []string{"mx1", "mx2"} {
		if _, err := s.AddHost(h, mnt); err != nil {
			t.Fatal(err)
		}
	}
	a, b := openOn(t, s, "mx1", 1), openOn(t, s, "mx2", 2)
	tx := a.Begin()
	tx.Append(NewMessage{})
	commit(t, tx)
	// The first Sync reads the new record; on NFSv4 the LOOKUP of its
	// name brings the directory's new change attribute, so the next walk
	// revalidates the tail's entry once (a LOOKUP); from then on an idle
	// Sync is the tail's GETATTR alone.
	for range 2 {
		if err := b.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Host("mx2").RPCs()
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Host("mx2").RPCs().Sub(before); got.Total() != 1 || got.Get(nfssim.GETATTR) != 1 {
		t.Fatalf("idle Sync cost %v, want 1 RPC", got)
	}
	// Once the directories' attributes expire (acdirmax), the path walk
	// revalidates each directory level once: "mbox" costs one LOOKUP.
	s.Advance(time.Minute)
	before = s.Host("mx2").RPCs()
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Host("mx2").RPCs().Sub(before); got.Total() != 2 {
		t.Fatalf("idle Sync after a minute cost %v, want 2 RPCs (LOOKUP of the directory, GETATTR of the tail)", got)
	}
	tx = a.Begin()
	tx.SetFlags(1, Seen, 0)
	before1 := s.Host("mx1").RPCs()
	commit(t, tx)
	if got := s.Host("mx1").RPCs().Sub(before1); got.Total() > 4 {
		t.Fatalf("durable flag change cost %v, want at most 4 RPCs", got)
	} else {
		t.Logf("durable flag change: %v", got)
	}
	before = s.Host("mx2").RPCs()
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Sync after one remote change: %v", s.Host("mx2").RPCs().Sub(before))
}

// TestCommittedAfterLostReply: a commit whose reply was lost still
// reports its outcome correctly (N14), and Committed answers for it.
func TestCommittedAfterLostReply(t *testing.T) {
	ctx := context.Background()
	cfg := nfssim.DefaultConfig(3)
	cfg.Server.DRCSize = 0
	drop := false
	cfg.Fault = func(p nfssim.Point) nfssim.Fault {
		if drop && p.Kind == nfssim.PointRPC && p.RPC == nfssim.SYMLINK {
			return nfssim.Fault{Kind: nfssim.DropReply}
		}
		return nfssim.Fault{}
	}
	s := nfssim.New(cfg)
	a := openOn(t, s, "mx1", 1)
	drop = true
	tx := a.Begin()
	tx.Append(NewMessage{})
	r := commit(t, tx)
	if len(r.UIDs) != 1 || s.Host("mx1").Retransmissions() == 0 {
		t.Fatalf("result %+v, retransmissions %d", r, s.Host("mx1").Retransmissions())
	}
	ok, err := a.Committed(ctx, tx.Key())
	if err != nil || !ok {
		t.Fatalf("Committed = %v, %v", ok, err)
	}
	b := openOn(t, s, "mx2", 2)
	if v := b.View(); v.Len() != 1 {
		t.Fatalf("b sees %d messages, want exactly 1 (no duplicate from the retransmission)", v.Len())
	}
}

func TestOnLocalDisk(t *testing.T) {
	fsys, err := osfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(context.Background(), Options{FS: fsys, Dir: "mbox", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	tx := m.Begin()
	tx.Append(NewMessage{Flags: Seen})
	commit(t, tx)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	m2, err := Open(context.Background(), Options{FS: fsys, Dir: "mbox", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if v := m2.View(); v.Len() != 1 {
		t.Fatalf("reopened mailbox has %d messages", v.Len())
	}
}
