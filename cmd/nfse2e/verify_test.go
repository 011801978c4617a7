package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCopySparse: the verifier's copy of an export keeps a dead tail (one
// byte at 2^40) sparse and byte-exact instead of writing a terabyte.
func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "tail.1"), filepath.Join(dir, "copy")
	in, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	const far = int64(1) << 40
	if _, err := in.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := in.WriteAt([]byte{1}, far); err != nil {
		t.Skipf("the file system here cannot hold a byte at 2^40: %v", err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := copySparse(out, in); err != nil {
		t.Fatal(err)
	}
	fi, err := out.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != far+1 {
		t.Fatalf("copy has size %d, want %d", fi.Size(), far+1)
	}
	if blocks := fi.Sys().(*syscall.Stat_t).Blocks; blocks > 1024 {
		t.Fatalf("copy allocated %d blocks: not sparse", blocks)
	}
	for _, c := range []struct {
		off  int64
		want string
	}{{0, "head"}, {far, "\x01"}, {far / 2, "\x00"}} {
		b := make([]byte, len(c.want))
		if _, err := out.ReadAt(b, c.off); err != nil || string(b) != c.want {
			t.Fatalf("copy at %d = %q, %v; want %q", c.off, b, err, c.want)
		}
	}
}
