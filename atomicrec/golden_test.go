package atomicrec

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name (a hex dump); with -update it
// rewrites the file. A failure means the on-disk format changed: bump
// FormatVersion and update docs/design.md, or undo the change.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	dump := []byte(hex.Dump(got))
	if *update {
		if err := os.WriteFile(path, dump, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(dump, want) {
		t.Fatalf("bytes of %s changed: the on-disk format is pinned.\ngot:\n%s\nwant:\n%s", name, dump, want)
	}
}

func TestGoldenCopy(t *testing.T) {
	l := Layout{Offset: 4096, PayloadSize: 16}
	golden(t, "copy_slot1_gen7.hex", EncodeCopy(l, 1, 7, 0x0123456789abcdef, []byte("hello, nfs")))
}

func TestGoldenSetOnce(t *testing.T) {
	b := EncodeSetOnce(128, 0xfeedface)
	golden(t, "setonce_128.hex", b[:])
}

// TestGoldenRecord pins a whole page-aligned record after two updates.
func TestGoldenRecord(t *testing.T) {
	l := Layout{Offset: 0, PayloadSize: 8, Align: 64}
	img := make([]byte, l.Size())
	copy(img[l.CopyOffset(0):], EncodeCopy(l, 0, 1, 0x1111, []byte("first")))
	copy(img[l.CopyOffset(1):], EncodeCopy(l, 1, 2, 0x2222, []byte("second")))
	golden(t, "record_align64.hex", img)
	c, err := Choose(l, img, nil)
	if err != nil || string(c.Value.Payload) != "second" || c.Value.Gen != 2 {
		t.Fatalf("Choose(golden) = %+v, %v", c, err)
	}
}
