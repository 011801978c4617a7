package appendlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/vfs"
)

// Ref is a record's address: the file offset of its frame. Refs are stable
// forever (the log is append-only) and strictly increase in append order.
type Ref int64

// Record is one record read from a log.
type Record struct {
	// Ref is where the record is.
	Ref Ref
	// Type is the caller's record type (1..255).
	Type uint8
	// Payload is the record's data, owned by the caller.
	Payload []byte
	// Prev is the record this one continues, or 0.
	Prev Ref
	// Next is this record's continuation, or 0 if none is visible yet.
	Next Ref
}

// Info describes the committed state of a log as one reader or writer
// last saw it.
type Info struct {
	// ID is the log id chosen at creation.
	ID uint64
	// Host is the writer's host name.
	Host string
	// Used is used_file_size: the committed length in bytes.
	Used int64
	// Records is the number of committed records.
	Records uint64
	// Generation is the header's atomicrec generation (one per commit).
	Generation uint64
}

// Options tune Create, Open and OpenReader. The zero value is the default.
type Options struct {
	// ID is the log id Create writes; 0 draws a random one from Rand.
	ID uint64
	// Rand draws log ids and header nonces. Pass a seeded generator for a
	// deterministic run (nfssim); nil means one seeded from crypto/rand.
	Rand *rand.Rand
	// Rereads bounds how often a read that fails validation is repeated
	// before the error is returned (stale page cache, torn concurrent
	// read). 0 means DefaultRereads; negative means none.
	Rereads int
	// Cache, for OpenReader, reads committed frames through a block
	// cache shared by the files a host reads: every commit but the last
	// one the Reader knows is cached as immutable (the durable bytes
	// [DataStart, group start) of the accepted header), keyed by the
	// file's inode number and the log id. The header is never read from
	// the cache, nor the last group, nor a next word that does not read
	// as set (see ReadBody). nil reads everything from the file. Create
	// and Open (the writer) ignore it.
	Cache *readahead.Cache

	_ struct{} // forces keyed literals: Options will grow
}

// DefaultRereads is the number of rereads when Options.Rereads is 0.
const DefaultRereads = 3

// LogName returns the file name of host's log: "log." + host.
func LogName(host string) string { return "log." + host }

// TempName returns the name Create writes host's log under before it
// links it into place as LogName(host). Only host ever uses it: a name
// left by a Create that stopped may be removed by host (Create removes it
// when it creates the same log again).
func TempName(host string) string { return tempPrefix + LogName(host) }

const tempPrefix = ".creating."

// ParseTempName returns the host whose log's temporary name (TempName) is
// name, if it is one.
func ParseTempName(name string) (host string, ok bool) {
	rest, ok := strings.CutPrefix(name, tempPrefix)
	if !ok {
		return "", false
	}
	return ParseLogName(rest)
}

// ParseLogName returns the host whose log file is called name, if it is one.
func ParseLogName(name string) (host string, ok bool) {
	host, ok = strings.CutPrefix(name, "log.")
	return host, ok && ValidHost(host) == nil
}

// ValidHost reports whether host can name a log: 1..MaxHostLen bytes of
// letters, digits, '.', '-', '_' and '+', not starting with '.'. Host
// names never contain '+': the engine names a host's later log epochs
// "<host>+<epoch>". The error wraps ErrHostName.
func ValidHost(host string) error {
	if len(host) == 0 || len(host) > MaxHostLen || host[0] == '.' {
		return fmt.Errorf("%w: %q", ErrHostName, host)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '+') {
			return fmt.Errorf("%w: %q", ErrHostName, host)
		}
	}
	return nil
}

// logFile is what readers and the writer share: the file, its header
// record, and the committed state last accepted.
type logFile struct {
	f       vfs.File
	path    string
	host    string
	id      uint64 // 0 until the first header is accepted
	hdr     *atomicrec.Record
	h       header
	gen     uint64
	sum     uint64 // checksum of the accepted header copy: its group is verified
	rereads int
	reader  bool // a Reader's: a failed frame read rechecks the header (never the writer's own state)
	// reopen, for a Reader, opens the file again by name: close-to-open
	// revalidation of this host's caches (N2).
	reopen func() (vfs.File, error)
	// cache, for a Reader with Options.Cache, serves committed frames
	// (cache.go); nil otherwise.
	cache *cacheState
}

func newLogFile(f vfs.File, path, host string, opts Options) (*logFile, error) {
	hdr, err := atomicrec.New(f, HeaderLayout(), atomicrec.Options{Path: path, Rereads: opts.Rereads, Rand: opts.Rand})
	if err != nil {
		return nil, err
	}
	lf := &logFile{f: f, path: path, host: host, hdr: hdr, rereads: opts.Rereads}
	switch {
	case lf.rereads == 0:
		lf.rereads = DefaultRereads
	case lf.rereads < 0:
		lf.rereads = 0
	}
	return lf, nil
}

func (lf *logFile) info() Info {
	return Info{ID: lf.id, Host: lf.h.host, Used: lf.h.used, Records: lf.h.records, Generation: lf.gen}
}

func (lf *logFile) corrupt(off int64, err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	kind := ErrCorrupt
	for _, k := range []error{ErrHeader, ErrVersion, ErrFrame, ErrGroup, ErrChain, ErrForeign} {
		if errors.Is(err, k) {
			kind = k
			break
		}
	}
	return &CorruptError{Path: lf.path, Offset: off, Err: kind, Reason: err.Error()}
}

// readAt reads exactly len(b) bytes at off; a short file is ErrFrame
// (committed bytes must exist).
func (lf *logFile) readAt(b []byte, off int64) error {
	n, err := lf.readVia(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("appendlog: read %s at %d: %w", lf.path, off, err)
	}
	if n < len(b) {
		return fmt.Errorf("%w: file ends at %d, before %d", ErrFrame, off+int64(n), off+int64(len(b)))
	}
	return nil
}

// accept is the validity condition of a header copy beyond atomicrec's
// checksum: it is an appendlog header of this host (and of this log, once
// known), and the frames of its last group are all there (verifyGroup).
// This is what makes the one-sync commit safe.
func (lf *logFile) accept(v atomicrec.Value) error {
	if lf.gen != 0 && v.Gen == lf.gen && v.Sum == lf.sum {
		return nil // the copy already accepted: its group was verified (nothing new: no data read)
	}
	h, err := decodeHeader(v.Payload)
	if err != nil {
		return err
	}
	if h.host != lf.host {
		return fmt.Errorf("%w: header names host %q", ErrForeign, h.host)
	}
	if lf.id != 0 && h.id != lf.id {
		return fmt.Errorf("%w: log id %#x, was %#x", ErrReplaced, h.id, lf.id)
	}
	return lf.verifyGroup(h)
}

// verifyGroup checks that the frames of h's last group tile [start, used)
// exactly, each valid for h's log id, and that their checksums hash to the
// header's group hash. It reads frame by frame, so it allocates no more
// than one frame, and no more than the file holds.
func (lf *logFile) verifyGroup(h header) error {
	assert(h.used-h.start >= 0 && h.used-h.start <= MaxGroupSize, "verifyGroup: group size not validated")
	gh := newGroupHasher()
	off := h.start
	// Each frame is at least FrameOverhead bytes: the loop is bounded.
	for steps := int64(0); off < h.used; steps++ {
		assert(steps <= (h.used-h.start)/FrameOverhead, "verifyGroup: loop bound")
		fr, err := lf.readFrameOnce(h.id, off, h.used)
		if err != nil {
			return fmt.Errorf("%w: frame at %d: %v", ErrGroup, off, err)
		}
		gh.add(fr.sum)
		off += fr.size
	}
	if gh.sum() != h.groupHash {
		return fmt.Errorf("%w: group [%d, %d) hashes to %#x, header says %#x", ErrGroup, h.start, h.used, gh.sum(), h.groupHash)
	}
	return nil
}

// refresh rereads the header and takes the newest copy whose group
// verifies. The committed state never goes back: generations are monotonic
// (atomicrec), and used may not shrink.
func (lf *logFile) refresh(ctx context.Context) error {
	v, err := lf.hdr.ReadAccept(ctx, lf.accept)
	if err != nil {
		return lf.headerErr(err)
	}
	h, err := decodeHeader(v.Payload)
	assert(err == nil, "refresh: accepted header does not decode")
	if h.used < lf.h.used {
		return lf.corrupt(0, fmt.Errorf("%w: used went from %d back to %d at generation %d", ErrHeader, lf.h.used, h.used, v.Gen))
	}
	lf.id, lf.h, lf.gen, lf.sum = h.id, h, v.Gen, v.Sum
	lf.syncCache()
	return nil
}

// headerErr turns an error of reading the header into this package's
// terms, keeping atomicrec's sentinels matchable where they mean the same.
func (lf *logFile) headerErr(err error) error {
	switch {
	case errors.Is(err, ErrReplaced), errors.Is(err, atomicrec.ErrRegressed), errors.Is(err, atomicrec.ErrConflict),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("appendlog: %s: %w", lf.path, err)
	case errors.Is(err, atomicrec.ErrEmpty):
		return &CorruptError{Path: lf.path, Err: ErrHeader, Reason: "no header was ever written"}
	case errors.Is(err, atomicrec.ErrVersion):
		return &CorruptError{Path: lf.path, Err: ErrVersion, Reason: err.Error()}
	case errors.Is(err, atomicrec.ErrCorrupt):
		return &CorruptError{Path: lf.path, Err: ErrHeader, Reason: err.Error()}
	case errors.Is(err, ErrCorrupt):
		return lf.corrupt(0, err)
	}
	return err
}

// readFrame reads and decodes the frame at off, which must lie below
// limit. It rereads a bounded number of times when validation fails (a
// stale or torn read).
func (lf *logFile) readFrame(ctx context.Context, off, limit int64) (frame, error) {
	if off < DataStart || off%frameAlign != 0 || off+FrameOverhead > limit {
		return frame{}, fmt.Errorf("%w: %s: ref %d not below committed length %d", ErrNotCommitted, lf.path, off, limit)
	}
	var err error
	for attempt := 0; attempt <= lf.rereads; attempt++ {
		if err := ctx.Err(); err != nil {
			return frame{}, err
		}
		var fr frame
		fr, err = lf.readFrameOnce(lf.id, off, limit)
		if err == nil {
			return fr, nil
		}
		if !errors.Is(err, ErrCorrupt) {
			return frame{}, err
		}
		// A cached block may hold a torn or stale read: reread from the file.
		lf.frameFailed(off, limit)
	}
	if lf.reader && lf.reopen != nil {
		return lf.revalidateFrame(ctx, off, limit, err)
	}
	return frame{}, lf.corrupt(off, err)
}

// revalidateFrame is a Reader's last resort before calling a frame below
// used_file_size damaged. Every such byte was committed, so a bad frame is
// damage, unless this host's caches are stale, or the commit this Reader
// saw is itself gone: a header and frames served by the NFS server before
// they were stable and lost in a server crash (N10), while this host still
// caches the header. Reopening the file by name revalidates the caches
// (close-to-open); then a header that went back is ErrRegressed, a
// replaced file ErrReplaced, and a frame that still fails is damage.
func (lf *logFile) revalidateFrame(ctx context.Context, off, limit int64, cause error) (frame, error) {
	f, err := lf.reopen()
	if err != nil {
		return frame{}, fmt.Errorf("appendlog: reopen %s: %w", lf.path, err)
	}
	if err := lf.openCache(f); err != nil {
		f.Close()
		return frame{}, err
	}
	old := lf.f
	lf.f = f
	lf.hdr.Reopen(f)
	old.Close() // a read-only handle: nothing to flush, and its error says nothing about the data
	// Check the header without moving the state callers see (Info, the
	// limit of a Scan in progress): that happens only in Refresh.
	h, gen, sum := lf.h, lf.gen, lf.sum
	if rerr := lf.refresh(ctx); rerr != nil {
		if errors.Is(rerr, atomicrec.ErrRegressed) || errors.Is(rerr, atomicrec.ErrConflict) || errors.Is(rerr, ErrReplaced) {
			return frame{}, fmt.Errorf("appendlog: %s: frame at %d: %v: %w", lf.path, off, cause, rerr)
		}
		return frame{}, rerr
	}
	lf.h, lf.gen, lf.sum = h, gen, sum // the new state extends the old one: keep serving the old
	lf.invalidate(off, min(limit-off, FrameSize(MaxRecordSize)))
	fr, err := lf.readFrameOnce(lf.id, off, limit)
	if err == nil {
		return fr, nil
	}
	if !errors.Is(err, ErrCorrupt) {
		return frame{}, err
	}
	return frame{}, lf.corrupt(off, err)
}

func (lf *logFile) readFrameOnce(id uint64, off, limit int64) (frame, error) {
	head := make([]byte, min(512, limit-off))
	if err := lf.readAt(head, off); err != nil {
		return frame{}, err
	}
	n, err := frameLength(head, off, limit)
	if err != nil {
		return frame{}, err
	}
	buf := head
	if size := FrameSize(n); size > int64(len(head)) {
		// Probe the frame's last byte before allocating for it, so a
		// length field can never make us allocate more than the file holds.
		var last [1]byte
		if err := lf.readAt(last[:], off+size-1); err != nil {
			return frame{}, err
		}
		buf = make([]byte, size) // <= FrameSize(MaxRecordSize), and the bytes exist
		copy(buf, head)
		if err := lf.readAt(buf[len(head):], off+int64(len(head))); err != nil {
			return frame{}, err
		}
	}
	return decodeFrame(buf, id, off, limit)
}

func (lf *logFile) record(ctx context.Context, ref Ref) (Record, error) {
	rec, _, err := lf.recordTorn(ctx, ref)
	return rec, err
}

// recordTorn is record that also reports a torn next word (read as no
// continuation).
func (lf *logFile) recordTorn(ctx context.Context, ref Ref) (Record, bool, error) {
	fr, err := lf.readFrame(ctx, int64(ref), lf.h.used)
	if err == nil {
		err = lf.freshNext(&fr, int64(ref))
	}
	if err != nil {
		return Record{}, false, err
	}
	rec := Record{Ref: ref, Type: fr.typ, Payload: fr.payload, Prev: Ref(fr.prev)}
	if fr.next != 0 && fr.next < lf.h.used {
		rec.Next = Ref(fr.next)
	}
	return rec, fr.torn, nil
}

// chainRecord reads a record for chain: a torn next word is reread a
// bounded number of times (a set in progress on the writer's host), then
// reported: a chain is never silently cut short by damage.
func (lf *logFile) chainRecord(ctx context.Context, ref Ref) (Record, error) {
	for attempt := 0; ; attempt++ {
		rec, torn, err := lf.recordTorn(ctx, ref)
		if err != nil || !torn {
			return rec, err
		}
		if attempt >= lf.rereads {
			return rec, lf.corrupt(int64(ref), fmt.Errorf("%w: next word of %d is torn", ErrChain, ref))
		}
	}
}

// chain returns the record at ref and every continuation after it. Next
// pointers must strictly increase (so there is no cycle) and lead to a
// frame that names the previous record as its prev; a next pointer at or
// beyond the committed length ends the chain (not visible yet).
func (lf *logFile) chain(ctx context.Context, ref Ref) ([]Record, error) {
	var out []Record
	maxSteps := (lf.h.used-DataStart)/FrameOverhead + 1
	cur, err := lf.chainRecord(ctx, ref)
	if err != nil {
		return nil, err
	}
	out = append(out, cur)
	for steps := int64(0); cur.Next != 0; steps++ {
		if steps >= maxSteps {
			return out, lf.corrupt(int64(cur.Ref), fmt.Errorf("%w: chain longer than the log", ErrChain))
		}
		if cur.Next <= cur.Ref {
			return out, lf.corrupt(int64(cur.Ref), fmt.Errorf("%w: next %d does not follow %d", ErrChain, cur.Next, cur.Ref))
		}
		nxt, err := lf.chainRecord(ctx, cur.Next)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				return out, lf.corrupt(int64(cur.Ref), fmt.Errorf("%w: next %d: %v", ErrChain, cur.Next, err))
			}
			return out, err
		}
		if nxt.Prev != cur.Ref {
			return out, lf.corrupt(int64(cur.Ref), fmt.Errorf("%w: next %d continues %d, not %d", ErrChain, cur.Next, nxt.Prev, cur.Ref))
		}
		out = append(out, nxt)
		cur = nxt
	}
	return out, nil
}

// scan calls fn for every committed record in order.
func (lf *logFile) scan(ctx context.Context, fn func(Record) error) error {
	off := int64(DataStart)
	limit := lf.h.used
	for steps := int64(0); off < limit; steps++ {
		assert(steps <= (limit-DataStart)/FrameOverhead, "scan: loop bound")
		fr, err := lf.readFrame(ctx, off, limit)
		if err == nil {
			err = lf.freshNext(&fr, off)
		}
		if err != nil {
			return err
		}
		rec := Record{Ref: Ref(off), Type: fr.typ, Payload: fr.payload, Prev: Ref(fr.prev)}
		if fr.next != 0 && fr.next < limit {
			rec.Next = Ref(fr.next)
		}
		if err := fn(rec); err != nil {
			return err
		}
		off += fr.size
	}
	return nil
}

// check verifies the whole committed log: frames tile [DataStart, used)
// exactly, the record count matches the header, the last group verifies,
// and every next pointer leads to a continuation that names its record as
// prev (and every continuation below the last group is linked).
func (lf *logFile) check(ctx context.Context) error {
	if err := lf.verifyGroup(lf.h); err != nil {
		return lf.corrupt(lf.h.start, err)
	}
	var count uint64
	prevOf := make(map[int64]int64) // continuation -> its prev
	nextOf := make(map[int64]int64) // record -> its next
	err := lf.scan(ctx, func(r Record) error {
		count++
		if r.Prev != 0 {
			prevOf[int64(r.Ref)] = int64(r.Prev)
		}
		if r.Next != 0 {
			nextOf[int64(r.Ref)] = int64(r.Next)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if count != lf.h.records {
		return lf.corrupt(0, fmt.Errorf("%w: header counts %d records, log holds %d", ErrHeader, lf.h.records, count))
	}
	for from, to := range nextOf {
		if prevOf[to] != from {
			return lf.corrupt(from, fmt.Errorf("%w: next %d does not continue %d", ErrChain, to, from))
		}
	}
	for to, from := range prevOf {
		if nextOf[from] != to && to < lf.h.start {
			// Links of the last group may be pending (the writer sets them
			// after the group is durable; recovery repairs them). Older
			// ones must be set.
			return lf.corrupt(from, fmt.Errorf("%w: %d continues %d, which does not link to it", ErrChain, to, from))
		}
	}
	return nil
}
