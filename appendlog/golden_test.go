package appendlog

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/internal/atomicrectest"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name (a hex dump); with -update it
// rewrites it. A failure means the on-disk format changed: bump
// FormatVersion and update docs/design.md, or undo the change. The files
// are read and written through the seam (osfs), like everything else.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	fsys, err := osfs.New("testdata")
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	dump := []byte(hex.Dump(got))
	if *update {
		f, err := fsys.OpenFile(name, vfs.WriteOnly|vfs.Create|vfs.Truncate, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(dump, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := fsys.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, fi.Size)
	if _, err := f.ReadAt(want, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if !bytes.Equal(dump, want) {
		t.Fatalf("bytes of %s changed: the on-disk format is pinned.\ngot:\n%s", name, dump)
	}
}

func TestGoldenHeader(t *testing.T) {
	h := header{id: 0x1122334455667788, used: 4096 + 64, start: 4096, groupHash: 0xabcdef, records: 1, host: "mx1.example"}
	golden(t, "header_payload.hex", encodeHeader(h))
}

func TestGoldenFrame(t *testing.T) {
	golden(t, "frame_plain.hex", encodeFrame(nil, 0x1122334455667788, 4096, 7, 0, []byte("hello, log")))
	golden(t, "frame_continuation.hex", encodeFrame(nil, 0x1122334455667788, 4160, 8, 4096, []byte("more")))
}

// TestGoldenLog pins a whole log file: creation, a commit of two records,
// and a commit linking a continuation (so a set next word is pinned too).
func TestGoldenLog(t *testing.T) {
	m := atomicrectest.New()
	w, err := Create(ctx, m, "idx", "mx1", Options{ID: 0x1122334455667788, Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAppend(t, w, 1, "first")
	mustAppend(t, w, 2, "second")
	mustCommit(t, w)
	if _, err := w.AppendAfter(ctx, a, 3, []byte("continued")); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, w)
	img := m.Bytes("idx/log.mx1")
	golden(t, "log_mx1.hex", img)
	// And the pinned bytes read back.
	dm := atomicrectest.New()
	dm.SetBytes("idx/log.mx1", img)
	r, err := OpenReader(ctx, dm, "idx", "mx1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := r.Chain(ctx, a)
	if err != nil || len(ch) != 2 || string(ch[1].Payload) != "continued" {
		t.Fatalf("chain of the golden log = %+v, %v", ch, err)
	}
}

// TestGoldenLogFromOlderWriter reads a log pinned before writers set bit 0
// of every header nonce (a writer's habit, not part of the format): files
// written then must stay readable.
func TestGoldenLogFromOlderWriter(t *testing.T) {
	img := readDump(t, "log_mx1_even_nonce.hex")
	m := atomicrectest.New()
	m.SetBytes("idx/log.mx1", img)
	r, err := OpenReader(ctx, m, "idx", "mx1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if info := r.Info(); info.Records != 3 {
		t.Fatalf("older writer's log: %+v, want 3 records", info)
	}
}

// readDump parses testdata/name, a hex.Dump listing, back into bytes.
func readDump(t *testing.T, name string) []byte {
	t.Helper()
	fsys, err := osfs.New("testdata")
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f, err := fsys.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dump := make([]byte, fi.Size)
	if _, err := f.ReadAt(dump, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	var out []byte
	for _, line := range strings.Split(string(dump), "\n") {
		hexPart, _, _ := strings.Cut(line, "|")
		fields := strings.Fields(hexPart)
		if len(fields) < 2 {
			continue
		}
		b, err := hex.DecodeString(strings.Join(fields[1:], ""))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, b...)
	}
	return out
}

// TestReadImage: the pure reader agrees with a Reader on the golden log.
func TestReadImage(t *testing.T) {
	m := atomicrectest.New()
	w := mustCreate(t, m)
	mustAppend(t, w, 1, "x")
	mustCommit(t, w)
	info, recs, err := ReadImage(m.Bytes("idx/"+LogName(host)), host)
	if err != nil || info != w.Info() || len(recs) != 1 || string(recs[0].Payload) != "x" {
		t.Fatalf("ReadImage = %+v, %+v, %v", info, recs, err)
	}
	if _, _, err := ReadImage([]byte("garbage"), host); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadImage(garbage) = %v, want ErrCorrupt", err)
	}
}
