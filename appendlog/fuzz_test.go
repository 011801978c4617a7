package appendlog

import (
	"math/rand/v2"
	"testing"

	"github.com/nfsindex/nfsindex/internal/atomicrectest"
)

// FuzzDecodeHeader: no panic; an accepted header re-encodes to itself.
func FuzzDecodeHeader(f *testing.F) {
	f.Add(encodeHeader(header{id: 1, used: DataStart, start: DataStart, host: "mx1"}))
	f.Add(encodeHeader(header{id: 9, used: DataStart + 4096, start: DataStart + 64, records: 3, groupHash: 5, host: "a.b-c_d"}))
	f.Add(make([]byte, headerPayloadSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			return
		}
		if string(encodeHeader(h)) != string(b) {
			t.Fatal("accepted header does not re-encode to itself")
		}
	})
}

// FuzzDecodeFrame: no panic, no allocation beyond the input, and an
// accepted frame re-encodes to the same bytes (next word aside).
func FuzzDecodeFrame(f *testing.F) {
	const id = 42
	f.Add(encodeFrame(nil, id, DataStart, 1, 0, []byte("payload")), int64(DataStart))
	f.Add(encodeFrame(nil, id, DataStart+64, 2, DataStart, nil), int64(DataStart+64))
	f.Add([]byte("ALR1"), int64(DataStart))
	f.Fuzz(func(t *testing.T, b []byte, off int64) {
		limit := off + int64(len(b))
		fr, err := decodeFrame(b, id, off, limit)
		if err != nil {
			return
		}
		if fr.size > int64(len(b)) || len(fr.payload) > MaxRecordSize {
			t.Fatalf("frame of %d bytes from %d bytes of input", fr.size, len(b))
		}
		re := encodeFrame(nil, id, off, fr.typ, fr.prev, fr.payload)
		copy(re[fOffNext:fOffPayload], b[fOffNext:fOffPayload])
		if string(re) != string(b[:fr.size]) {
			t.Fatal("accepted frame does not re-encode to itself")
		}
	})
}

// FuzzReader opens arbitrary bytes as a log file and reads everything a
// Reader can: it must never panic, whatever it returns.
func FuzzReader(f *testing.F) {
	m := atomicrectest.New()
	w, err := Create(ctx, m, "idx", host, Options{ID: 7, Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		f.Fatal(err)
	}
	a, _ := w.Append(1, []byte("one"))
	w.Append(2, []byte("two"))
	w.Commit(ctx)
	w.AppendAfter(ctx, a, 3, []byte("three"))
	w.Commit(ctx)
	img := m.Bytes("idx/" + LogName(host))
	f.Add(img)
	f.Add(img[:DataStart])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dm := atomicrectest.New()
		dm.SetBytes("idx/"+LogName(host), b)
		r, err := OpenReader(ctx, dm, "idx", host, Options{Rereads: -1})
		if err != nil {
			return
		}
		r.Scan(ctx, func(rec Record) error {
			r.Chain(ctx, rec.Ref)
			return nil
		})
		r.Check(ctx)
		if r.Info().Used > 1<<20 {
			return // the in-memory file is not sparse: do not let a writer extend it that far
		}
		// A seeded Rand: the writer draws header nonces (and crypto/rand
		// stalls inside coverage-instrumented fuzz workers here).
		if w, err := Open(ctx, dm, "idx", host, Options{Rereads: -1, Rand: rand.New(rand.NewPCG(3, 4))}); err == nil {
			w.Append(1, []byte("x"))
			w.Commit(ctx)
			w.Check(ctx)
		}
	})
}
