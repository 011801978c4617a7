package engine

import (
	"encoding/binary"
	"sort"

	"github.com/cespare/xxhash/v2"
)

// Snapshot of generation gen: the payload of the version file index.<gen>
// (package rename: a 4 KiB header of its own, with the generation, the
// claim id, and the payload's size and xxhash64, precedes it; offsets
// below are into the payload). Immutable once installed (it is replaced
// only by a newer generation's file, never rewritten). Part of the on-disk
// format. Little-endian.
//
// Format version 2: the snapshot is a rename version's payload. Version 1
// was a bare file written into index.lock and renamed; a version-1 file is
// rejected by rename's header check (magic) before this decoder sees it.
//
//	offset size field
//	0      4    magic "NIX1"
//	4      4    format version (3)
//	8      4    gen: the generation this snapshot opens
//	12     8    base: the seal's sequence number; everything up to it is in
//	20     4    UIDVALIDITY
//	24     4    UIDNEXT
//	28     8    HIGHESTMODSEQ
//	36     8    index id
//	44     4    message count n
//	48     4    string table count s
//	52     4    key-owner count o
//	56     8    body length
//	64     8    xxhash64 of the body
//	72     8    tail id of gen (its tail is tail.<gen>.<id>; 0: tail.1)
//	80     8    xxhash64 of bytes 0..79
//	88          body:
//	            s strings: u8 length, bytes (keyword, field and host names)
//	            o owners: u64 owner, u16 count, count × u64 key numbers
//	            n fixed messages of 24 bytes, sorted by UID:
//	              uid u32, flags u16, keyword count u8, field count u8,
//	              modseq u64, extension offset u32 (into the extension
//	              area), pad u32
//	            extension area: per message, keyword string ids (u32) then
//	            fields (name id u32, host id u32, ref u64)
const (
	snapMagic      = "NIX1"
	snapVersion    = 3
	snapHeaderSize = 88
	snapMsgSize    = 24
	// maxSnapshotBytes bounds what a decoder allocates from a length field.
	maxSnapshotBytes = 1 << 31
)

type strTable struct {
	ids  map[string]uint32
	list []string
}

func (t *strTable) id(s string) uint32 {
	if id, ok := t.ids[s]; ok {
		return id
	}
	id := uint32(len(t.list))
	t.ids[s] = id
	t.list = append(t.list, s)
	return id
}

// encodeSnapshot returns the snapshot bytes of state s, which has just
// applied the seal that opened s.gen.
func encodeSnapshot(s *state) []byte {
	tab := &strTable{ids: map[string]uint32{}}
	var ext, fixed []byte
	for _, m := range s.msgs {
		fixed = binary.LittleEndian.AppendUint32(fixed, m.UID)
		fixed = binary.LittleEndian.AppendUint16(fixed, uint16(m.Flags))
		fixed = append(fixed, uint8(len(m.Keywords)), uint8(len(m.fields)))
		fixed = binary.LittleEndian.AppendUint64(fixed, m.ModSeq)
		fixed = binary.LittleEndian.AppendUint32(fixed, uint32(len(ext)))
		fixed = binary.LittleEndian.AppendUint32(fixed, 0)
		for _, k := range m.Keywords {
			ext = binary.LittleEndian.AppendUint32(ext, tab.id(k))
		}
		for _, f := range m.fields {
			ext = binary.LittleEndian.AppendUint32(ext, tab.id(f.Name))
			ext = binary.LittleEndian.AppendUint32(ext, tab.id(f.Host))
			ext = binary.LittleEndian.AppendUint64(ext, uint64(f.Ref))
		}
	}
	var body []byte
	for _, str := range tab.list {
		body = append(body, uint8(len(str)))
		body = append(body, str...)
	}
	owners := make([]uint64, 0, len(s.keys))
	for o := range s.keys {
		owners = append(owners, o)
	}
	sort.Slice(owners, func(i, j int) bool { return owners[i] < owners[j] })
	for _, o := range owners {
		body = binary.LittleEndian.AppendUint64(body, o)
		body = binary.LittleEndian.AppendUint16(body, uint16(len(s.keys[o])))
		for _, n := range s.keys[o] {
			body = binary.LittleEndian.AppendUint64(body, n)
		}
	}
	body = append(body, fixed...)
	body = append(body, ext...)

	h := make([]byte, snapHeaderSize, snapHeaderSize+len(body))
	copy(h, snapMagic)
	le := binary.LittleEndian
	le.PutUint32(h[4:], snapVersion)
	le.PutUint32(h[8:], s.gen)
	le.PutUint64(h[12:], s.base)
	le.PutUint32(h[20:], s.header.UIDValidity)
	le.PutUint32(h[24:], s.header.UIDNext)
	le.PutUint64(h[28:], s.header.HighestModSeq)
	le.PutUint64(h[36:], s.header.IndexID)
	le.PutUint32(h[44:], uint32(len(s.msgs)))
	le.PutUint32(h[48:], uint32(len(tab.list)))
	le.PutUint32(h[52:], uint32(len(owners)))
	le.PutUint64(h[56:], uint64(len(body)))
	le.PutUint64(h[64:], xxhash.Sum64(body))
	le.PutUint64(h[72:], s.tail)
	le.PutUint64(h[80:], xxhash.Sum64(h[:80]))
	return append(h, body...)
}

// decodeSnapshotHeader validates the fixed header and returns the body
// length it announces.
func decodeSnapshotHeader(name string, h []byte) (uint64, error) {
	if len(h) < snapHeaderSize || string(h[:4]) != snapMagic {
		return 0, &CorruptError{Name: name, Reason: "not a snapshot (magic)"}
	}
	le := binary.LittleEndian
	if xxhash.Sum64(h[:80]) != le.Uint64(h[80:]) {
		return 0, corrupt(name, "header checksum mismatch")
	}
	if v := le.Uint32(h[4:]); v != snapVersion {
		return 0, corrupt(name, "format version %d, want %d", v, snapVersion)
	}
	n := le.Uint64(h[56:])
	if n > maxSnapshotBytes {
		return 0, corrupt(name, "body of %d bytes", n)
	}
	return n, nil
}

// decodeSnapshot parses a whole snapshot file into a state. Every failure
// is a typed *CorruptError; it never panics.
func decodeSnapshot(name string, b []byte) (*state, error) {
	n, err := decodeSnapshotHeader(name, b)
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) != snapHeaderSize+n {
		return nil, corrupt(name, "file is %d bytes, header says %d", len(b), snapHeaderSize+n)
	}
	le := binary.LittleEndian
	body := b[snapHeaderSize:]
	if xxhash.Sum64(body) != le.Uint64(b[64:]) {
		return nil, corrupt(name, "body checksum mismatch")
	}
	s := newState()
	s.created = true
	s.gen, s.base, s.tail = le.Uint32(b[8:]), le.Uint64(b[12:]), le.Uint64(b[72:])
	if (s.gen == 1) != (s.tail == 0) {
		return nil, corrupt(name, "generation %d with tail id %x", s.gen, s.tail)
	}
	s.applied = s.base
	s.header = Header{UIDValidity: le.Uint32(b[20:]), UIDNext: le.Uint32(b[24:]), HighestModSeq: le.Uint64(b[28:]), IndexID: le.Uint64(b[36:])}
	nMsgs, nStr, nOwners := int(le.Uint32(b[44:])), int(le.Uint32(b[48:])), int(le.Uint32(b[52:]))
	d := &decoder{b: body}
	if nStr > len(body) || nOwners > len(body)/10+1 || nMsgs > len(body)/snapMsgSize+1 {
		return nil, corrupt(name, "counts larger than the body")
	}
	strs := make([]string, 0, nStr)
	for i := 0; i < nStr && !d.err; i++ {
		strs = append(strs, d.str())
	}
	for i := 0; i < nOwners && !d.err; i++ {
		o, cnt := d.u64(), int(d.u16())
		if cnt > len(d.b)/8 {
			d.err = true
			break
		}
		ks := make([]uint64, cnt)
		for j := range ks {
			ks[j] = d.u64()
		}
		s.keys[o] = ks
	}
	fixed := d.take(nMsgs * snapMsgSize)
	if d.err {
		return nil, corrupt(name, "body truncated")
	}
	ext := d.b
	str := func(id uint32) (string, bool) {
		if int(id) >= len(strs) {
			return "", false
		}
		return strs[id], true
	}
	s.msgs = make([]*Message, 0, nMsgs)
	var last uint32
	for i := range nMsgs {
		f := fixed[i*snapMsgSize:]
		m := &Message{UID: le.Uint32(f), Flags: Flags(le.Uint16(f[4:])), ModSeq: le.Uint64(f[8:])}
		nk, nf, off := int(f[6]), int(f[7]), int(le.Uint32(f[16:]))
		if m.UID <= last || m.UID >= s.header.UIDNext || m.ModSeq > s.header.HighestModSeq {
			return nil, corrupt(name, "message %d: UID %d after %d, or beyond UIDNEXT/HIGHESTMODSEQ", i, m.UID, last)
		}
		last = m.UID
		need := nk*4 + nf*16
		if off < 0 || off+need > len(ext) {
			return nil, corrupt(name, "message %d: extension out of range", i)
		}
		e := ext[off:]
		for k := range nk {
			kw, ok := str(le.Uint32(e[k*4:]))
			if !ok {
				return nil, corrupt(name, "message %d: keyword id out of range", i)
			}
			m.Keywords = append(m.Keywords, kw)
		}
		e = e[nk*4:]
		for k := range nf {
			fn, ok1 := str(le.Uint32(e[k*16:]))
			fh, ok2 := str(le.Uint32(e[k*16+4:]))
			if !ok1 || !ok2 {
				return nil, corrupt(name, "message %d: field name id out of range", i)
			}
			m.fields = append(m.fields, FieldRef{Name: fn, Host: fh, Ref: int64(le.Uint64(e[k*16+8:]))})
		}
		s.msgs = append(s.msgs, m)
	}
	s.countRefs()
	return s, nil
}
