package appendlog

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/nfsindex/nfsindex/atomicrec"
)

// File layout. Part of the on-disk format.
//
//	offset  size  what
//	     0   512  header copy 0 (an atomicrec copy, slot 0)
//	   512   512  header copy 1 (an atomicrec copy, slot 1)
//	  1024  3072  zero (reserved)
//	  4096     -  frames, back to back, each 8-byte aligned, up to used
//	  used     -  garbage of an interrupted append: never read, overwritten
const (
	// DataStart is the file offset of the first frame. Part of the
	// on-disk format.
	DataStart = 4096
	// headerPayloadSize is the atomicrec payload capacity of the header.
	// Part of the on-disk format.
	headerPayloadSize = 192
	// headerAlign puts each header copy in its own 512-byte sector. Part of
	// the on-disk format.
	headerAlign = 512
)

// HeaderLayout returns where the header record lives: an atomicrec record
// at offset 0 whose copies each fill one 512-byte sector.
func HeaderLayout() atomicrec.Layout {
	return atomicrec.Layout{Offset: 0, PayloadSize: headerPayloadSize, Align: headerAlign}
}

// The header payload (inside each atomicrec copy). Part of the on-disk
// format.
//
//	offset  size  field       meaning
//	     0     8  magic       FileMagic, "NFSXALOG"
//	     8     4  version     FormatVersion
//	    12     4  flags       0 (reserved)
//	    16     8  log id      random, chosen at creation, never 0: a reader detects a replaced file
//	    24     8  used        used_file_size: the committed length; frames end exactly here
//	    32     8  group start start of the frames the last commit added (DataStart <= start <= used)
//	    40     8  group hash  xxhash64 of the checksums (8 bytes LE each) of the frames in [start, used)
//	    48     8  records     number of frames committed in the whole log
//	    56     1  host length bytes of host name, 1..MaxHostLen
//	    57     H  host        the writer's host name; the file is named LogName(host)
//	57+H       -  zero
const (
	FileMagic     uint64 = 0x474f4c415853464e // "NFSXALOG" in little-endian order; part of the on-disk format
	FormatVersion uint32 = 1                  // part of the on-disk format

	hOffMagic   = 0  // part of the on-disk format
	hOffVersion = 8  // part of the on-disk format
	hOffFlags   = 12 // part of the on-disk format
	hOffID      = 16 // part of the on-disk format
	hOffUsed    = 24 // part of the on-disk format
	hOffStart   = 32 // part of the on-disk format
	hOffHash    = 40 // part of the on-disk format
	hOffRecords = 48 // part of the on-disk format
	hOffHostLen = 56 // part of the on-disk format
	hOffHost    = 57 // part of the on-disk format

	// MaxHostLen bounds the host name. Part of the on-disk format.
	MaxHostLen = 128
)

// The frame of one record. Part of the on-disk format.
//
//	offset  size  field     meaning
//	     0     4  magic     FrameMagic, "ALR1"
//	     4     1  type      the caller's record type, 1..255 (0 is never written)
//	     5     1  flags     bit 0: continuation (prev is set); other bits 0
//	     6     2  reserved  0
//	     8     4  length    payload bytes, <= MaxRecordSize
//	    12     4  reserved  0
//	    16     8  prev      offset of the record this one continues, or 0
//	    24    16  next      atomicrec set-once word: offset of this record's continuation
//	    40     N  payload
//	  40+N     8  checksum  xxhash64(log id, frame offset, bytes [0,24), payload)
//	  48+N     -  zero padding to a multiple of 8
//
// The checksum covers everything but the next word (set later, in place,
// by the set-once rule) and is bound to the log id and the frame's own
// offset, so a frame of a replaced file or a frame read at the wrong place
// never validates.
const (
	FrameMagic uint32 = 0x31524C41 // "ALR1"; part of the on-disk format

	fOffMagic   = 0  // part of the on-disk format
	fOffType    = 4  // part of the on-disk format
	fOffFlags   = 5  // part of the on-disk format
	fOffLength  = 8  // part of the on-disk format
	fOffPrev    = 16 // part of the on-disk format
	fOffNext    = 24 // part of the on-disk format
	fOffPayload = 40 // part of the on-disk format

	flagContinuation = 1 // part of the on-disk format

	// FrameOverhead is the size of a frame minus its payload, before
	// padding. Part of the on-disk format.
	FrameOverhead = fOffPayload + 8
	frameAlign    = 8 // part of the on-disk format
)

// Limits: not part of the format, but every decoder enforces them so that
// no length field can make it allocate more.
const (
	// MaxRecordSize bounds a record's payload.
	MaxRecordSize = 16 << 20
	// MaxGroupSize bounds the bytes one Commit adds, hence what a reader
	// reads to verify the newest header.
	MaxGroupSize = 64 << 20
	// MaxLogSize bounds the committed length of a log.
	MaxLogSize = 1 << 46
)

// FrameSize returns the bytes a record with an n-byte payload occupies,
// padding included.
func FrameSize(n int) int64 {
	return (int64(FrameOverhead) + int64(n) + frameAlign - 1) / frameAlign * frameAlign
}

// header is the decoded header payload.
type header struct {
	id        uint64
	used      int64
	start     int64
	groupHash uint64
	records   uint64
	host      string
}

func encodeHeader(h header) []byte {
	assert(h.id != 0 && len(h.host) > 0 && len(h.host) <= MaxHostLen, "encodeHeader: id or host")
	assert(DataStart <= h.start && h.start <= h.used && h.used <= MaxLogSize, "encodeHeader: offsets")
	b := make([]byte, headerPayloadSize)
	le := binary.LittleEndian
	le.PutUint64(b[hOffMagic:], FileMagic)
	le.PutUint32(b[hOffVersion:], FormatVersion)
	le.PutUint64(b[hOffID:], h.id)
	le.PutUint64(b[hOffUsed:], uint64(h.used))
	le.PutUint64(b[hOffStart:], uint64(h.start))
	le.PutUint64(b[hOffHash:], h.groupHash)
	le.PutUint64(b[hOffRecords:], h.records)
	b[hOffHostLen] = byte(len(h.host))
	copy(b[hOffHost:], h.host)
	return b
}

// decodeHeader parses a header payload (already checksummed by atomicrec).
// It never panics.
func decodeHeader(b []byte) (header, error) {
	var h header
	le := binary.LittleEndian
	if len(b) != headerPayloadSize {
		return h, fmt.Errorf("%w: header payload of %d bytes", ErrHeader, len(b))
	}
	if le.Uint64(b[hOffMagic:]) != FileMagic {
		return h, fmt.Errorf("%w: not an appendlog header (magic %#x)", ErrHeader, le.Uint64(b[hOffMagic:]))
	}
	if v := le.Uint32(b[hOffVersion:]); v != FormatVersion {
		return h, fmt.Errorf("%w: format version %d", ErrVersion, v)
	}
	h.id = le.Uint64(b[hOffID:])
	used, start := le.Uint64(b[hOffUsed:]), le.Uint64(b[hOffStart:])
	h.groupHash = le.Uint64(b[hOffHash:])
	h.records = le.Uint64(b[hOffRecords:])
	n := int(b[hOffHostLen])
	switch {
	case le.Uint32(b[hOffFlags:]) != 0:
		return h, fmt.Errorf("%w: flags %#x", ErrHeader, le.Uint32(b[hOffFlags:]))
	case h.id == 0:
		return h, fmt.Errorf("%w: log id 0", ErrHeader)
	case used > MaxLogSize || start < DataStart || start > used || used%frameAlign != 0 || start%frameAlign != 0:
		return h, fmt.Errorf("%w: group [%d, %d) impossible", ErrHeader, start, used)
	case used-start > MaxGroupSize:
		return h, fmt.Errorf("%w: group of %d bytes exceeds %d", ErrHeader, used-start, MaxGroupSize)
	case h.records > (used-DataStart)/FrameOverhead:
		return h, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrHeader, h.records, used-DataStart)
	case n == 0 || n > MaxHostLen || !zero(b[hOffHost+n:]):
		return h, fmt.Errorf("%w: host name length %d", ErrHeader, n)
	}
	h.used, h.start = int64(used), int64(start)
	h.host = string(b[hOffHost : hOffHost+n])
	if err := ValidHost(h.host); err != nil {
		return h, fmt.Errorf("%w: %v", ErrHeader, err)
	}
	return h, nil
}

// encodeFrame appends the frame of a record at file offset off to dst.
func encodeFrame(dst []byte, id uint64, off int64, typ uint8, prev int64, payload []byte) []byte {
	assert(typ != 0 && len(payload) <= MaxRecordSize && off%frameAlign == 0 && off >= DataStart, "encodeFrame: arguments")
	start := len(dst)
	dst = append(dst, make([]byte, FrameSize(len(payload)))...)
	b := dst[start:]
	le := binary.LittleEndian
	le.PutUint32(b[fOffMagic:], FrameMagic)
	b[fOffType] = typ
	if prev != 0 {
		b[fOffFlags] = flagContinuation
	}
	le.PutUint32(b[fOffLength:], uint32(len(payload)))
	le.PutUint64(b[fOffPrev:], uint64(prev))
	copy(b[fOffPayload:], payload)
	le.PutUint64(b[fOffPayload+len(payload):], frameSum(id, off, b[:fOffNext], payload))
	return dst
}

func frameSum(id uint64, off int64, head, payload []byte) uint64 {
	var seed [16]byte
	binary.LittleEndian.PutUint64(seed[0:], id)
	binary.LittleEndian.PutUint64(seed[8:], uint64(off))
	d := xxhash.New()
	d.Write(seed[:])
	d.Write(head)
	d.Write(payload)
	return d.Sum64()
}

// frame is a decoded frame.
type frame struct {
	typ     uint8
	prev    int64
	next    int64 // 0: unset (or torn)
	torn    bool  // the next word is neither unset nor set: a set in progress, or damage
	payload []byte
	sum     uint64
	size    int64 // bytes including padding
}

// frameLength returns the payload length a frame header at off claims, if
// the frame fits below limit; it never panics. b holds at least the fixed
// part (fOffPayload bytes).
func frameLength(b []byte, off, limit int64) (int, error) {
	if len(b) < fOffPayload {
		return 0, fmt.Errorf("%w: %d bytes, shorter than a frame header", ErrFrame, len(b))
	}
	le := binary.LittleEndian
	if le.Uint32(b[fOffMagic:]) != FrameMagic {
		return 0, fmt.Errorf("%w: bad magic %#x", ErrFrame, le.Uint32(b[fOffMagic:]))
	}
	n := le.Uint32(b[fOffLength:])
	if n > MaxRecordSize || off+FrameSize(int(n)) > limit {
		return 0, fmt.Errorf("%w: length %d runs past %d", ErrFrame, n, limit)
	}
	return int(n), nil
}

// decodeFrame decodes the frame at file offset off from b, which must hold
// the whole frame (FrameSize of its length). It checks the checksum against
// the log id and the offset. It never panics and copies the payload.
func decodeFrame(b []byte, id uint64, off, limit int64) (frame, error) {
	var fr frame
	n, err := frameLength(b, off, limit)
	if err != nil {
		return fr, err
	}
	size := FrameSize(n)
	if int64(len(b)) < size {
		return fr, fmt.Errorf("%w: %d bytes, frame needs %d", ErrFrame, len(b), size)
	}
	le := binary.LittleEndian
	payload := b[fOffPayload : fOffPayload+n]
	fr.sum = le.Uint64(b[fOffPayload+n:])
	if frameSum(id, off, b[:fOffNext], payload) != fr.sum {
		return fr, fmt.Errorf("%w: checksum mismatch", ErrFrame)
	}
	fr.typ = b[fOffType]
	flags := b[fOffFlags]
	fr.prev = int64(le.Uint64(b[fOffPrev:]))
	switch {
	case fr.typ == 0:
		return fr, fmt.Errorf("%w: type 0", ErrFrame)
	case flags&^flagContinuation != 0 || le.Uint16(b[6:]) != 0 || le.Uint32(b[12:]) != 0:
		return fr, fmt.Errorf("%w: reserved bits set", ErrFrame)
	case (flags&flagContinuation != 0) != (fr.prev != 0):
		return fr, fmt.Errorf("%w: continuation flag and prev disagree", ErrFrame)
	case fr.prev != 0 && (fr.prev < DataStart || fr.prev >= off):
		return fr, fmt.Errorf("%w: prev %d not before the frame", ErrFrame, fr.prev)
	case !zero(b[fOffPayload+n+8 : size]):
		return fr, fmt.Errorf("%w: non-zero padding", ErrFrame)
	}
	v, set, err := atomicrec.DecodeSetOnce(off+fOffNext, b[fOffNext:fOffPayload])
	switch {
	case err != nil:
		fr.torn = true
	case set:
		fr.next = int64(v)
	}
	fr.payload = append([]byte(nil), payload...)
	fr.size = size
	return fr, nil
}

// groupHasher folds the checksums of a commit's frames, in order.
type groupHasher struct{ d *xxhash.Digest }

func newGroupHasher() groupHasher { return groupHasher{xxhash.New()} }

func (g groupHasher) add(sum uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], sum)
	g.d.Write(b[:])
}

func (g groupHasher) sum() uint64 { return g.d.Sum64() }

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
