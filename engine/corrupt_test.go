package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/vfstest"
)

// compacted returns a simulation holding a compacted mailbox with a few
// records after the snapshot.
func compacted(t *testing.T) *nfssim.Sim {
	t.Helper()
	s := nfssim.New(nfssim.DefaultConfig(11))
	m := openOn(t, s, "mx1", 1)
	for i := range 5 {
		tx := m.Begin()
		tx.Append(NewMessage{Keywords: []string{"k"}, Fields: map[string][]byte{"f": {byte(i)}}})
		commit(t, tx)
	}
	if ok, err := m.Compact(context.Background()); !ok || err != nil {
		t.Fatalf("compact: %v %v", ok, err)
	}
	tx := m.Begin()
	tx.SetFlags(2, Seen, 0)
	commit(t, tx)
	m.Close()
	return s
}

// TestCorruptSnapshotEveryOffsetClass: flipping a byte in the header, a
// checksum, the string table, the message records or the extension area,
// zeroing it, or truncating the file anywhere, is a typed ErrCorrupt on
// open, never a panic and never a silently different mailbox.
func TestCorruptSnapshotEveryOffsetClass(t *testing.T) {
	s := compacted(t)
	fsys := s.Host("editor").FS()
	good, err := vfstest.ReadFile(fsys, "mbox/index.2")
	if err != nil {
		t.Fatal(err)
	}
	offsets := []int{0, 4, 8, 12, 20, 44, 56, 64, 72, 79, snapHeaderSize, snapHeaderSize + 1, len(good) / 2, len(good) - 24, len(good) - 1}
	for _, off := range offsets {
		for _, mutate := range []struct {
			name string
			f    func([]byte) []byte
		}{
			{"flip", func(b []byte) []byte { b[off] ^= 0x10; return b }},
			{"zero", func(b []byte) []byte {
				if b[off] == 0 {
					b[off] = 0xff
				} else {
					b[off] = 0
				}
				return b
			}},
			{"truncate", func(b []byte) []byte { return b[:off] }},
		} {
			img := mutate.f(append([]byte(nil), good...))
			if err := vfstest.WriteFile(fsys, "mbox/index.2", img); err != nil {
				t.Fatal(err)
			}
			host := s.Host("reader" + mutate.name + string(rune('a'+off%26)))
			_, err := Open(context.Background(), Options{FS: host.FS(), Dir: "mbox", Host: host.Name()})
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s at %d: Open returned %v, want ErrCorrupt", mutate.name, off, err)
			}
		}
	}
	if err := vfstest.WriteFile(fsys, "mbox/index.2", good); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Options{FS: s.Host("last").FS(), Dir: "mbox", Host: "last"}); err != nil {
		t.Fatalf("restored snapshot: %v", err)
	}
}

// TestCorruptRecordIsTypedError: a record replaced by garbage, a record of
// another place, and a foreign symlink are typed errors on Sync.
func TestCorruptRecordIsTypedError(t *testing.T) {
	for _, target := range []string{"garbage", "", "TklSMQ", mustEncode(t, &record{gen: 2, seq: 99})} {
		s := compacted(t)
		fsys := s.Host("editor").FS()
		if err := fsys.Remove("mbox/t.2.8"); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Symlink(target, "mbox/t.2.8"); err != nil {
			t.Fatal(err)
		}
		_, err := Open(context.Background(), Options{FS: s.Host("r").FS(), Dir: "mbox", Host: "r"})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("record %q: Open returned %v, want ErrCorrupt", target, err)
		}
	}
	// A regular file where a record should be is not a symlink.
	s := compacted(t)
	fsys := s.Host("editor").FS()
	if err := fsys.Remove("mbox/t.2.8"); err != nil {
		t.Fatal(err)
	}
	if err := vfstest.WriteFile(fsys, "mbox/t.2.8", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Options{FS: s.Host("r").FS(), Dir: "mbox", Host: "r"}); err == nil {
		t.Error("a regular file in place of a record was accepted")
	}
}

// TestForeignSnapshotIsRejected: a file named like a newer snapshot that
// is not one of ours is a typed error.
func TestForeignSnapshotIsRejected(t *testing.T) {
	s := compacted(t)
	if err := vfstest.WriteFile(s.Host("editor").FS(), "mbox/index.7", []byte("not an index")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{FS: s.Host("r").FS(), Dir: "mbox", Host: "r"})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with a foreign index.7: %v, want ErrCorrupt", err)
	}
}

func mustEncode(t *testing.T, r *record) string {
	s, err := encodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var _ = vfs.ReadOnly

// FuzzDecodeSnapshot: any bytes decode to a consistent state or a typed
// ErrCorrupt; never a panic or an allocation beyond the input's size.
func FuzzDecodeSnapshot(f *testing.F) {
	st := newState()
	st.created, st.gen, st.base, st.applied = true, 2, 7, 7
	st.header = Header{UIDValidity: 1, UIDNext: 4, HighestModSeq: 7, IndexID: 9}
	st.msgs = []*Message{{UID: 1, Flags: Seen, ModSeq: 3, Keywords: []string{"a", "b"}}, {UID: 3, ModSeq: 7,
		fields: []FieldRef{{Name: "f", Host: "mx1", Ref: 4096}}}}
	st.keys = map[uint64][]uint64{5: {1, 2}}
	f.Add(encodeSnapshot(st))
	f.Add(encodeSnapshot(newState()))
	f.Add([]byte("NIX1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshot("index.2", b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for i := 1; i < len(s.msgs); i++ {
			if s.msgs[i].UID <= s.msgs[i-1].UID {
				t.Fatalf("accepted unsorted UIDs")
			}
		}
	})
}
