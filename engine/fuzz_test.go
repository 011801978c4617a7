package engine

import (
	"errors"
	"testing"
)

// FuzzDecodeRecord: any symlink target decodes to a record that encodes
// back to the same target, or fails with a typed ErrCorrupt; never a
// panic, never a large allocation from a length field.
func FuzzDecodeRecord(f *testing.F) {
	seeds := []*record{
		{gen: 1, seq: 1, ops: []op{{kind: opCreate, uidValidity: 7, indexID: 9}}},
		{gen: 1, seq: 2, key: Key{Owner: 3, N: 1}, ops: []op{{kind: opAppend, flags: Seen, keywords: []string{"$Junk", "a"},
			fields: []FieldRef{{Name: "file", Host: "mx1", Ref: 4096}}}}},
		{gen: 2, seq: 9, key: Key{Owner: 3, N: 2}, ops: []op{{kind: opFlags, uid: 5, flags: Flagged, remove: Seen,
			keywords: []string{"x"}, removeKw: []string{"y"}}, {kind: opExpunge, uid: 4}}},
		{gen: 2, seq: 10, ops: []op{{kind: opField, uid: 5, fields: []FieldRef{{Name: "env", Host: "mx2", Ref: 8192}}}}},
		{gen: 2, seq: 11, ops: []op{{kind: opSeal, nextGen: 3}}},
		{gen: 3, seq: 12, ops: []op{{kind: opRelocate, from: "mx1", to: "mx1+11", moves: []refMove{{4096, 4096}, {4160, 4200}, {1 << 40, 1 << 20}}}}},
		{gen: 3, seq: 12},
	}
	for _, r := range seeds {
		s, err := encodeRecord(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	f.Add("")
	f.Add("NIR1")
	f.Fuzz(func(t *testing.T, target string) {
		r, err := decodeRecord("t.1.1", target)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		if again != target {
			t.Fatalf("round trip changed the record:\n%q\n%q", target, again)
		}
	})
}

// TestDecodeRecordRejectsEveryFlip: a flipped bit anywhere in a record's
// bytes, a truncation and an extension are all detected.
func TestDecodeRecordRejectsEveryFlip(t *testing.T) {
	r := &record{gen: 1, seq: 2, key: Key{Owner: 3, N: 1}, ops: []op{{kind: opAppend, flags: Seen, keywords: []string{"$Junk"}}}}
	s, err := encodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(s) {
		for _, c := range []byte{'A', 'z', '0', '-', '_', '/', 0} {
			if s[i] == c {
				continue
			}
			b := []byte(s)
			b[i] = c
			if _, err := decodeRecord("t.1.2", string(b)); !errors.Is(err, ErrCorrupt) {
				// a base64 change that decodes to identical bytes is not a change
				if d, derr := decodeRecord("t.1.2", string(b)); derr == nil && d.seq == r.seq && string(b) != s {
					if again, _ := encodeRecord(d); again == s {
						continue
					}
				}
				t.Fatalf("byte %d set to %q: %v", i, c, err)
			}
		}
	}
	for n := range len(s) {
		if _, err := decodeRecord("t.1.2", s[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := decodeRecord("t.1.2", s+"AA"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("extended: %v", err)
	}
}
