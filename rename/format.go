package rename

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// The version file format. Every constant in this block is part of the
// on-disk format: changing one changes the bytes every existing file holds.
//
// A version file is a header page followed by the payload:
//
//	offset  size  field         meaning
//	     0     8  magic         Magic, "NFSIXRN1" in little-endian order
//	     8     2  version       FormatVersion
//	    10     2  state         StateClaimed while being written, StateComplete when installable
//	    12     2  host length   bytes of host in use, <= MaxHostLen
//	    14     2  reserved      0
//	    16     8  generation    the caller's generation (the sequence number the snapshot reflects); never 0
//	    24     8  claim id      random id of the claim that wrote the file; never 0
//	    32     8  payload size  bytes of payload after the header page
//	    40     8  payload hash  xxhash64 of the payload (0 while claimed)
//	    48    64  host          the claimant's host name, zero padded
//	   112     8  header hash   xxhash64 of bytes [0, 112)
//	   120  3976  padding       zero
//	  4096     n  payload
//
// The header fills a whole page so that the payload starts page aligned
// and no payload write ever shares a page with the header (N9). A reader
// accepts only StateComplete headers whose hash matches, whose padding is
// zero and whose file size is HeaderSize + payload size; Load also checks
// the payload hash. The file is written once, synced, and only then renamed
// into place, so an installed version never changes: any cached page of it
// is correct forever (docs/design.md, "rename").
const (
	HeaderSize           = 4096                // part of the on-disk format
	Magic         uint64 = 0x314e5258_4953464e // "NFSIXRN1"; part of the on-disk format
	FormatVersion uint16 = 1                   // part of the on-disk format
	MaxHostLen           = 64                  // part of the on-disk format

	// StateClaimed marks a file still being written by its claimant: its
	// size and hash fields mean nothing yet. Part of the on-disk format.
	StateClaimed uint16 = 1
	// StateComplete marks a file whose payload is whole: the only state a
	// reader accepts. Part of the on-disk format.
	StateComplete uint16 = 2

	offMagic       = 0   // part of the on-disk format
	offVersion     = 8   // part of the on-disk format
	offState       = 10  // part of the on-disk format
	offHostLen     = 12  // part of the on-disk format
	offReserved    = 14  // part of the on-disk format
	offGeneration  = 16  // part of the on-disk format
	offClaimID     = 24  // part of the on-disk format
	offPayloadSize = 32  // part of the on-disk format
	offPayloadHash = 40  // part of the on-disk format
	offHost        = 48  // part of the on-disk format
	offHeaderHash  = 112 // part of the on-disk format
	headerUsed     = 120 // part of the on-disk format
)

// Info describes one version: what its header says.
type Info struct {
	// Generation is the caller's generation, the sequence number the
	// version reflects. Installed generations only grow (I3).
	Generation uint64
	// ClaimID is the random id of the claim that wrote the version; it
	// tells two versions of one generation apart.
	ClaimID uint64
	// Host is the claimant's host name.
	Host string
	// Size is the number of payload bytes.
	Size int64
	// Checksum is the xxhash64 of the payload.
	Checksum uint64
}

// header is a decoded header page.
type header struct {
	Info
	State uint16
}

// encodeHeader fills b (HeaderSize bytes) with h.
func encodeHeader(b []byte, h header) {
	if len(b) != HeaderSize {
		panic("rename: header buffer of the wrong size")
	}
	if len(h.Host) > MaxHostLen || h.Generation == 0 || h.ClaimID == 0 || h.Size < 0 {
		panic("rename: invalid header") // checked by Begin: a caller bug here
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[offMagic:], Magic)
	le.PutUint16(b[offVersion:], FormatVersion)
	le.PutUint16(b[offState:], h.State)
	le.PutUint16(b[offHostLen:], uint16(len(h.Host)))
	le.PutUint64(b[offGeneration:], h.Generation)
	le.PutUint64(b[offClaimID:], h.ClaimID)
	le.PutUint64(b[offPayloadSize:], uint64(h.Size))
	le.PutUint64(b[offPayloadHash:], h.Checksum)
	copy(b[offHost:offHost+MaxHostLen], h.Host)
	le.PutUint64(b[offHeaderHash:], xxhash.Sum64(b[:offHeaderHash]))
	// Pair the encoder with the decoder (TigerBeetle-style assertion).
	if got, err := decodeHeader(b); err != nil || got != h {
		panic(fmt.Sprintf("rename: header does not round-trip: %+v, %v", got, err))
	}
}

// decodeHeader checks and decodes a header page. The error says what is
// wrong; the caller wraps it in a *CorruptError.
func decodeHeader(b []byte) (header, error) {
	if len(b) < HeaderSize {
		return header{}, fmt.Errorf("short header: %d bytes", len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint64(b[offMagic:]); m != Magic {
		return header{}, fmt.Errorf("bad magic %#x", m)
	}
	if v := le.Uint16(b[offVersion:]); v != FormatVersion {
		return header{}, fmt.Errorf("unsupported format version %d", v)
	}
	if sum := xxhash.Sum64(b[:offHeaderHash]); sum != le.Uint64(b[offHeaderHash:]) {
		return header{}, fmt.Errorf("header checksum mismatch")
	}
	for _, c := range b[headerUsed:HeaderSize] {
		if c != 0 {
			return header{}, fmt.Errorf("non-zero header padding")
		}
	}
	h := header{State: le.Uint16(b[offState:])}
	hostLen := int(le.Uint16(b[offHostLen:]))
	h.Generation = le.Uint64(b[offGeneration:])
	h.ClaimID = le.Uint64(b[offClaimID:])
	size := le.Uint64(b[offPayloadSize:])
	h.Checksum = le.Uint64(b[offPayloadHash:])
	switch {
	case h.State != StateClaimed && h.State != StateComplete:
		return header{}, fmt.Errorf("unknown state %d", h.State)
	case hostLen > MaxHostLen:
		return header{}, fmt.Errorf("host length %d > %d", hostLen, MaxHostLen)
	case le.Uint16(b[offReserved:]) != 0:
		return header{}, fmt.Errorf("non-zero reserved field")
	case h.Generation == 0 || h.ClaimID == 0:
		return header{}, fmt.Errorf("zero generation or claim id")
	case size > 1<<62:
		return header{}, fmt.Errorf("impossible payload size %d", size)
	}
	for _, c := range b[offHost+hostLen : offHost+MaxHostLen] {
		if c != 0 {
			return header{}, fmt.Errorf("non-zero host padding")
		}
	}
	h.Size = int64(size)
	h.Host = string(b[offHost : offHost+hostLen])
	return h, nil
}
