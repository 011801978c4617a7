package atomicrec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nfsindex/nfsindex/internal/atomicrectest"
	"github.com/nfsindex/nfsindex/vfs"
)

var ctx = context.Background()

func open(t testing.TB, m *atomicrectest.FS, name string) vfs.File {
	t.Helper()
	f, err := m.OpenFile(name, vfs.ReadWrite|vfs.Create, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newRec(t testing.TB, f vfs.File, l Layout) *Record {
	t.Helper()
	// A seeded nonce source: every run of a test writes the same bytes.
	r, err := New(f, l, Options{Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var testLayouts = []struct {
	name string
	l    Layout
}{
	{"packed", Layout{Offset: 64, PayloadSize: 24}},
	{"sector", Layout{Offset: 512, PayloadSize: 24, Align: 512}},
	{"page", PageAligned(4096, 100, 0)},
	{"empty-payload", Layout{Offset: 0, PayloadSize: 0}},
}

func TestLayoutValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Layout
		ok   bool
	}{
		{"packed", Layout{Offset: 8, PayloadSize: 10}, true},
		{"page", PageAligned(8192, 10, 0), true},
		{"negative offset", Layout{Offset: -8}, false},
		{"unaligned packed", Layout{Offset: 3}, false},
		{"unaligned page", Layout{Offset: 512, Align: 4096}, false},
		{"align not power of two", Layout{Align: 3000}, false},
		{"align too big", Layout{Align: 1 << 20}, false},
		{"payload too big", Layout{PayloadSize: MaxPayloadSize + 1}, false},
		{"payload negative", Layout{PayloadSize: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrLayout) {
				t.Fatalf("Validate() = %v, not ErrLayout", err)
			}
		})
	}
}

func TestLayoutGeometry(t *testing.T) {
	l := PageAligned(4096, 100, 0)
	if l.Stride() != 4096 || l.Size() != 8192 || l.CopyOffset(1) != 8192 || l.End() != 12288 {
		t.Fatalf("page layout geometry: stride %d size %d copy1 %d end %d", l.Stride(), l.Size(), l.CopyOffset(1), l.End())
	}
	p := Layout{Offset: 16, PayloadSize: 1}
	if p.CopySize() != 49 || p.Stride() != 56 {
		t.Fatalf("packed geometry: copy %d stride %d", p.CopySize(), p.Stride())
	}
}

// TestUpdateRead is the basic round trip on every layout: generations
// climb by one, the newest payload is read back, slots alternate.
func TestUpdateRead(t *testing.T) {
	for _, tc := range testLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m := atomicrectest.New()
			r := newRec(t, open(t, m, "f"), tc.l)
			if _, err := r.Read(ctx); !errors.Is(err, ErrEmpty) {
				t.Fatalf("Read of a new record = %v, want ErrEmpty", err)
			}
			for i := 1; i <= 5; i++ {
				p := bytes.Repeat([]byte{byte(i)}, min(i*5, tc.l.PayloadSize))
				v, err := r.Update(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if v.Gen != uint64(i) || v.Slot != (i-1)%2 {
					t.Fatalf("update %d: gen %d slot %d", i, v.Gen, v.Slot)
				}
				r2 := newRec(t, open(t, m, "f"), tc.l)
				got, err := r2.Read(ctx)
				if err != nil || got.Gen != uint64(i) || !bytes.Equal(got.Payload, p) {
					t.Fatalf("read after update %d: %+v, %v", i, got, err)
				}
				if err := r.Check(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if m.Syncs != 5 {
				t.Fatalf("5 updates made %d syncs, want 5 (one per update)", m.Syncs)
			}
		})
	}
}

func TestUpdateTooLarge(t *testing.T) {
	m := atomicrectest.New()
	r := newRec(t, open(t, m, "f"), Layout{PayloadSize: 4})
	if _, err := r.Update(ctx, []byte("12345")); !errors.Is(err, ErrLayout) {
		t.Fatalf("Update of 5 bytes into 4 = %v, want ErrLayout", err)
	}
}

// twoGenerations returns the record's bytes after generation 1 (payload
// "old...") and after generation 2 ("new...") of layout l.
func twoGenerations(t *testing.T, l Layout) (old, new []byte, oldP, newP []byte) {
	t.Helper()
	m := atomicrectest.New()
	f := open(t, m, "f")
	r := newRec(t, f, l)
	oldP = bytes.Repeat([]byte("old"), l.PayloadSize/3)
	newP = bytes.Repeat([]byte("NEW"), l.PayloadSize/3)
	if _, err := r.Update(ctx, oldP); err != nil {
		t.Fatal(err)
	}
	old = m.Bytes("f")
	if _, err := r.Update(ctx, newP); err != nil {
		t.Fatal(err)
	}
	return old, m.Bytes("f"), oldP, newP
}

func choosePayload(t *testing.T, l Layout, img []byte) ([]byte, error) {
	t.Helper()
	span := img[min(int64(len(img)), l.Offset):]
	c, err := Choose(l, span, nil)
	return c.Value.Payload, err
}

// TestTornUpdate checks, for every byte position k of the record, both
// orders in which a torn write can land (new bytes before k and old after,
// and the reverse: N7 write-back in any order, N8 tearing at any byte):
// the reader returns exactly the old or the new payload, never a mixture.
func TestTornUpdate(t *testing.T) {
	for _, tc := range testLayouts {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.l
			old, new, oldP, newP := twoGenerations(t, l)
			for k := l.Offset; k <= int64(len(new)); k++ {
				for dir := 0; dir < 2; dir++ {
					img := append([]byte(nil), old...)
					img = append(img, make([]byte, max(0, len(new)-len(old)))...)
					if dir == 0 {
						copy(img[:k], new[:k])
					} else {
						copy(img[k:], new[k:])
					}
					p, err := choosePayload(t, l, img)
					if err != nil {
						t.Fatalf("k=%d dir=%d: %v", k, dir, err)
					}
					if !bytes.Equal(p, oldP) && !bytes.Equal(p, newP) {
						t.Fatalf("k=%d dir=%d: read a payload that was never written: %q", k, dir, p)
					}
				}
			}
		})
	}
}

// TestCorruptByte flips every bit and zeroes every byte of the record in
// turn: the damaged copy is detected and the other copy is returned; damage
// in the newest copy falls back to the older generation, never to a wrong
// payload.
func TestCorruptByte(t *testing.T) {
	for _, tc := range testLayouts {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.l
			_, img, oldP, newP := twoGenerations(t, l)
			newSlot := l.CopyOffset(1)
			for off := l.Offset; off < l.End() && off < int64(len(img)); off++ {
				for _, mut := range []func(b byte) byte{
					func(b byte) byte { return b ^ 0x01 },
					func(b byte) byte { return b ^ 0x80 },
					func(b byte) byte { return 0 },
				} {
					bad := append([]byte(nil), img...)
					bad[off] = mut(bad[off])
					if bytes.Equal(bad, img) {
						continue
					}
					p, err := choosePayload(t, l, bad)
					inCopy := func(s int) bool {
						o := l.CopyOffset(s)
						return off >= o && off < o+int64(l.CopySize())
					}
					switch {
					case inCopy(1) && off >= newSlot:
						if err != nil || !bytes.Equal(p, oldP) {
							t.Fatalf("damage at %d in the newest copy: got %q, %v; want the old payload", off, p, err)
						}
					case inCopy(0):
						if err != nil || !bytes.Equal(p, newP) {
							t.Fatalf("damage at %d in the older copy: got %q, %v; want the new payload", off, p, err)
						}
					default: // padding
						if err != nil || !bytes.Equal(p, newP) {
							t.Fatalf("damage at %d in padding: got %q, %v", off, p, err)
						}
					}
				}
			}
		})
	}
}

// TestTruncatedFile cuts the file at every length: a record whose newest
// copy is cut off reads the older one, and with both cut it is ErrCorrupt
// or ErrEmpty, never a wrong payload.
func TestTruncatedFile(t *testing.T) {
	for _, tc := range testLayouts {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.l
			_, img, oldP, newP := twoGenerations(t, l)
			for n := int64(0); n <= int64(len(img)); n++ {
				m := atomicrectest.New()
				m.SetBytes("f", img[:n])
				r := newRec(t, open(t, m, "f"), l)
				v, err := r.Read(ctx)
				// A copy survives the cut when every byte cut from it was
				// zero (a checksum byte can be): it reads back whole.
				intact := func(slot int) bool {
					end := l.CopyOffset(slot) + int64(l.CopySize())
					return n >= end || isZero(img[n:end])
				}
				switch {
				case intact(1):
					if err != nil || !bytes.Equal(v.Payload, newP) {
						t.Fatalf("len %d: %q, %v; want new", n, v.Payload, err)
					}
				case intact(0):
					if err != nil || !bytes.Equal(v.Payload, oldP) {
						t.Fatalf("len %d: %q, %v; want old", n, v.Payload, err)
					}
				case n <= l.Offset:
					if !errors.Is(err, ErrEmpty) {
						t.Fatalf("len %d: %v, want ErrEmpty", n, err)
					}
				default:
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("len %d: %q, %v; want ErrCorrupt", n, v.Payload, err)
					}
					var ce *CorruptError
					if !errors.As(err, &ce) || ce.Path != "f" || ce.Offset != l.Offset {
						t.Fatalf("len %d: error %v is not a *CorruptError naming f at %d", n, err, l.Offset)
					}
				}
			}
		})
	}
}

// TestCopyPrefixNeverBlank: the first byte of every copy a writer puts
// down is non-zero, so a file cut one byte into a copy reads as damaged
// (ErrCorrupt), never as a record that was never written (ErrEmpty) that a
// caller could then initialise over a committed value.
func TestCopyPrefixNeverBlank(t *testing.T) {
	l := testLayouts[1].l
	m := atomicrectest.New()
	r, err := New(open(t, m, "f"), l, Options{Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4096; i++ { // with a uniform first byte, P(all non-zero) < 1e-6
		v, err := r.Update(ctx, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		if b := m.Bytes("f")[l.CopyOffset(v.Slot)]; b == 0 {
			t.Fatalf("update %d: copy %d starts with a zero byte", i, v.Slot)
		}
	}
}

// TestCrashDuringUpdate crashes the file system while an update is in
// flight, many times with random subsets and orders of the unsynced writes
// torn at 1, 512 and 4096 bytes: the survivor is the old or the new
// payload. A crash after Update returned always keeps the new one (the
// sync before returning is what makes the commit durable).
func TestCrashDuringUpdate(t *testing.T) {
	for _, tc := range testLayouts {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			for i := 0; i < 300; i++ {
				m := atomicrectest.New()
				f := open(t, m, "f")
				r := newRec(t, f, tc.l)
				prev := []byte("a")[:min(1, tc.l.PayloadSize)]
				if _, err := r.Update(ctx, prev); err != nil {
					t.Fatal(err)
				}
				next := []byte(fmt.Sprint(i % 10))[:min(1, tc.l.PayloadSize)]
				v, err := r.Write(ctx, next)
				if err != nil {
					t.Fatal(err)
				}
				tear := []int{1, 512, 4096}[i%3]
				c := m.Crash(rng, tear)
				got, err := newRec(t, open(t, c, "f"), tc.l).Read(ctx)
				if err != nil || !(got.Gen == 1 && bytes.Equal(got.Payload, prev) || got.Gen == 2 && bytes.Equal(got.Payload, next)) {
					t.Fatalf("crash during update: gen %d %q, %v", got.Gen, got.Payload, err)
				}
				// Finish the update: now a crash must keep it.
				if err := f.Datasync(); err != nil {
					t.Fatal(err)
				}
				r.Durable(v)
				c = m.Crash(rng, tear)
				got, err = newRec(t, open(t, c, "f"), tc.l).Read(ctx)
				if err != nil || got.Gen != 2 || !bytes.Equal(got.Payload, next) {
					t.Fatalf("crash after update returned: gen %d %q, %v; want %q", got.Gen, got.Payload, err, next)
				}
			}
		})
	}
}

// TestCrashAfterUpdateReturned is the acknowledged-write rule on its own:
// every crash after Update returned keeps the update.
func TestCrashAfterUpdateReturned(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := atomicrectest.New()
	f := open(t, m, "f")
	l := testLayouts[0].l
	r := newRec(t, f, l)
	for i := 1; i <= 50; i++ {
		p := []byte(fmt.Sprintf("v%d", i))
		if _, err := r.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		c := m.Crash(rng, 1)
		got, err := newRec(t, open(t, c, "f"), l).Read(ctx)
		if err != nil || !bytes.Equal(got.Payload, p) {
			t.Fatalf("update %d acknowledged, after crash read %q, %v", i, got.Payload, err)
		}
	}
}

// TestFailedSyncKeepsDurableCopy: after a failed Datasync the next write
// goes to the same slot, so the last durable copy survives any crash.
func TestFailedSyncKeepsDurableCopy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	l := testLayouts[0].l
	for i := 0; i < 200; i++ {
		m := atomicrectest.New()
		f := open(t, m, "f")
		r := newRec(t, f, l)
		if _, err := r.Update(ctx, []byte("durable")); err != nil {
			t.Fatal(err)
		}
		m.FailSyncs = 1
		if _, err := r.Update(ctx, []byte("failed")); !errors.Is(err, atomicrectest.ErrInjected) {
			t.Fatalf("Update with failing sync = %v", err)
		}
		v, err := r.Write(ctx, []byte("retry"))
		if err != nil {
			t.Fatal(err)
		}
		if v.Slot != 1 || v.Gen != 3 {
			t.Fatalf("write after failed sync went to slot %d gen %d, want slot 1 gen 3", v.Slot, v.Gen)
		}
		c := m.Crash(rng, 1)
		got, err := newRec(t, open(t, c, "f"), l).Read(ctx)
		if err != nil {
			t.Fatalf("after crash: %v", err)
		}
		switch string(got.Payload) {
		case "durable", "failed", "retry":
		default:
			t.Fatalf("after crash read %q", got.Payload)
		}
	}
}

// TestMonotonicReader: a Record that returned generation 2 never returns
// generation 1 (a host whose page cache went stale, N3), and reports
// ErrRegressed; Reset accepts it again.
func TestMonotonicReader(t *testing.T) {
	l := testLayouts[0].l
	old, new, _, _ := twoGenerations(t, l)
	m := atomicrectest.New()
	m.SetBytes("f", new)
	r := newRec(t, open(t, m, "f"), l)
	if v, err := r.Read(ctx); err != nil || v.Gen != 2 {
		t.Fatalf("Read = %+v, %v", v, err)
	}
	m.SetBytes("f", old)
	if _, err := r.Read(ctx); !errors.Is(err, ErrRegressed) {
		t.Fatalf("Read of an older image = %v, want ErrRegressed", err)
	}
	m.SetBytes("f", make([]byte, len(new)))
	if _, err := r.Read(ctx); !errors.Is(err, ErrRegressed) {
		t.Fatalf("Read of a blank image after gen 2 = %v, want ErrRegressed", err)
	}
	r.Reset()
	m.SetBytes("f", old)
	if v, err := r.Read(ctx); err != nil || v.Gen != 1 {
		t.Fatalf("Read after Reset = %+v, %v", v, err)
	}
}

// TestTwoWritersConflict: two writers that each believe they own the
// record are detected, never silently merged.
func TestTwoWritersConflict(t *testing.T) {
	l := testLayouts[0].l
	m := atomicrectest.New()
	a := newRec(t, open(t, m, "f"), l)
	b := newRec(t, open(t, m, "f"), l)
	if _, err := a.Update(ctx, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Both now write generation 2 into slot 1; b's lands last.
	if _, err := a.Update(ctx, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	reader := newRec(t, open(t, m, "f"), l)
	if v, err := reader.Read(ctx); err != nil || string(v.Payload) != "a2" {
		t.Fatalf("read = %q, %v", v.Payload, err)
	}
	if _, err := b.Update(ctx, []byte("b2")); err != nil {
		t.Fatal(err)
	}
	// Same generation, different payload: the reader says so.
	if _, err := reader.Read(ctx); !errors.Is(err, ErrConflict) {
		t.Fatalf("reader after the race = %v, want ErrConflict", err)
	}
	// Writer a reads and learns of b's generation... b wrote gen 2 as a
	// did, so a finds nothing newer than its own; its next write (gen 3)
	// then makes b's state stale, and b's Check reports it.
	if _, err := a.Update(ctx, []byte("a3")); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx); !errors.Is(err, ErrConflict) {
		t.Fatalf("b.Check after a wrote gen 3 = %v, want ErrConflict", err)
	}
	if _, err := b.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, []byte("b4")); !errors.Is(err, ErrConflict) {
		t.Fatalf("b.Update after reading a foreign generation = %v, want ErrConflict", err)
	}
}

// TestSameGenerationBothCopies: two valid copies claiming one generation
// (two writers wrote different slots) are ErrConflict, not a guess.
func TestSameGenerationBothCopies(t *testing.T) {
	l := testLayouts[0].l
	img := make([]byte, l.End())
	copy(img[l.CopyOffset(0):], EncodeCopy(l, 0, 7, 11, []byte("x")))
	copy(img[l.CopyOffset(1):], EncodeCopy(l, 1, 7, 12, []byte("y")))
	if _, err := choosePayload(t, l, img); !errors.Is(err, ErrConflict) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("two copies of gen 7 = %v, want ErrConflict (not ErrCorrupt)", err)
	}
}

// TestCopyErrorKinds checks that each kind of bad copy gets its own error,
// and that all but ErrBlank are in the ErrCorrupt family.
func TestCopyErrorKinds(t *testing.T) {
	l := Layout{Offset: 8, PayloadSize: 8}
	good := EncodeCopy(l, 0, 1, 0x5eed, []byte("abc"))
	resum := func(b []byte) []byte {
		at := offPayload + l.PayloadSize
		putU64(b[at:], xxhash64(b[:at]))
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		slot int
		l    Layout
		want error
	}{
		{"blank", make([]byte, l.CopySize()), 0, l, ErrBlank},
		{"short", good[:10], 0, l, ErrLength},
		{"magic", func() []byte { b := clone(good); b[offMagic] ^= 1; return b }(), 0, l, ErrMagic},
		{"version", func() []byte { b := clone(good); b[offVersion] = 9; return resum(b) }(), 0, l, ErrVersion},
		{"checksum", func() []byte { b := clone(good); b[offPayload] ^= 1; return b }(), 0, l, ErrChecksum},
		{"wrong slot", good, 1, l, ErrMismatch},
		{"wrong offset", good, 0, Layout{Offset: 16, PayloadSize: 8}, ErrMismatch},
		{"flags", func() []byte { b := clone(good); b[offFlags] = 1; return resum(b) }(), 0, l, ErrMismatch},
		{"length", func() []byte { b := clone(good); b[offLength] = 9; return resum(b) }(), 0, l, ErrLength},
		{"gen zero", func() []byte { b := clone(good); clear(b[offGen : offGen+8]); return resum(b) }(), 0, l, ErrLength},
		{"trailing bytes", func() []byte { b := clone(good); b[offPayload+5] ^= 1; return resum(b) }(), 0, l, ErrLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCopy(tc.l, tc.slot, tc.b)
			if err != tc.want {
				t.Fatalf("DecodeCopy = %v, want %v", err, tc.want)
			}
			if errors.Is(err, ErrCorrupt) == (tc.want == ErrBlank) {
				t.Fatalf("errors.Is(%v, ErrCorrupt) = %v", err, errors.Is(err, ErrCorrupt))
			}
		})
	}
	if _, err := DecodeCopy(l, 0, good); err != nil {
		t.Fatal(err)
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
