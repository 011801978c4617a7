package atomicrec

import (
	"testing"
)

// FuzzDecodeCopy feeds arbitrary bytes to the copy decoder: it must not
// panic, must not return a payload longer than the layout's capacity, and
// whatever it accepts must re-encode to the same bytes (a valid copy has
// exactly one encoding).
func FuzzDecodeCopy(f *testing.F) {
	l := Layout{Offset: 8, PayloadSize: 16}
	f.Add(EncodeCopy(l, 0, 1, 9, []byte("seed")), uint8(0))
	f.Add(EncodeCopy(l, 1, 1<<40, 1<<63, []byte("0123456789abcdef")), uint8(1))
	f.Add(make([]byte, l.CopySize()), uint8(0))
	f.Add([]byte("ARC1"), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, slot uint8) {
		s := int(slot % 2)
		v, err := DecodeCopy(l, s, b)
		if err != nil {
			return
		}
		if len(v.Payload) > l.PayloadSize || v.Gen == 0 {
			t.Fatalf("accepted impossible copy: %+v", v)
		}
		if got := EncodeCopy(l, s, v.Gen, v.Nonce, v.Payload); string(got) != string(b[:l.CopySize()]) {
			t.Fatalf("accepted bytes that do not re-encode to themselves")
		}
	})
}

// FuzzChoose feeds arbitrary record images (two copies of a packed
// layout) to Choose: no panic, and an accepted value is the newest valid
// copy.
func FuzzChoose(f *testing.F) {
	l := Layout{Offset: 0, PayloadSize: 8}
	img := make([]byte, l.Size())
	f.Add(append([]byte(nil), img...))
	copy(img, EncodeCopy(l, 0, 3, 3, []byte("a")))
	f.Add(append([]byte(nil), img...))
	copy(img[l.Stride():], EncodeCopy(l, 1, 4, 4, []byte("b")))
	f.Add(append([]byte(nil), img...))
	copy(img[l.Stride():], EncodeCopy(l, 1, 3, 5, []byte("c")))
	f.Add(append([]byte(nil), img...))
	f.Fuzz(func(t *testing.T, span []byte) {
		c, err := Choose(l, span, nil)
		if err != nil {
			return
		}
		for s := 0; s < 2; s++ {
			if c.CopyErr[s] == nil {
				start := min(int64(len(span)), l.Stride()*int64(s))
				b := append(append([]byte(nil), span[start:]...), make([]byte, l.CopySize())...)
				v, err := DecodeCopy(l, s, b)
				if err != nil || v.Gen > c.Value.Gen {
					t.Fatalf("Choose returned gen %d but slot %d holds gen %d (%v)", c.Value.Gen, s, v.Gen, err)
				}
			}
		}
	})
}

// FuzzDecodeSetOnce: no panic; a set word re-encodes to itself.
func FuzzDecodeSetOnce(f *testing.F) {
	w := EncodeSetOnce(64, 7)
	f.Add(w[:], int64(64))
	f.Add(make([]byte, 16), int64(0))
	f.Add([]byte{1}, int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, off int64) {
		v, set, err := DecodeSetOnce(off, b)
		if err != nil || !set {
			return
		}
		if e := EncodeSetOnce(off, v); string(e[:]) != string(b[:SetOnceSize]) {
			t.Fatalf("set word does not re-encode to itself")
		}
	})
}
