package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/rename"
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

// TestCorruptSnapshotEveryOffsetClass: flipping a byte in the version
// file's header (rename's), in the snapshot's header, a checksum, the
// string table, the message records or the extension area, zeroing it, or
// truncating the file anywhere, is a typed ErrCorrupt on open, never a
// panic and never a silently different mailbox. Then the same damage to
// the snapshot inside a version file whose own header and payload hash
// are rewritten to match (a valid version holding a bad snapshot): the
// engine's decoder catches it.
func TestCorruptSnapshotEveryOffsetClass(t *testing.T) {
	s := compacted(t)
	fsys := s.Host("editor").FS()
	good, err := vfstest.ReadFile(fsys, "mbox/index.2")
	if err != nil {
		t.Fatal(err)
	}
	const h = rename.HeaderSize
	payload := good[h:]
	fileOffsets := []int{0, 8, 10, 16, 24, 32, 40, 48, 112, 119, 120, h - 1}
	payloadOffsets := []int{0, 4, 8, 12, 20, 44, 56, 64, 72, 80, 87, snapHeaderSize, snapHeaderSize + 1, len(payload) / 2, len(payload) - 24, len(payload) - 1}
	for _, off := range payloadOffsets {
		fileOffsets = append(fileOffsets, h+off)
	}
	mutations := func(off int) []func([]byte) []byte {
		return []func([]byte) []byte{
			func(b []byte) []byte { b[off] ^= 0x10; return b },
			func(b []byte) []byte {
				if b[off] == 0 {
					b[off] = 0xff
				} else {
					b[off] = 0
				}
				return b
			},
			func(b []byte) []byte { return b[:off] },
		}
	}
	n := 0
	open := func(what string) {
		t.Helper()
		n++
		host := s.Host(fmt.Sprintf("reader%d", n))
		_, err := Open(context.Background(), Options{FS: host.FS(), Dir: "mbox", Host: host.Name()})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open returned %v, want ErrCorrupt", what, err)
		}
	}
	for _, off := range fileOffsets {
		for i, mutate := range mutations(off) {
			if err := vfstest.WriteFile(fsys, "mbox/index.2", mutate(append([]byte(nil), good...))); err != nil {
				t.Fatal(err)
			}
			open(fmt.Sprintf("file offset %d, mutation %d", off, i))
		}
	}
	for _, off := range payloadOffsets {
		for i, mutate := range mutations(off) {
			c, err := rename.Begin(context.Background(), fsys, "mbox/"+claimBase, 2, rename.Options{Host: "editor", Rand: rand.New(rand.NewPCG(uint64(off), uint64(i)))})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(mutate(append([]byte(nil), payload...))); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Remove("mbox/index.2"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CommitTo(context.Background(), "mbox/index.2"); err != nil {
				t.Fatal(err)
			}
			open(fmt.Sprintf("payload offset %d in a valid version file, mutation %d", off, i))
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
