package rename

import (
	"bytes"
	"encoding/hex"
	"flag"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var goldenHeader = header{State: StateComplete, Info: Info{
	Generation: 0x0102030405060708, ClaimID: 0x1122334455667788, Host: "mx1.example.org",
	Size: 6400000, Checksum: 0x8877665544332211,
}}

// TestHeaderGolden pins the bytes of a header: an accidental change of
// the format fails here (testdata/header.golden, the first headerUsed
// bytes in hex; the rest of the page is zero).
func TestHeaderGolden(t *testing.T) {
	b := make([]byte, HeaderSize)
	encodeHeader(b, goldenHeader)
	got := hex.Dump(b[:headerUsed])
	td, err := osfs.New("testdata")
	if err != nil {
		t.Fatal(err)
	}
	defer td.Close()
	if *update {
		f, err := td.OpenFile("header.golden", vfs.WriteOnly|vfs.Create|vfs.Truncate, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(got), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	want := readAll(t, td, "header.golden")
	if got != string(want) {
		t.Fatalf("header bytes changed (the on-disk format!):\n%s\nwant\n%s", got, want)
	}
	if !bytes.Equal(b[headerUsed:], make([]byte, HeaderSize-headerUsed)) {
		t.Fatal("padding is not zero")
	}
	h, err := decodeHeader(b)
	if err != nil || h != goldenHeader {
		t.Fatalf("decode: %+v, %v", h, err)
	}
}

// TestHeaderRejectsEveryFlip: a flip of any bit of the header page is
// detected (nothing silently wrong, brief §2.6).
func TestHeaderRejectsEveryFlip(t *testing.T) {
	b := make([]byte, HeaderSize)
	encodeHeader(b, goldenHeader)
	for i := 0; i < HeaderSize; i++ {
		for bit := 0; bit < 8; bit++ {
			b[i] ^= 1 << bit
			if h, err := decodeHeader(b); err == nil {
				t.Fatalf("flip of byte %d bit %d accepted: %+v", i, bit, h)
			}
			b[i] ^= 1 << bit
		}
	}
	if _, err := decodeHeader(b[:HeaderSize-1]); err == nil {
		t.Fatal("a short header was accepted")
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{State: StateClaimed, Info: Info{Generation: 1, ClaimID: 1}},
		{State: StateComplete, Info: Info{Generation: ^uint64(0), ClaimID: ^uint64(0), Host: strings.Repeat("h", MaxHostLen), Size: 1 << 40, Checksum: 5}},
	} {
		b := make([]byte, HeaderSize)
		encodeHeader(b, h)
		got, err := decodeHeader(b)
		if err != nil || got != h {
			t.Fatalf("%+v: decoded %+v, %v", h, got, err)
		}
	}
}

// FuzzDecodeHeader: no input makes the decoder panic, and whatever it
// accepts encodes back to the same bytes.
func FuzzDecodeHeader(f *testing.F) {
	b := make([]byte, HeaderSize)
	encodeHeader(b, goldenHeader)
	f.Add(b[:headerUsed])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		page := make([]byte, HeaderSize)
		copy(page, in)
		h, err := decodeHeader(page)
		if err != nil {
			return
		}
		again := make([]byte, HeaderSize)
		encodeHeader(again, h)
		if !bytes.Equal(again, page) {
			t.Fatalf("decoded %+v, which encodes to other bytes", h)
		}
	})
}
