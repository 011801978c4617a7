package atomicrec

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// The copy format. Every constant in this block is part of the on-disk
// format: changing one changes the bytes every existing file holds.
//
//	offset  size  field       meaning
//	     0     8  nonce       random per write, never 0: makes every byte of a copy write-specific;
//	                          writers set bit 0, so a cut-short copy never reads as blank
//	     8     4  magic       CopyMagic, "ARC1" in little-endian order
//	    12     2  version     FormatVersion
//	    14     1  slot        0 or 1: which of the two places this copy was written to
//	    15     1  flags       0 (reserved; a reader rejects any other value)
//	    16     8  offset      Layout.Offset of the record: binds the copy to its place
//	    24     4  capacity    Layout.PayloadSize: binds the copy to its layout
//	    28     4  length      payload bytes in use, <= capacity
//	    32     8  generation  1 for the first write, +1 per write; never 0
//	    40     C  payload     capacity bytes XOR the keystream of nonce; bytes past length are zero before the XOR
//	  40+C     8  checksum    xxhash64 of bytes [0, 40+C) as stored
//
// The keystream is splitmix64 seeded with the nonce: word i (8 bytes,
// little-endian, the last one cut short) is the i-th splitmix64 output.
//
// Why a nonce and a keystream: a write that tore in a crash leaves some
// pieces of a copy behind. If a later write into the same slot had the same
// bytes at the missing places (same header fields, same payload bytes, a
// reused generation), a second crash could complete the old copy: a write
// that a reader already saw as "not done" would come back (a zombie). With
// the nonce first and the payload whitened, every piece of a copy that a
// sector-granular tear can cut (at least 8 bytes, at 8-byte alignment) holds
// write-specific bytes, so two writes never agree on a whole piece (2^-64).
//
// The copy for slot s starts at Layout.Offset + s*Layout.Stride(). Bytes
// between the end of a copy and the next stride boundary are padding that
// no reader looks at.
const (
	CopyMagic     uint32 = 0x31435241 // "ARC1"; part of the on-disk format
	FormatVersion uint16 = 1          // part of the on-disk format

	offNonce    = 0  // part of the on-disk format
	offMagic    = 8  // part of the on-disk format
	offVersion  = 12 // part of the on-disk format
	offSlot     = 14 // part of the on-disk format
	offFlags    = 15 // part of the on-disk format
	offRecord   = 16 // part of the on-disk format
	offCapacity = 24 // part of the on-disk format
	offLength   = 28 // part of the on-disk format
	offGen      = 32 // part of the on-disk format
	offPayload  = 40 // part of the on-disk format

	// CopyOverhead is the size of a copy minus its payload capacity: the
	// 40-byte header and the 8-byte checksum. Part of the on-disk format.
	CopyOverhead = offPayload + 8
	// packedAlign is the alignment of copies in a packed layout (Align 0).
	// Part of the on-disk format.
	packedAlign = 8
)

// The set-once format: a 16-byte word that is either all zero (unset) or a
// value followed by its check. Part of the on-disk format.
//
//	offset  size  field  meaning
//	     0     8  value  the value that was set (any uint64, 0 included)
//	     8     8  check  xxhash64(SetOnceMagic, file offset, value) | 1; never 0
//
// A torn or half-flushed set leaves a word that is neither all zero nor a
// value with its check, so it reads as ErrTorn, never as a wrong value.
const (
	SetOnceSize         = 16                  // part of the on-disk format
	SetOnceMagic uint64 = 0x314F5453_43524141 // "AARCSTO1"; part of the on-disk format
)

// Limits that are not part of the format but bound what a decoder accepts.
const (
	// MaxPayloadSize bounds Layout.PayloadSize, so that no length field can
	// make a reader allocate more.
	MaxPayloadSize = 1 << 20
	// MaxAlign bounds Layout.Align.
	MaxAlign = 1 << 16
	// PageSize is the page size to align to when different records of one
	// file have writers on different NFS hosts (N9). Some arm64 kernels use
	// 64 KiB pages: pass 65536 to PageAligned on such clients.
	PageSize = 4096
)

// Layout says where a record lives in its file and how big its payload is.
// All hosts must agree on it; it is checked against every copy read.
type Layout struct {
	// Offset is the file offset of the first copy. It must be a multiple
	// of Align (when Align > 0).
	Offset int64
	// PayloadSize is the payload capacity in bytes (0..MaxPayloadSize).
	PayloadSize int
	// Align is 0 for a packed record (copies back to back, 8-byte aligned)
	// or a power of two up to MaxAlign: each copy then starts on a
	// multiple of Align and is padded to one, so a record with
	// Align = PageSize never shares a page with another record (N9), and
	// its two copies never share a page (or, with 512, a sector) with each
	// other.
	Align int
}

// PageAligned returns a layout whose copies each start on their own page of
// pageSize bytes (PageSize if pageSize is 0). Offset must be a multiple of
// the page size.
func PageAligned(offset int64, payloadSize, pageSize int) Layout {
	if pageSize == 0 {
		pageSize = PageSize
	}
	return Layout{Offset: offset, PayloadSize: payloadSize, Align: pageSize}
}

// CopySize returns the size of one copy in bytes, without padding.
func (l Layout) CopySize() int { return CopyOverhead + l.PayloadSize }

// Stride returns the distance in bytes between the starts of the two copies.
func (l Layout) Stride() int64 {
	a := int64(packedAlign)
	if l.Align > 0 {
		a = int64(l.Align)
	}
	return (int64(l.CopySize()) + a - 1) / a * a
}

// Size returns the number of bytes the record occupies: two strides.
func (l Layout) Size() int64 { return 2 * l.Stride() }

// End returns the first file offset after the record.
func (l Layout) End() int64 { return l.Offset + l.Size() }

// CopyOffset returns the file offset of the copy in slot (0 or 1).
func (l Layout) CopyOffset(slot int) int64 { return l.Offset + int64(slot)*l.Stride() }

// Validate reports whether the layout is usable; the error wraps ErrLayout.
func (l Layout) Validate() error {
	switch {
	case l.Offset < 0:
		return fmt.Errorf("%w: negative offset %d", ErrLayout, l.Offset)
	case l.PayloadSize < 0 || l.PayloadSize > MaxPayloadSize:
		return fmt.Errorf("%w: payload size %d not in [0, %d]", ErrLayout, l.PayloadSize, MaxPayloadSize)
	case l.Align < 0 || l.Align > MaxAlign || l.Align&(l.Align-1) != 0:
		return fmt.Errorf("%w: align %d is not 0 or a power of two <= %d", ErrLayout, l.Align, MaxAlign)
	case l.Align > 0 && l.Offset%int64(l.Align) != 0:
		return fmt.Errorf("%w: offset %d is not a multiple of align %d", ErrLayout, l.Offset, l.Align)
	case l.Align == 0 && l.Offset%packedAlign != 0:
		return fmt.Errorf("%w: offset %d is not a multiple of %d", ErrLayout, l.Offset, packedAlign)
	}
	return nil
}

// EncodeCopy returns the bytes of the copy of generation gen holding
// payload, for slot of layout l, written with nonce (random per write, not
// 0): CopySize bytes, checksum last. It is the only encoder of the format.
// It panics if its arguments break the preconditions (a caller bug, never
// input from disk).
func EncodeCopy(l Layout, slot int, gen, nonce uint64, payload []byte) []byte {
	assert(l.Validate() == nil, "EncodeCopy: invalid layout")
	assert(slot == 0 || slot == 1, "EncodeCopy: slot not 0 or 1")
	assert(gen != 0, "EncodeCopy: generation 0")
	assert(nonce != 0, "EncodeCopy: nonce 0")
	assert(len(payload) <= l.PayloadSize, "EncodeCopy: payload larger than capacity")
	b := make([]byte, l.CopySize())
	le := binary.LittleEndian
	le.PutUint64(b[offNonce:], nonce)
	le.PutUint32(b[offMagic:], CopyMagic)
	le.PutUint16(b[offVersion:], FormatVersion)
	b[offSlot] = byte(slot)
	b[offFlags] = 0
	le.PutUint64(b[offRecord:], uint64(l.Offset))
	le.PutUint32(b[offCapacity:], uint32(l.PayloadSize))
	le.PutUint32(b[offLength:], uint32(len(payload)))
	le.PutUint64(b[offGen:], gen)
	copy(b[offPayload:], payload)
	sumAt := offPayload + l.PayloadSize
	whiten(b[offPayload:sumAt], nonce)
	le.PutUint64(b[sumAt:], xxhash.Sum64(b[:sumAt]))
	// Pair the assertion: what we are about to write must decode to itself.
	if invariants {
		v, err := DecodeCopy(l, slot, b)
		assert(err == nil && v.Gen == gen && v.Nonce == nonce && string(v.Payload) == string(payload), "EncodeCopy: round trip")
	}
	return b
}

// Value is one decoded copy: a generation and its payload.
type Value struct {
	// Gen is the generation: 1 for the first write, +1 per write.
	Gen uint64
	// Payload is the payload, owned by the caller.
	Payload []byte
	// Slot is the slot the copy was read from (0 or 1).
	Slot int
	// Sum is the copy's checksum: two copies with one generation and
	// different sums were written by two writers (ErrConflict).
	Sum uint64
	// Nonce is the copy's random write identifier.
	Nonce uint64
}

// DecodeCopy decodes the copy for slot of layout l from b (at least
// CopySize bytes; more are ignored). It never panics and allocates at most
// l.PayloadSize bytes. The error is one of the per-copy kinds (ErrBlank,
// ErrMagic, ErrVersion, ErrChecksum, ErrMismatch, ErrLength), each of which
// matches ErrCorrupt except ErrBlank.
func DecodeCopy(l Layout, slot int, b []byte) (Value, error) {
	if l.Validate() != nil || (slot != 0 && slot != 1) {
		return Value{}, ErrLayout
	}
	n := l.CopySize()
	if len(b) < n {
		return Value{}, ErrLength
	}
	b = b[:n]
	if isZero(b) {
		return Value{}, ErrBlank
	}
	le := binary.LittleEndian
	if le.Uint32(b[offMagic:]) != CopyMagic {
		return Value{}, ErrMagic
	}
	if le.Uint16(b[offVersion:]) != FormatVersion {
		return Value{}, ErrVersion
	}
	sumAt := offPayload + l.PayloadSize
	sum := le.Uint64(b[sumAt:])
	if xxhash.Sum64(b[:sumAt]) != sum {
		return Value{}, ErrChecksum
	}
	// The checksum matched: from here on a failure means a copy written for
	// another place or layout, or by a buggy writer, not a torn write.
	if int(b[offSlot]) != slot || b[offFlags] != 0 ||
		le.Uint64(b[offRecord:]) != uint64(l.Offset) ||
		le.Uint32(b[offCapacity:]) != uint32(l.PayloadSize) {
		return Value{}, ErrMismatch
	}
	length := le.Uint32(b[offLength:])
	gen := le.Uint64(b[offGen:])
	nonce := le.Uint64(b[offNonce:])
	if length > uint32(l.PayloadSize) || gen == 0 || nonce == 0 {
		return Value{}, ErrLength
	}
	plain := make([]byte, l.PayloadSize) // bounded by MaxPayloadSize via Validate
	copy(plain, b[offPayload:sumAt])
	whiten(plain, nonce)
	if !isZero(plain[length:]) {
		return Value{}, ErrLength
	}
	return Value{Gen: gen, Payload: plain[:length:length], Slot: slot, Sum: sum, Nonce: nonce}, nil
}

// whiten XORs b with the splitmix64 keystream seeded with nonce (part of
// the on-disk format). It is its own inverse.
func whiten(b []byte, nonce uint64) {
	x := nonce
	for i := 0; i < len(b); i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		var k [8]byte
		binary.LittleEndian.PutUint64(k[:], z)
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] ^= k[j]
		}
	}
}

// EncodeSetOnce returns the 16-byte set-once word holding v for a word that
// lives at file offset off.
func EncodeSetOnce(off int64, v uint64) [SetOnceSize]byte {
	var b [SetOnceSize]byte
	binary.LittleEndian.PutUint64(b[0:], v)
	binary.LittleEndian.PutUint64(b[8:], setOnceCheck(off, v))
	return b
}

func setOnceCheck(off int64, v uint64) uint64 {
	var in [24]byte
	binary.LittleEndian.PutUint64(in[0:], SetOnceMagic)
	binary.LittleEndian.PutUint64(in[8:], uint64(off))
	binary.LittleEndian.PutUint64(in[16:], v)
	return xxhash.Sum64(in[:]) | 1
}

// DecodeSetOnce decodes the set-once word b (at least SetOnceSize bytes)
// that lives at file offset off. It returns (v, true, nil) if the word is
// set to v, (0, false, nil) if it is all zero, and ErrTorn otherwise: a set
// that was torn or half flushed, or damage. It never panics.
func DecodeSetOnce(off int64, b []byte) (v uint64, set bool, err error) {
	if len(b) < SetOnceSize {
		return 0, false, ErrTorn
	}
	b = b[:SetOnceSize]
	if isZero(b) {
		return 0, false, nil
	}
	v = binary.LittleEndian.Uint64(b[0:])
	if binary.LittleEndian.Uint64(b[8:]) != setOnceCheck(off, v) {
		return 0, false, ErrTorn
	}
	return v, true, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
