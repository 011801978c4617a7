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
	// Appends, Flags, Expunges, Fields, Relocations count the record's
	// operations (a relocation moves field references of one log to
	// another: Mailbox.CompactFields).
	Appends, Flags, Expunges, Fields, Relocations int
	// Seal is the generation the record opened, or 0.
	Seal uint32
	// Digest is the digest of the mailbox state after applying this
	// record (the same on every host that applied it: Mailbox.Digest).
	Digest uint64
}

// Inspection is what Inspect found: the published order from the newest
// snapshot on.
type Inspection struct {
	// Base is the sequence number the starting snapshot holds everything
	// up to (0 when there is none), and BaseDigest its state digest.
	Base       uint64
	BaseDigest uint64
	// Entries are the records after Base, in order.
	Entries []Entry
	// Keys are the idempotency keys the final state remembers, per owner
	// (the last 256 of each), in commit order.
	Keys map[uint64][]uint64
	// Header and Messages describe the final state.
	Header   Header
	Messages int
}

// ReadHistory reads the published total order of the mailbox in dir,
// read-only, from the newest snapshot on (records folded into a snapshot
// are gone): for verification tools (nfsbench verify) and proofs.
func ReadHistory(ctx context.Context, fsys vfs.FS, dir string) ([]Entry, error) {
	in, err := Inspect(ctx, fsys, dir)
	return in.Entries, err
}

// Inspect reads the mailbox in dir read-only: the newest snapshot, every
// published record after it, and the final state's summary.
func Inspect(ctx context.Context, fsys vfs.FS, dir string) (Inspection, error) {
	m := &Mailbox{opt: Options{FS: fsys, Dir: dir}, fsys: fsys, st: newState()}
	var in Inspection
	if err := m.loadNewest(ctx); err != nil {
		return in, err
	}
	in.Base, in.BaseDigest = m.st.applied, m.st.digest()
	for range 1 << 16 {
		gen := m.st.gen
		size, err := m.tailSize()
		if err != nil {
			return in, err
		}
		if size >= deadOffset {
			return in, fmt.Errorf("engine: inspect: generation %d was retired while reading: %w", gen, ErrCorrupt)
		}
		published := m.st.base + uint64(size)
		crossed := false
		for m.st.applied < published && !crossed {
			if err := ctx.Err(); err != nil {
				return in, err
			}
			r, err := m.readRecord(gen, m.st.applied+1)
			if err != nil {
				return in, err
			}
			if _, err := m.applyRecord(r); err != nil {
				return in, err
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
				case opRelocate:
					e.Relocations++
				case opSeal:
					e.Seal = o.nextGen
				}
			}
			in.Entries = append(in.Entries, e)
			_, crossed = r.isSeal()
		}
		if !crossed {
			in.Keys = m.st.keys
			in.Header, in.Messages = m.st.header, len(m.st.msgs)
			return in, nil
		}
	}
	return in, fmt.Errorf("engine: inspect crossed too many generations")
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
