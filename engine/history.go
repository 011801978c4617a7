package engine

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/nfsindex/nfsindex/vfs"
)

// Entry is one committed record as ReadHistory reports it.
type Entry struct {
	Seq uint64
	Gen uint32
	Key Key
	// Appends, Flags, Expunges, Fields count the record's operations.
	Appends, Flags, Expunges, Fields int
	// Seal is the generation the record opened, or 0.
	Seal uint32
	// Digest is the digest of the mailbox state after applying this
	// record (the same on every host that applied it: Mailbox.Digest).
	Digest uint64
}

// ReadHistory reads the whole published total order of the mailbox in
// dir, read-only, for verification tools (nfsbench verify) and proofs.
func ReadHistory(ctx context.Context, fsys vfs.FS, dir string) ([]Entry, error) {
	m := &Mailbox{opt: Options{FS: fsys, Dir: dir}, fsys: fsys, st: newState()}
	var out []Entry
	for range 1 << 16 {
		gen := m.st.gen
		size, err := m.tailSize(gen)
		if err != nil {
			return out, err
		}
		if size >= deadOffset {
			return out, corrupt(tailName(gen), "generation marked dead, and this version does not compact")
		}
		published := m.st.base + uint64(size)
		crossed := false
		for m.st.applied < published && !crossed {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			r, err := m.readRecord(gen, m.st.applied+1)
			if err != nil {
				return out, err
			}
			if err := m.applyRecord(r); err != nil {
				return out, err
			}
			e := Entry{Seq: r.seq, Gen: r.gen, Key: r.key, Digest: m.st.digest()}
			for _, o := range r.ops {
				switch o.kind {
				case opAppend:
					e.Appends++
				case opFlags:
					e.Flags++
				case opExpunge:
					e.Expunges++
				case opField:
					e.Fields++
				case opSeal:
					e.Seal = o.nextGen
				}
			}
			out = append(out, e)
			_, crossed = r.isSeal()
		}
		if !crossed {
			return out, nil
		}
	}
	return out, fmt.Errorf("engine: history crossed too many generations")
}

// Digest returns the last applied sequence number and a digest of the
// state at it: hosts that applied the same order hold the same digest.
func (m *Mailbox) Digest() (uint64, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.applied, m.st.digest()
}

func (s *state) digest() uint64 {
	h := xxhash.New()
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	put(uint64(s.header.UIDValidity))
	put(uint64(s.header.UIDNext))
	put(s.header.HighestModSeq)
	put(s.header.IndexID)
	for _, m := range s.msgs {
		put(uint64(m.UID))
		put(uint64(m.Flags))
		put(m.ModSeq)
		for _, k := range m.Keywords {
			h.WriteString(k)
			h.Write([]byte{0})
		}
		for _, f := range m.fields {
			h.WriteString(f.Name + "\x00" + f.Host + "\x00")
			put(uint64(f.Ref))
		}
		h.Write([]byte{1})
	}
	return h.Sum64()
}
