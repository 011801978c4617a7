package engine

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// File names in a mailbox directory. Part of the on-disk format.
//
//	t.<gen>.<seq>   one committed transaction: a symlink whose target is
//	                the record (recordMagic, base64); installed by the
//	                symlink's exclusive creation, the only test-and-set
//	tail.<gen>.<id> the publication counter of generation gen: its size
//	                is the number of records of gen published so far;
//	                at deadOffset it is marked dead once a newer
//	                snapshot holds everything of gen, then removed. id
//	                (16 hex digits) is the claim id of the compactor that
//	                created it, named by the seal that opened gen: a
//	                removed tail's name is never created again
//	tail.1          generation 1's tail (id 0): created by whoever opens
//	                a new mailbox; once dead it stays, as the one
//	                tombstone (an opener that lists no snapshot creates
//	                it if missing)
//	index.<gen>     the snapshot holding every record up to the seal
//	                that opened gen: a version file of package rename
//	                (4 KiB header: generation gen, claim id, payload size
//	                and xxhash64) whose payload is the snapshot
//	                (snapshot.go), installed by Claim.CommitTo
//	log.<host>      host's append-only log of cached fields (appendlog),
//	                epoch 0
//	log.<host>+<e>  host's log of cached fields of epoch e > 0: e is the
//	                sequence number the host had applied when it created
//	                the log (fieldlog.go); the appendlog's name is
//	                "<host>+<e>", and FieldRef.Host holds it
//
// The compaction claim is rename's, on the name "index" (rename/doc.go):
//
//	index.lock/              the lock: a directory, free when empty
//	index.lock/<id>          the claim holding it, the snapshot being written
//	index.claim.<id>/<id>    a claim being prepared (private to its host)
//	index.<gen>.pin.<id>     a reader's hard link of index.<gen> while it
//	                         reads it (rename.Load)
//	index.probe.<id>         a short-lived probe of the server's clock
//
// None of these parses as a generation's name (parseGen takes only a
// canonical number after the prefix); retire removes the pins of retired
// snapshots and rename.Sweep the rest of the litter.
const (
	recordPrefix = "t."
	tailPrefix   = "tail."
	indexPrefix  = "index."
	// claimBase is the name the compaction claim is made on (rename.Begin):
	// its lock is claimBase+rename.LockSuffix.
	claimBase = "index"
	pinInfix  = ".pin."
)

// deadOffset: a byte written here marks a generation's tail dead. It is
// far beyond any real slot, so a size at or past it means "dead".
const deadOffset = int64(1) << 40

func recordName(gen uint32, seq uint64) string {
	return recordPrefix + strconv.FormatUint(uint64(gen), 10) + "." + strconv.FormatUint(seq, 10)
}

// tailName returns the name of generation gen's tail of id tail: the
// seal that opened gen names it (0 only for generation 1).
func tailName(gen uint32, tail uint64) string {
	n := tailPrefix + strconv.FormatUint(uint64(gen), 10)
	if tail == 0 {
		return n
	}
	return n + "." + fmt.Sprintf("%016x", tail)
}

func indexName(gen uint32) string { return indexPrefix + strconv.FormatUint(uint64(gen), 10) }

// parseTail returns the generation and id of a tail's name, in the
// canonical form tailName writes and no other.
func parseTail(name string) (gen uint32, tail uint64, ok bool) {
	rest, ok := strings.CutPrefix(name, tailPrefix)
	if !ok {
		return 0, 0, false
	}
	g, id, hasID := strings.Cut(rest, ".")
	gen, ok = parseGen(g, "")
	if !ok {
		return 0, 0, false
	}
	if !hasID {
		return gen, 0, true
	}
	v, err := strconv.ParseUint(id, 16, 64)
	if err != nil || v == 0 || tailName(gen, v) != name {
		return 0, 0, false
	}
	return gen, v, true
}

// parseGen returns gen of a name "<prefix><gen>".
func parseGen(name, prefix string) (uint32, bool) {
	s, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	g, err := strconv.ParseUint(s, 10, 32)
	if err != nil || g == 0 || strconv.FormatUint(g, 10) != s {
		return 0, false
	}
	return uint32(g), true
}

// Record layout (little-endian), before base64 (RawURLEncoding, so the
// symlink target has no '/' and no NUL). Part of the on-disk format.
//
//	offset size field
//	0      4    magic "NIR1"
//	4      4    gen
//	12     8    seq
//	20     8    key owner
//	28     8    key number
//	36     2    op count
//	38     ...  ops
//	end-8  8    xxhash64 of everything before it
const (
	recordMagic = "NIR1"
	// MaxRecordBytes bounds an encoded record: symlink targets are limited
	// (Linux: 4095 bytes; some NFS servers less). Larger transactions must
	// be split; cached fields live in the host's append-only log and the
	// record holds only their reference.
	MaxRecordBytes = 3000
)

// Op kinds. Part of the on-disk format.
const (
	opCreate  = 1 // uidvalidity u32, index id u64
	opAppend  = 2 // flags u16, keywords, fields
	opFlags   = 3 // uid u32, add u16, remove u16, add keywords, remove keywords
	opExpunge = 4 // uid u32
	opField   = 5 // uid u32, field
	opSeal    = 6 // next gen u32, next gen's tail id u64
	// opRelocate: from log name, to log name, move count u16, then per
	// move uvarint (old ref - previous old ref)/8 and uvarint (new ref -
	// previous new ref)/8 (previous = 0 for the first; both strictly
	// ascending, minimal varints). Every FieldRef naming log from at an
	// old ref now names log to at the new ref (fieldlog.go).
	opRelocate = 7
)

// Key identifies a transaction so that a caller whose Commit failed can
// learn whether it happened (Mailbox.Committed). Owner is random per
// Mailbox; N counts its transactions.
type Key struct {
	Owner uint64
	N     uint64
}

// FieldRef locates a cached field's value in a host's append-only log.
type FieldRef struct {
	Name string
	// Host names the log: the appendlog name of the writing host's log,
	// "<host>" for its first log and "<host>+<epoch>" for the logs its
	// field compactions write (Mailbox.CompactFields).
	Host string
	Ref  int64
}

// refMove is one entry of a relocation: the value at old in the
// relocation's source log is a copy of the value at new in its target.
type refMove struct{ old, new int64 }

type op struct {
	kind        uint8
	uid         uint32
	flags       Flags // append: initial; flags: add
	remove      Flags
	keywords    []string // append: initial; flags: add
	removeKw    []string
	fields      []FieldRef // append: initial fields; field: one
	uidValidity uint32
	indexID     uint64
	nextGen     uint32
	tail        uint64    // seal: id of the next generation's tail
	from, to    string    // relocate: source and target log
	moves       []refMove // relocate: ascending in old and in new
}

type record struct {
	gen uint32
	seq uint64
	key Key
	ops []op
}

func (r *record) isSeal() (uint32, bool) {
	if len(r.ops) == 1 && r.ops[0].kind == opSeal {
		return r.ops[0].nextGen, true
	}
	return 0, false
}

type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) str(s string) {
	e.u8(uint8(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) strs(ss []string) {
	e.u8(uint8(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}
func (e *encoder) field(f FieldRef) {
	e.str(f.Name)
	e.str(f.Host)
	e.u64(uint64(f.Ref))
}

// encodeRecord returns the symlink target for r.
func encodeRecord(r *record) (string, error) {
	e := &encoder{b: make([]byte, 0, 128)}
	e.b = append(e.b, recordMagic...)
	e.u32(r.gen)
	e.u64(r.seq)
	e.u64(r.key.Owner)
	e.u64(r.key.N)
	e.u16(uint16(len(r.ops)))
	for _, o := range r.ops {
		e.u8(o.kind)
		switch o.kind {
		case opCreate:
			e.u32(o.uidValidity)
			e.u64(o.indexID)
		case opAppend:
			e.u16(uint16(o.flags))
			e.strs(o.keywords)
			e.u8(uint8(len(o.fields)))
			for _, f := range o.fields {
				e.field(f)
			}
		case opFlags:
			e.u32(o.uid)
			e.u16(uint16(o.flags))
			e.u16(uint16(o.remove))
			e.strs(o.keywords)
			e.strs(o.removeKw)
		case opExpunge:
			e.u32(o.uid)
		case opField:
			e.u32(o.uid)
			e.field(o.fields[0])
		case opSeal:
			e.u32(o.nextGen)
			e.u64(o.tail)
		case opRelocate:
			if err := e.relocate(o); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("engine: encode: unknown op %d", o.kind)
		}
	}
	e.u64(xxhash.Sum64(e.b))
	s := base64.RawURLEncoding.EncodeToString(e.b)
	if len(s) > MaxRecordBytes {
		return "", ErrTooLarge
	}
	return s, nil
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) take(n int) []byte {
	if d.err || n > len(d.b) {
		d.err = true
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *decoder) u8() uint8   { return d.take(1)[0] }
func (d *decoder) u16() uint16 { return binary.LittleEndian.Uint16(d.take(2)) }
func (d *decoder) u32() uint32 { return binary.LittleEndian.Uint32(d.take(4)) }
func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.take(8)) }
func (d *decoder) str() string { return string(d.take(int(d.u8()))) }
func (d *decoder) strs() []string {
	n := int(d.u8())
	var out []string
	for i := 0; i < n && !d.err; i++ {
		out = append(out, d.str())
	}
	return out
}
func (d *decoder) field() FieldRef {
	return FieldRef{Name: d.str(), Host: d.str(), Ref: int64(d.u64())}
}

// relocate encodes a relocation's logs and moves (see opRelocate).
func (e *encoder) relocate(o op) error {
	if err := checkRelocation(o.from, o.to, len(o.moves)); err != nil {
		return err
	}
	e.str(o.from)
	e.str(o.to)
	e.u16(uint16(len(o.moves)))
	var po, pn int64
	for _, mv := range o.moves {
		if mv.old <= po || mv.new <= pn || mv.old%refAlign != 0 || mv.new%refAlign != 0 {
			return fmt.Errorf("engine: encode: relocation moves not ascending or not aligned at %d -> %d", mv.old, mv.new)
		}
		e.b = binary.AppendUvarint(e.b, uint64(mv.old-po)/refAlign)
		e.b = binary.AppendUvarint(e.b, uint64(mv.new-pn)/refAlign)
		po, pn = mv.old, mv.new
	}
	return nil
}

// refAlign: appendlog frames (hence refs) are 8-byte aligned (its
// format); relocation deltas are stored divided by it.
const refAlign = 8

// checkRelocation is what encoder and decoder both require of a
// relocation, so that every record that decodes encodes back the same.
func checkRelocation(from, to string, n int) error {
	if from == "" || to == "" || from == to || n > 0xffff {
		return fmt.Errorf("engine: relocation from %q to %q with %d moves", from, to, n)
	}
	return nil
}

// uvarint reads a minimal uvarint (a longer encoding of the same value
// would not encode back the same) that is at least 1.
func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) || v == 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) relocate(o *op) error {
	o.from, o.to = d.str(), d.str()
	n := int(d.u16())
	if err := checkRelocation(o.from, o.to, n); err != nil {
		return err
	}
	if n > len(d.b)/2 {
		return fmt.Errorf("%d moves in %d bytes", n, len(d.b))
	}
	var po, pn int64
	const limit = (1<<63 - 1) / refAlign
	for i := 0; i < n && !d.err; i++ {
		dOld, dNew := d.uvarint(), d.uvarint()
		if dOld > uint64(limit-po/refAlign) || dNew > uint64(limit-pn/refAlign) {
			return fmt.Errorf("relocation ref out of range")
		}
		po, pn = po+int64(dOld)*refAlign, pn+int64(dNew)*refAlign
		o.moves = append(o.moves, refMove{old: po, new: pn})
	}
	return nil
}

// decodeRecord parses a symlink target. Every failure is a typed
// *CorruptError naming the record; it never panics and allocates at most
// a small multiple of len(target).
func decodeRecord(name, target string) (*record, error) {
	if len(target) > MaxRecordBytes {
		return nil, corrupt(name, "record of %d bytes, more than %d", len(target), MaxRecordBytes)
	}
	b, err := base64.RawURLEncoding.DecodeString(target)
	if err != nil {
		return nil, corrupt(name, "not base64: %v", err)
	}
	if base64.RawURLEncoding.EncodeToString(b) != target {
		// the decoder skips newlines: only the canonical form is ours
		return nil, corrupt(name, "not in canonical base64")
	}
	if len(b) < 4+4+8+8+8+2+8 || string(b[:4]) != recordMagic {
		return nil, corrupt(name, "bad magic or too short (%d bytes)", len(b))
	}
	sum := binary.LittleEndian.Uint64(b[len(b)-8:])
	if xxhash.Sum64(b[:len(b)-8]) != sum {
		return nil, corrupt(name, "checksum mismatch")
	}
	d := &decoder{b: b[4 : len(b)-8]}
	r := &record{gen: d.u32(), seq: d.u64(), key: Key{Owner: d.u64(), N: d.u64()}}
	n := int(d.u16())
	for i := 0; i < n && !d.err; i++ {
		o := op{kind: d.u8()}
		switch o.kind {
		case opCreate:
			o.uidValidity, o.indexID = d.u32(), d.u64()
		case opAppend:
			o.flags = Flags(d.u16())
			o.keywords = d.strs()
			k := int(d.u8())
			for j := 0; j < k && !d.err; j++ {
				o.fields = append(o.fields, d.field())
			}
		case opFlags:
			o.uid, o.flags, o.remove = d.u32(), Flags(d.u16()), Flags(d.u16())
			o.keywords, o.removeKw = d.strs(), d.strs()
		case opExpunge:
			o.uid = d.u32()
		case opField:
			o.uid = d.u32()
			o.fields = []FieldRef{d.field()}
		case opSeal:
			o.nextGen, o.tail = d.u32(), d.u64()
			if o.tail == 0 && !d.err {
				return nil, corrupt(name, "seal without a tail id")
			}
		case opRelocate:
			if err := d.relocate(&o); err != nil {
				return nil, corrupt(name, "%v", err)
			}
		default:
			return nil, corrupt(name, "unknown op kind %d", o.kind)
		}
		r.ops = append(r.ops, o)
	}
	if d.err || len(d.b) != 0 {
		return nil, corrupt(name, "truncated or trailing bytes in the ops")
	}
	return r, nil
}

// sortedUnique returns the strings sorted without duplicates.
func sortedUnique(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if i == 0 || s != out[j-1] {
			out[j] = s
			j++
		}
	}
	return out[:j]
}
