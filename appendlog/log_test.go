package appendlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"testing"

	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/internal/atomicrectest"
	"github.com/nfsindex/nfsindex/vfs"
)

var ctx = context.Background()

const host = "mx1"

// tb is what the helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func seeded(seed uint64) Options {
	return Options{Rand: rand.New(rand.NewPCG(seed, 99))}
}

func mustCreate(t testing.TB, fsys vfs.FS) *Writer {
	t.Helper()
	w, err := Create(ctx, fsys, "idx", host, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustOpenReader(t tb, fsys vfs.FS) *Reader {
	t.Helper()
	r, err := OpenReader(ctx, fsys, "idx", host, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustAppend(t testing.TB, w *Writer, typ uint8, p string) Ref {
	t.Helper()
	ref, err := w.Append(typ, []byte(p))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func mustCommit(t testing.TB, w *Writer) {
	t.Helper()
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

type simple struct {
	Type    uint8
	Payload string
	Prev    Ref
}

func scanAll(t testing.TB, r *Reader) []simple {
	t.Helper()
	var out []simple
	if err := r.Scan(ctx, func(rec Record) error {
		out = append(out, simple{rec.Type, string(rec.Payload), rec.Prev})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendCommitRead(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	if got := w.Info(); got.Used != DataStart || got.Records != 0 || got.Host != host || got.ID == 0 {
		t.Fatalf("new log info %+v", got)
	}
	syncs := m.Syncs
	a := mustAppend(t, w, 1, "alpha")
	b := mustAppend(t, w, 2, "")
	r := mustOpenReader(t, m)
	if _, err := r.Read(ctx, a); !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("Read of an uncommitted record = %v, want ErrNotCommitted", err)
	}
	mustCommit(t, w)
	if m.Syncs-syncs != 1 {
		t.Fatalf("a commit without links made %d syncs, want 1", m.Syncs-syncs)
	}
	if _, err := r.Read(ctx, a); !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("Read before Refresh = %v, want ErrNotCommitted", err)
	}
	info, err := r.Refresh(ctx)
	if err != nil || info.Records != 2 || info.Used != w.Info().Used {
		t.Fatalf("Refresh = %+v, %v", info, err)
	}
	for _, tc := range []struct {
		ref  Ref
		typ  uint8
		data string
	}{{a, 1, "alpha"}, {b, 2, ""}} {
		rec, err := r.Read(ctx, tc.ref)
		if err != nil || rec.Type != tc.typ || string(rec.Payload) != tc.data || rec.Next != 0 || rec.Prev != 0 {
			t.Fatalf("Read(%d) = %+v, %v", tc.ref, rec, err)
		}
	}
	if _, err := r.Read(ctx, a+8); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read in the middle of a frame = %v, want ErrCorrupt", err)
	}
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// Reopen the writer: same state, appends continue.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, err := Open(ctx, m, "idx", host, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w2.Info() != w.Info() {
		t.Fatalf("reopened info %+v, was %+v", w2.Info(), w.Info())
	}
	c := mustAppend(t, w2, 3, "gamma")
	mustCommit(t, w2)
	if _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, r); len(got) != 3 || got[2].Payload != "gamma" {
		t.Fatalf("scan %+v", got)
	}
	if rec, err := r.Read(ctx, c); err != nil || string(rec.Payload) != "gamma" {
		t.Fatalf("Read(c) = %+v, %v", rec, err)
	}
	if err := w2.Commit(ctx); err != nil { // nothing pending: no-op
		t.Fatal(err)
	}
}

func TestCreateNeverReplaces(t *testing.T) {
	m := atomicrectest.New()
	mustCreate(t, m)
	if _, err := Create(ctx, m, "idx", host, Options{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create = %v, want fs.ErrExist", err)
	}
	names, _ := m.ReadDir("idx")
	if len(names) != 1 || names[0] != LogName(host) {
		t.Fatalf("directory holds %v", names)
	}
}

func TestHostNames(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"mx1", true}, {"mx1.example.org", true}, {"a_b-c", true}, {"mx1+12", true},
		{"", false}, {".hidden", false}, {"a/b", false}, {"a b", false}, {string(make([]byte, MaxHostLen+1)), false},
	} {
		err := ValidHost(tc.host)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrHostName)) {
			t.Errorf("ValidHost(%q) = %v", tc.host, err)
		}
		if h, ok := ParseLogName(LogName(tc.host)); ok != tc.ok || (ok && h != tc.host) {
			t.Errorf("ParseLogName(%q) = %q, %v", LogName(tc.host), h, ok)
		}
	}
	if _, ok := ParseLogName("index"); ok {
		t.Error("ParseLogName(index) accepted")
	}
}

func TestChains(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	head := mustAppend(t, w, 1, "head")
	other := mustAppend(t, w, 1, "other")
	c1, err := w.AppendAfter(ctx, head, 2, []byte("c1")) // same group: no extra sync
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AppendAfter(ctx, head, 2, []byte("again")); !errors.Is(err, ErrChained) {
		t.Fatalf("second continuation of head = %v, want ErrChained", err)
	}
	syncs := m.Syncs
	mustCommit(t, w)
	if m.Syncs-syncs != 1 {
		t.Fatalf("commit with an in-group link made %d syncs, want 1", m.Syncs-syncs)
	}
	c2, err := w.AppendAfter(ctx, c1, 2, []byte("c2")) // links a committed record
	if err != nil {
		t.Fatal(err)
	}
	syncs = m.Syncs
	mustCommit(t, w)
	if m.Syncs-syncs != 2 {
		t.Fatalf("commit linking an older record made %d syncs, want 2", m.Syncs-syncs)
	}
	if _, err := w.AppendAfter(ctx, head, 2, []byte("x")); !errors.Is(err, ErrChained) {
		t.Fatalf("continuing a non-tail = %v, want ErrChained", err)
	}
	r := mustOpenReader(t, m)
	chain, err := r.Chain(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rec := range chain {
		got = append(got, string(rec.Payload))
	}
	if fmt.Sprint(got) != "[head c1 c2]" || chain[1].Ref != c1 || chain[2].Ref != c2 || chain[2].Prev != c1 {
		t.Fatalf("chain %v %+v", got, chain)
	}
	if ch, err := r.Chain(ctx, other); err != nil || len(ch) != 1 {
		t.Fatalf("chain of other = %+v, %v", ch, err)
	}
	if ch, err := r.Chain(ctx, c1); err != nil || len(ch) != 2 {
		t.Fatalf("chain from the middle = %+v, %v", ch, err)
	}
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptEveryByte damages a committed log one byte at a time (three
// mutations per byte): a fresh Reader either reports an ErrCorrupt-family
// error or returns records that are exactly a committed prefix (the last
// commit or the one before: a damaged newest header copy falls back, see
// atomicrec), and chains that are prefixes of the true chains. Never a
// wrong byte.
func TestCorruptEveryByte(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	h := mustAppend(t, w, 1, "first record")
	mustCommit(t, w)
	prevCommit := w.Info()
	c, err := w.AppendAfter(ctx, h, 2, bytes.Repeat([]byte("x"), 300))
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, w, 3, "third")
	mustCommit(t, w)
	name := "idx/" + LogName(host)
	img := m.Bytes(name)
	full := scanAll(t, mustOpenReader(t, m))
	wantChain := []string{"first record", string(bytes.Repeat([]byte("x"), 300))}
	checked := 0
	for off := 0; off < len(img); off++ {
		for _, mut := range []func(byte) byte{
			func(b byte) byte { return b ^ 1 }, func(b byte) byte { return b ^ 0x80 }, func(byte) byte { return 0 },
		} {
			bad := append([]byte(nil), img...)
			bad[off] = mut(bad[off])
			if bytes.Equal(bad, img) {
				continue
			}
			checked++
			dm := atomicrectest.New()
			dm.SetBytes(name, bad)
			r, err := OpenReader(ctx, dm, "idx", host, Options{})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d: OpenReader = %v, not ErrCorrupt", off, err)
				}
				continue
			}
			var got []simple
			err = r.Scan(ctx, func(rec Record) error {
				got = append(got, simple{rec.Type, string(rec.Payload), rec.Prev})
				return nil
			})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d: Scan = %v, not ErrCorrupt", off, err)
				}
				continue
			}
			info := r.Info()
			switch {
			case info.Used == w.Info().Used && fmt.Sprint(got) == fmt.Sprint(full):
			case info.Used == prevCommit.Used && fmt.Sprint(got) == fmt.Sprint(full[:1]):
			default:
				t.Fatalf("byte %d: read %+v (used %d), not a committed state", off, got, info.Used)
			}
			ch, err := r.Chain(ctx, h)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d: Chain = %v", off, err)
				}
				continue
			}
			for i, rec := range ch {
				if i >= len(wantChain) || string(rec.Payload) != wantChain[i] {
					t.Fatalf("byte %d: chain element %d = %q", off, i, rec.Payload)
				}
			}
			if len(ch) < 2 && info.Used == w.Info().Used && r.Check(ctx) == nil {
				t.Fatalf("byte %d: chain lost its continuation %d and Check did not notice", off, c)
			}
		}
	}
	t.Logf("checked %d damaged images", checked)
}

// TestForeignAndReplaced: a log under another host's name is ErrForeign;
// a file overwritten in place by another log is ErrReplaced for a Reader
// that knew the first.
func TestForeignAndReplaced(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	mustAppend(t, w, 1, "a")
	mustCommit(t, w)
	img := m.Bytes("idx/" + LogName(host))
	m.SetBytes("idx/"+LogName("mx2"), img)
	if _, err := OpenReader(ctx, m, "idx", "mx2", Options{}); !errors.Is(err, ErrForeign) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenReader of a copied log = %v, want ErrForeign", err)
	}
	r := mustOpenReader(t, m)
	other := atomicrectest.New()
	w2, err := Create(ctx, other, "idx", host, seeded(2))
	if err != nil {
		t.Fatal(err)
	}
	if w2.Info().ID == w.Info().ID {
		t.Fatal("two logs got one id")
	}
	f, err := m.OpenFile("idx/"+LogName(host), vfs.ReadWrite, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(other.Bytes("idx/"+LogName(host)), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(ctx); !errors.Is(err, ErrReplaced) {
		t.Fatalf("Refresh after replacement = %v, want ErrReplaced", err)
	}
}

// TestStaleReaderFallsBack: a reader whose page cache mixes the newest
// header with data pages from before the last commit (N2/N3) sees the
// previous commit, never a half-committed one; a Reader that already saw
// the newer state reports the regression and keeps its state.
func TestStaleReaderFallsBack(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	mustAppend(t, w, 1, "one")
	mustCommit(t, w)
	name := "idx/" + LogName(host)
	before := m.Bytes(name)
	mustAppend(t, w, 1, "two")
	mustCommit(t, w)
	after := m.Bytes(name)
	stale := append([]byte(nil), after[:DataStart]...) // new header page
	stale = append(stale, before[DataStart:]...)       // old data pages
	sm := atomicrectest.New()
	sm.SetBytes(name, stale)
	r := mustOpenReader(t, sm)
	if got := scanAll(t, r); len(got) != 1 || got[0].Payload != "one" {
		t.Fatalf("stale reader scanned %+v, want the previous commit", got)
	}
	sm.SetBytes(name, after)
	if info, err := r.Refresh(ctx); err != nil || info.Records != 2 {
		t.Fatalf("Refresh of the fresh image = %+v, %v", info, err)
	}
	// Same header copy, stale data pages again: Refresh does not reread
	// data for a header copy it already verified (Sync with nothing new
	// costs one header read), and the stale frame is caught when read.
	sm.SetBytes(name, stale)
	if info, err := r.Refresh(ctx); err != nil || info.Records != 2 {
		t.Fatalf("Refresh with an unchanged header = %+v, %v", info, err)
	}
	if rec, err := r.Read(ctx, Ref(DataStart+FrameSize(3))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read of a record whose page is stale = %+v, %v; want ErrCorrupt", rec, err)
	}
	// An older header and older data: the Reader does not go back.
	sm.SetBytes(name, before)
	info, err := r.Refresh(ctx)
	if !errors.Is(err, atomicrec.ErrRegressed) || info.Records != 2 {
		t.Fatalf("Refresh of an older image after the fresh one = %+v, %v; want ErrRegressed and the state kept", info, err)
	}
}

func TestWriterBrokenAfterFailedCommit(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	mustAppend(t, w, 1, "a")
	m.FailSyncs = 1
	if err := w.Commit(ctx); !errors.Is(err, ErrBroken) || !errors.Is(err, atomicrectest.ErrInjected) {
		t.Fatalf("Commit with a failing sync = %v", err)
	}
	if _, err := w.Append(1, []byte("b")); !errors.Is(err, ErrBroken) {
		t.Fatalf("Append after a failed commit = %v, want ErrBroken", err)
	}
	w.Close()
	w2, err := Open(ctx, m, "idx", host, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLimits(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	if _, err := w.Append(0, nil); err == nil {
		t.Fatal("type 0 accepted")
	}
	if _, err := w.Append(1, make([]byte, MaxRecordSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record = %v", err)
	}
	if _, err := w.AppendAfter(ctx, 12345, 1, nil); !errors.Is(err, ErrNotCommitted) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("AppendAfter a bogus ref = %v", err)
	}
}

// TestChainWrongTarget: a set next word that leads to a valid frame which
// does not continue its record (a writer bug, or a word written at the
// wrong place) is ErrChain, in Chain and in Check: never followed.
func TestChainWrongTarget(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	a := mustAppend(t, w, 1, "a")
	b := mustAppend(t, w, 1, "b")
	c, err := w.AppendAfter(ctx, b, 2, []byte("continues b"))
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, w)
	f, err := m.OpenFile("idx/"+LogName(host), vfs.ReadWrite, 0)
	if err != nil {
		t.Fatal(err)
	}
	word := atomicrec.EncodeSetOnce(int64(a)+fOffNext, uint64(c)) // a -> c, but c continues b
	if _, err := f.WriteAt(word[:], int64(a)+fOffNext); err != nil {
		t.Fatal(err)
	}
	r := mustOpenReader(t, m)
	if ch, err := r.Chain(ctx, a); !errors.Is(err, ErrChain) {
		t.Fatalf("Chain through a wrong next word = %+v, %v; want ErrChain", ch, err)
	}
	if err := r.Check(ctx); !errors.Is(err, ErrChain) {
		t.Fatalf("Check = %v, want ErrChain", err)
	}
	// A next word pointing backwards (a cycle) is refused too.
	word = atomicrec.EncodeSetOnce(int64(c)+fOffNext, uint64(b))
	if _, err := f.WriteAt(word[:], int64(c)+fOffNext); err != nil {
		t.Fatal(err)
	}
	if ch, err := r.Chain(ctx, b); !errors.Is(err, ErrChain) {
		t.Fatalf("Chain with a backward next word = %+v, %v; want ErrChain", ch, err)
	}
}

// TestReaderLostCommitIsRegressed: a Reader that trusted a commit which
// then vanished (the N10 case: header and frames were served by the NFS
// server before they were stable, and a server crash lost them, while the
// writer host crashed too) gets ErrRegressed when it reads a frame that is
// gone, not ErrCorrupt: nothing is damaged, the state went back.
func TestReaderLostCommitIsRegressed(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	mustAppend(t, w, 1, "kept")
	mustCommit(t, w)
	name := "idx/" + LogName(host)
	before := m.Bytes(name)
	lost := mustAppend(t, w, 1, "lost")
	mustCommit(t, w)
	r := mustOpenReader(t, m)
	m.SetBytes(name, before) // the second commit is gone
	if _, err := r.Read(ctx, lost); !errors.Is(err, atomicrec.ErrRegressed) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read of a vanished commit's record = %v, want ErrRegressed", err)
	}
	// Damage below a header that is still there stays ErrCorrupt.
	m2 := atomicrectest.New()
	w2 := mustCreate(t, m2)
	mustAppend(t, w2, 1, "damaged")
	mustCommit(t, w2)
	mustAppend(t, w2, 1, "last group")
	mustCommit(t, w2)
	img := m2.Bytes(name)
	img[DataStart+fOffPayload] ^= 1
	m2.SetBytes(name, img)
	r2 := mustOpenReader(t, m2)
	if _, err := r2.Read(ctx, DataStart); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read of a damaged frame = %v, want ErrCorrupt", err)
	}
}
