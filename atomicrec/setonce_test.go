package atomicrec

import (
	"errors"
	"testing"

	"github.com/nfsindex/nfsindex/internal/atomicrectest"
)

func TestSetOnce(t *testing.T) {
	m := atomicrectest.New()
	f := open(t, m, "f")
	s := NewSetOnce(f, 32)
	if v, set, err := s.Get(ctx); err != nil || set || v != 0 {
		t.Fatalf("Get of an unwritten word = %d, %v, %v", v, set, err)
	}
	if err := s.Set(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if v, set, err := s.Get(ctx); err != nil || !set || v != 0 {
		t.Fatalf("Get after Set(0) = %d, %v, %v; 0 must be a settable value", v, set, err)
	}
	if err := s.Set(ctx, 0); err != nil {
		t.Fatalf("repeating Set with the same value = %v", err)
	}
	if err := s.Set(ctx, 5); !errors.Is(err, ErrAlreadySet) {
		t.Fatalf("Set to another value = %v, want ErrAlreadySet", err)
	}
}

// TestSetOnceTorn checks every way a set can be half written: any subset
// of its 16 bytes (the byte-level worst case of N8), and a word copied to
// another offset. It reads as unset, or ErrTorn, or the right value; never
// a wrong value.
func TestSetOnceTorn(t *testing.T) {
	const off = 4096
	const v = 0x0123456789abcdef
	full := EncodeSetOnce(off, v)
	for mask := 0; mask < 1<<16; mask++ {
		var b [SetOnceSize]byte
		for i := range b {
			if mask&(1<<i) != 0 {
				b[i] = full[i]
			}
		}
		got, set, err := DecodeSetOnce(off, b[:])
		switch {
		case err != nil:
			if !errors.Is(err, ErrTorn) {
				t.Fatalf("mask %x: %v", mask, err)
			}
		case set && got != v:
			t.Fatalf("mask %x: read wrong value %x", mask, got)
		case set && mask != 1<<16-1 && b != full:
			t.Fatalf("mask %x: partial word read as set", mask)
		}
	}
	if _, _, err := DecodeSetOnce(off+16, full[:]); !errors.Is(err, ErrTorn) {
		t.Fatalf("word read at another offset = %v, want ErrTorn", err)
	}
	if _, _, err := DecodeSetOnce(off, full[:8]); !errors.Is(err, ErrTorn) {
		t.Fatalf("short word = %v, want ErrTorn", err)
	}
}

// TestSetOnceRepairsTorn: a set interrupted by a crash leaves a torn word
// that its writer can set again.
func TestSetOnceRepairsTorn(t *testing.T) {
	m := atomicrectest.New()
	f := open(t, m, "f")
	full := EncodeSetOnce(0, 9)
	torn := append([]byte(nil), full[:5]...)
	if _, err := f.WriteAt(torn, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewSetOnce(f, 0).Get(ctx); !errors.Is(err, ErrTorn) {
		t.Fatalf("Get of torn word = %v", err)
	}
	if err := NewSetOnce(f, 0).Set(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if v, set, err := NewSetOnce(f, 0).Get(ctx); err != nil || !set || v != 9 {
		t.Fatalf("after repair: %d %v %v", v, set, err)
	}
}
