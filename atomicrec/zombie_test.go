package atomicrec

import (
	"bytes"
	"testing"

	"github.com/nfsindex/nfsindex/internal/atomicrectest"
)

// TestNoZombieWrite is the scenario the nonce and the payload keystream
// exist for. Write U tears in a crash (some 512-byte sectors land, others
// not), so after recovery the record reads as the older V: U "did not
// happen". The writer then writes W into the same slot, with the same
// generation U had and a payload that shares most of U's bytes, and the
// file crashes again with any subset of W's sectors landed. No subset may
// complete U: the read must be V or W, never U.
func TestNoZombieWrite(t *testing.T) {
	l := Layout{Offset: 504, PayloadSize: 1200} // a copy spans four 512-byte sectors
	body := bytes.Repeat([]byte("shared cached field "), 55)
	uP := append([]byte("U"), body...)
	wP := append([]byte("W"), body...)
	uSubsets, wSubsets, zombies := 0, 0, 0
	for uMask := 0; uMask < 1<<8; uMask++ {
		m := atomicrectest.New()
		f := open(t, m, "f")
		r := newRec(t, f, l)
		if _, err := r.Update(ctx, []byte("V")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Write(ctx, uP); err != nil {
			t.Fatal(err)
		}
		m1, pieces := m.CrashKeep(512, func(i int) bool { return uMask&(1<<i) != 0 })
		if uMask >= 1<<pieces {
			break
		}
		v, err := newRec(t, open(t, m1, "f"), l).Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(v.Payload) != "V" {
			continue // U landed whole: it happened, nothing to resurrect
		}
		uSubsets++
		// Recovery: a fresh writer, then W, then every crash of W.
		w := newRec(t, open(t, m1, "f"), l)
		if _, err := w.Load(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(ctx, wP); err != nil {
			t.Fatal(err)
		}
		for wMask := 0; ; wMask++ {
			m2, n := m1.CrashKeep(512, func(i int) bool { return wMask&(1<<i) != 0 })
			if wMask >= 1<<n {
				break
			}
			wSubsets++
			got, err := newRec(t, open(t, m2, "f"), l).Read(ctx)
			if err != nil {
				t.Fatalf("u %b w %b: %v", uMask, wMask, err)
			}
			switch {
			case bytes.Equal(got.Payload, uP):
				zombies++
				t.Errorf("u %b w %b: write U came back after it was read as not done", uMask, wMask)
			case string(got.Payload) != "V" && !bytes.Equal(got.Payload, wP):
				t.Fatalf("u %b w %b: read %q", uMask, wMask, got.Payload)
			}
		}
	}
	if uSubsets == 0 || wSubsets == 0 {
		t.Fatal("the scenario explored nothing")
	}
	t.Logf("explored %d torn U states x W crashes (%d states), %d zombies", uSubsets, wSubsets, zombies)
}
