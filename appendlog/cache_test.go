package appendlog

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/readahead"
)

// cacheModel is what the writer committed: payloads by ref, and each
// record's continuation (0: none).
type cacheModel struct {
	payload map[Ref][]byte
	next    map[Ref]Ref
	refs    []Ref
	tails   []Ref // records without a continuation yet
}

func (m *cacheModel) chain(ref Ref) [][]byte {
	var out [][]byte
	for r := ref; r != 0; r = m.next[r] {
		out = append(out, m.payload[r])
	}
	return out
}

func payloads(recs []Record) [][]byte {
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.Payload
	}
	return out
}

// TestCachedReaderMatchesUncached (RC1, RC2): a writer on one nfssim host
// appends random records, chained at random (AppendAfter sets next words
// in frames far below the last group), and sometimes restarts (Open:
// recovery). On a second host a Reader with a cache and one without, both
// long-lived and refreshed at the same points, return the same Record
// (Next included) for every committed ref, and the same chains; a Reader
// with a cache opened afresh after each commit on a third host, whose
// cache outlives its Readers, returns exactly what the writer committed:
// payloads, whole chains (every next word the writer set), and the same
// Scan. In a run without faults no frame ever fails validation through
// the cache (a claim on bytes that later change would). NFSv3 and v4.2.
func TestCachedReaderMatchesUncached(t *testing.T) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		for seed := uint64(1); seed <= 6; seed++ {
			t.Run(fmt.Sprintf("%v/seed=%d", v, seed), func(t *testing.T) { cachedVsUncached(t, v, seed) })
		}
	}
}

func cachedVsUncached(t *testing.T, v nfssim.Version, seed uint64) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(seed))
	t.Cleanup(s.Close)
	mount := nfssim.DefaultMount()
	mount.Version = v
	host := func(name string) *nfssim.Host {
		h, err := s.AddHost(name, mount)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	wh, rh, fh := host("w"), host("r"), host("f")
	rnd := rand.New(rand.NewPCG(seed, 99))
	w, err := Create(ctx, wh.FS(), ".", "w", Options{Rand: rand.New(rand.NewPCG(seed, 1))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { w.Close() }()
	// Small blocks so that a log of a few hundred records spans many.
	newCache := func() *readahead.Cache {
		c, err := readahead.New(readahead.Options{BlockSize: 4096, MemoryBytes: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rc, fc := newCache(), newCache()
	m := &cacheModel{payload: map[Ref][]byte{}, next: map[Ref]Ref{}}
	open := func(h *nfssim.Host, c *readahead.Cache) *Reader {
		r, err := OpenReader(ctx, h.FS(), ".", "w", Options{Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cr, ur := open(rh, rc), open(rh, nil)
	defer func() { cr.Close(); ur.Close() }()

	for round := range 40 {
		if round%13 == 12 { // the writer restarts: recovery rewrites its last group
			w.Close()
			if w, err = Open(ctx, wh.FS(), ".", "w", Options{Rand: rand.New(rand.NewPCG(seed, uint64(round)))}); err != nil {
				t.Fatal(err)
			}
		}
		for range 1 + rnd.IntN(12) {
			p := make([]byte, 1+rnd.IntN(600))
			for i := range p {
				p[i] = byte(rnd.Uint32())
			}
			var ref Ref
			if len(m.tails) > 0 && rnd.IntN(3) == 0 {
				i := rnd.IntN(len(m.tails))
				prev := m.tails[i]
				if ref, err = w.AppendAfter(ctx, prev, 1, p); err != nil {
					t.Fatal(err)
				}
				m.next[prev] = ref
				m.tails[i] = ref
			} else {
				if ref, err = w.Append(1, p); err != nil {
					t.Fatal(err)
				}
				m.tails = append(m.tails, ref)
			}
			m.payload[ref] = p
			m.refs = append(m.refs, ref)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}

		// Host r: the cached and the uncached Reader, refreshed at the same
		// points, agree on everything.
		ci, cerr := cr.Refresh(ctx)
		ui, uerr := ur.Refresh(ctx)
		if (cerr != nil) != (uerr != nil) || ci != ui {
			t.Fatalf("round %d: refresh: cached %+v, %v; uncached %+v, %v", round, ci, cerr, ui, uerr)
		}
		for _, ref := range m.refs {
			if int64(ref) >= ci.Used {
				break
			}
			a, aerr := cr.Read(ctx, ref)
			b, berr := ur.Read(ctx, ref)
			if aerr != nil || berr != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("round %d: Read(%d): cached %+v, %v; uncached %+v, %v", round, ref, a, aerr, b, berr)
			}
			if !bytes.Equal(a.Payload, m.payload[ref]) {
				t.Fatalf("round %d: Read(%d) = %q, committed %q", round, ref, a.Payload, m.payload[ref])
			}
			body, err := cr.ReadBody(ctx, ref)
			if err != nil || !bytes.Equal(body.Payload, a.Payload) || body.Prev != a.Prev || body.Type != a.Type || body.Next != 0 {
				t.Fatalf("round %d: ReadBody(%d) = %+v, %v; Read %+v", round, ref, body, err, a)
			}
			if rnd.IntN(4) == 0 {
				ac, aerr := cr.Chain(ctx, ref)
				bc, berr := ur.Chain(ctx, ref)
				if aerr != nil || berr != nil || !reflect.DeepEqual(ac, bc) {
					t.Fatalf("round %d: Chain(%d): cached %v, %v; uncached %v, %v", round, ref, ac, aerr, bc, berr)
				}
			}
		}

		// Host f: a fresh Reader (close-to-open) over a cache that has
		// outlived the earlier Readers sees exactly what was committed.
		fr := open(fh, fc)
		if got := fr.Info().Used; got != w.Info().Used {
			t.Fatalf("round %d: fresh reader sees used %d, writer %d", round, got, w.Info().Used)
		}
		for _, ref := range m.refs {
			ch, err := fr.Chain(ctx, ref)
			if err != nil || !reflect.DeepEqual(payloads(ch), m.chain(ref)) {
				t.Fatalf("round %d: fresh Chain(%d) = %d records, %v; committed %d", round, ref, len(ch), err, len(m.chain(ref)))
			}
			body, err := fr.ReadBody(ctx, ref)
			if err != nil || !bytes.Equal(body.Payload, m.payload[ref]) {
				t.Fatalf("round %d: fresh ReadBody(%d): %v", round, ref, err)
			}
		}
		if round%10 == 9 {
			i := 0
			err := fr.Scan(ctx, func(r Record) error {
				if i >= len(m.refs) || r.Ref != m.refs[i] || !bytes.Equal(r.Payload, m.payload[r.Ref]) || r.Next != m.next[r.Ref] {
					return fmt.Errorf("scan record %d: %+v", i, r)
				}
				i++
				return nil
			})
			if err != nil || i != len(m.refs) {
				t.Fatalf("round %d: fresh Scan: %v after %d of %d", round, err, i, len(m.refs))
			}
			if err := fr.Check(ctx); err != nil {
				t.Fatalf("round %d: Check: %v", round, err)
			}
		}
		if n := fr.lf.cache.failed + cr.lf.cache.failed; n != 0 {
			t.Fatalf("round %d: %d frames failed validation through the cache", round, n)
		}
		fr.Close()
	}
	for _, c := range []*readahead.Cache{rc, fc} {
		if err := c.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if st := fc.Stats(); st.Hits == 0 {
		t.Fatalf("the cache served nothing: %+v", st)
	}
}

// TestCachedReaderLostCommit (RC3): a Reader with a cache on another host
// sees a commit the NFS server holds only as unstable writes (the writer's
// host crashed at its Datasync with every dirty page sent) and reads its
// records; the server then crashes and loses them (N10), and the writer's
// recovery commits other records at the same offsets, with checksums just
// as valid. A Reader reopened over the same cache (same inode, same log
// id) must read the new records: the lost group was never claimed
// immutable, because a Reader claims only the commits before its header's
// last group, which are durable. Claiming up to used instead serves the
// lost records from the cache.
func TestCachedReaderLostCommit(t *testing.T) {
	for _, v := range []nfssim.Version{nfssim.V3, nfssim.V4} {
		t.Run(v.String(), func(t *testing.T) {
			ctx := context.Background()
			armed := false
			cfg := nfssim.DefaultConfig(7)
			cfg.Fault = func(p nfssim.Point) nfssim.Fault {
				if armed && p.Kind == nfssim.PointCall && p.Host == "w" && p.Call == "Datasync" {
					armed = false
					return nfssim.Fault{Kind: nfssim.CrashHost, Keep: ^uint64(0)}
				}
				return nfssim.Fault{}
			}
			s := nfssim.New(cfg)
			t.Cleanup(s.Close)
			mount := nfssim.DefaultMount()
			mount.Version = v
			wh, err := s.AddHost("w", mount)
			if err != nil {
				t.Fatal(err)
			}
			rh, err := s.AddHost("r", mount)
			if err != nil {
				t.Fatal(err)
			}
			c, err := readahead.New(readahead.Options{BlockSize: 4096, MemoryBytes: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			w, err := Create(ctx, wh.FS(), ".", "w", Options{Rand: rand.New(rand.NewPCG(1, 1))})
			if err != nil {
				t.Fatal(err)
			}
			appendN := func(w *Writer, tag string, n int) []Ref {
				var refs []Ref
				for i := range n {
					ref, err := w.Append(1, fmt.Appendf(nil, "%s record %d %s", tag, i, bytes.Repeat([]byte(tag), 100)))
					if err != nil {
						t.Fatal(err)
					}
					refs = append(refs, ref)
				}
				return refs
			}
			for range 3 { // durable commits
				appendN(w, "durable", 5)
				if err := w.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			lost := appendN(w, "lost", 20)
			armed = true
			if err := w.Commit(ctx); err == nil {
				t.Fatal("the commit survived its host's crash")
			}
			// The reader sees the unstable commit and reads it (twice: a
			// second read would be served by the cache if claimed).
			r, err := OpenReader(ctx, rh.FS(), ".", "w", Options{Cache: c})
			if err != nil {
				t.Fatal(err)
			}
			if r.Info().Used <= int64(lost[len(lost)-1]) {
				t.Fatalf("the reader does not see the unstable commit: %+v", r.Info())
			}
			for range 2 {
				for _, ref := range lost {
					if _, err := r.ReadBody(ctx, ref); err != nil {
						t.Fatal(err)
					}
				}
			}
			r.Close()
			s.CrashServer(0)
			wh.Restart()
			if w, err = Open(ctx, wh.FS(), ".", "w", Options{Rand: rand.New(rand.NewPCG(2, 2))}); err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			fresh := appendN(w, "fresh", 20)
			if fresh[0] != lost[0] {
				t.Fatalf("recovery appended at %d, the lost commit was at %d", fresh[0], lost[0])
			}
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			appendN(w, "later", 3) // so that the fresh group is below the claim
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			r, err = OpenReader(ctx, rh.FS(), ".", "w", Options{Cache: c})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for _, ref := range fresh {
				rec, err := r.ReadBody(ctx, ref)
				if err != nil || !bytes.HasPrefix(rec.Payload, []byte("fresh")) {
					t.Fatalf("record %d after recovery: %.20q, %v", ref, rec.Payload, err)
				}
			}
		})
	}
}
