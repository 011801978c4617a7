package atomicrec

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/nfsindex/nfsindex/vfs"
)

// Choice is what Choose found in a record's bytes.
type Choice struct {
	// Value is the newest valid, accepted copy.
	Value Value
	// MaxGen is the highest generation of any valid copy, accepted or not:
	// a writer continues after it, so a rejected generation is never
	// written twice.
	MaxGen uint64
	// CopyErr is the decode error of each slot (nil if valid).
	CopyErr [2]error
	// Rejected is the error accept returned for a valid copy newer than
	// Value, or nil.
	Rejected error
}

// Choose is the pure core of every read: it decodes both copies of layout l
// from span (the record's Size() bytes; missing bytes read as zero) and
// returns the valid copy with the highest generation that accept (nil
// accepts all) takes. It never trusts write order, page order or multi-byte
// atomicity: a copy is valid only if its checksum, magic, version, slot,
// offset and capacity all match, and a selector does not exist to be torn
// (see the package doc). Errors: ErrEmpty if both copies are blank;
// ErrConflict if both are valid with one generation; a *CorruptError if no
// copy is valid; the last accept error if every valid copy was rejected.
// Choose never panics and allocates at most the two payloads.
func Choose(l Layout, span []byte, accept func(Value) error) (Choice, error) {
	var c Choice
	if err := l.Validate(); err != nil {
		return c, err
	}
	var vals [2]Value
	valid := 0
	for s := 0; s < 2; s++ {
		start := l.Stride() * int64(s)
		var b []byte
		if start < int64(len(span)) {
			b = span[start:]
		}
		if len(b) < l.CopySize() { // past the end of file: reads as zero
			b = append(append(make([]byte, 0, l.CopySize()), b...), make([]byte, l.CopySize()-len(b))...)
		}
		vals[s], c.CopyErr[s] = DecodeCopy(l, s, b)
		if c.CopyErr[s] == nil {
			valid++
			c.MaxGen = max(c.MaxGen, vals[s].Gen)
		}
	}
	switch {
	case valid == 0 && c.CopyErr[0] == ErrBlank && c.CopyErr[1] == ErrBlank:
		return c, ErrEmpty
	case valid == 0:
		kind := ErrCorrupt
		if c.CopyErr[0] == c.CopyErr[1] {
			kind = c.CopyErr[0]
		}
		return c, &CorruptError{Offset: l.Offset, Err: kind,
			Reason: fmt.Sprintf("copy 0: %v; copy 1: %v", c.CopyErr[0], c.CopyErr[1])}
	case valid == 2 && vals[0].Gen == vals[1].Gen:
		return c, fmt.Errorf("%w: both copies at offset %d claim generation %d", ErrConflict, l.Offset, vals[0].Gen)
	}
	// Newest first; at most two candidates, so the loop is bounded by 2.
	order := [2]int{0, 1}
	if c.CopyErr[1] == nil && (c.CopyErr[0] != nil || vals[1].Gen > vals[0].Gen) {
		order = [2]int{1, 0}
	}
	var lastErr error
	for _, s := range order {
		if c.CopyErr[s] != nil {
			continue
		}
		if accept != nil {
			if err := accept(vals[s]); err != nil {
				lastErr = err
				if c.Rejected == nil {
					c.Rejected = err
				}
				continue
			}
		}
		c.Value = vals[s]
		return c, nil
	}
	return c, lastErr
}

// Options tune a Record. The zero value is the default.
type Options struct {
	// Path names the file in errors; the default is File.Name().
	Path string
	// Rereads bounds how many times a read is repeated when it sees a torn
	// record, a conflict or a regression before it reports the error.
	// Default 3; negative means 0.
	Rereads int
	// Rand draws the nonce of every write. Pass a seeded generator for a
	// deterministic run (nfssim); nil means one seeded from crypto/rand at
	// the first write (a Record that only reads never draws).
	Rand *rand.Rand

	_ struct{} // forces keyed literals: Options will grow
}

// DefaultRereads is the number of rereads when Options.Rereads is 0.
const DefaultRereads = 3

// Record is a double-buffered record at a fixed place of a vfs.File. It is
// a reader and, for the one host that owns the record, a writer. A Record
// is not safe for concurrent use; use one per goroutine.
//
// As a reader it is monotonic: once it returned generation g it never
// returns an older one (ErrRegressed instead), and never another payload
// for g (ErrConflict instead).
type Record struct {
	f       vfs.File
	l       Layout
	path    string
	rereads int
	span    []byte
	adopted []byte // the copy Load adopted, until Persist
	rng     *rand.Rand

	// reader state: the newest generation returned, and its checksum.
	seenGen uint64
	seenSum uint64

	// writer state.
	loaded   bool   // slot and maxGen describe the file
	slot     int    // slot of the newest durable copy; the next write goes to 1-slot
	maxGen   uint64 // highest generation known to exist or to have been written
	pending  bool   // a copy was written to 1-slot and not yet confirmed durable
	conflict error  // a foreign generation was seen: stop writing
}

// New returns a Record for layout l in f. It does no I/O.
func New(f vfs.File, l Layout, opts Options) (*Record, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	r := &Record{f: f, l: l, path: opts.Path, rereads: opts.Rereads, span: make([]byte, l.Size()), rng: opts.Rand}
	if r.path == "" {
		r.path = f.Name()
	}
	switch {
	case r.rereads == 0:
		r.rereads = DefaultRereads
	case r.rereads < 0:
		r.rereads = 0
	}
	return r, nil
}

// Reopen points the Record at f, a new handle on the same file (for
// example after reopening it by name, which on NFS revalidates this host's
// caches: close-to-open, N2), keeping everything the Record has seen and
// written, so it stays monotonic across the switch. The caller closes the
// old handle.
func (r *Record) Reopen(f vfs.File) { r.f = f }

// Layout returns the record's layout.
func (r *Record) Layout() Layout { return r.l }

// readSpan reads the whole record in one ReadAt. Bytes past the end of the
// file read as zero: a record at the end of a file that was never written.
func (r *Record) readSpan() error {
	n, err := r.f.ReadAt(r.span, r.l.Offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("atomicrec: read %s at %d: %w", r.path, r.l.Offset, err)
	}
	clear(r.span[n:])
	return nil
}

// Read returns the newest valid copy. See ReadAccept.
func (r *Record) Read(ctx context.Context) (Value, error) { return r.ReadAccept(ctx, nil) }

// ReadAccept returns the newest valid copy that accept (nil accepts all)
// takes: a caller with a validity condition beyond the checksum (appendlog
// checks that the data a header commits is there) passes it here, and an
// older copy is returned when the newest is rejected. A torn read, a
// conflict or a regression is reread up to Options.Rereads times; then the
// error is returned (ErrEmpty, ErrConflict, ErrRegressed, *CorruptError, or
// the accept error).
func (r *Record) ReadAccept(ctx context.Context, accept func(Value) error) (Value, error) {
	var err error
	for attempt := 0; attempt <= r.rereads; attempt++ {
		if err = ctx.Err(); err != nil {
			return Value{}, err
		}
		if err = r.readSpan(); err != nil {
			return Value{}, err
		}
		var c Choice
		c, err = Choose(r.l, r.span, accept)
		if err == nil {
			err = r.observe(c)
			if err == nil {
				return c.Value, nil
			}
			continue
		}
		if errors.Is(err, ErrEmpty) && r.seenGen == 0 {
			return Value{}, err // never written: rereading will not help
		}
		if errors.Is(err, ErrEmpty) {
			err = fmt.Errorf("%w: generation %d was returned before, now the record is blank", ErrRegressed, r.seenGen)
		}
	}
	var ce *CorruptError
	if errors.As(err, &ce) && ce.Path == "" {
		ce.Path = r.path
	}
	return Value{}, err
}

// observe applies the monotonic-reader rules to a choice and, if it passes,
// records it.
func (r *Record) observe(c Choice) error {
	v := c.Value
	switch {
	case v.Gen < r.seenGen:
		return fmt.Errorf("%w: %s at %d: newest copy is generation %d, generation %d was returned before",
			ErrRegressed, r.path, r.l.Offset, v.Gen, r.seenGen)
	case v.Gen == r.seenGen && r.seenGen != 0 && v.Sum != r.seenSum:
		return fmt.Errorf("%w: %s at %d: generation %d changed its payload", ErrConflict, r.path, r.l.Offset, v.Gen)
	}
	if r.loaded && c.MaxGen > r.maxGen && r.conflict == nil {
		// A writer that reads a generation it never wrote is racing another
		// writer (or its state is stale): it must not write again.
		r.conflict = fmt.Errorf("%w: %s at %d: found generation %d, this writer's newest is %d",
			ErrConflict, r.path, r.l.Offset, c.MaxGen, r.maxGen)
	}
	r.seenGen, r.seenSum = v.Gen, v.Sum
	return nil
}

// Reset forgets the generations this Record has returned and its writer
// state, so the next Read accepts whatever is on disk and the next Write
// reloads. Use it after ErrRegressed or ErrConflict once the cause is
// handled (for example after reopening the file).
func (r *Record) Reset() {
	r.seenGen, r.seenSum = 0, 0
	r.loaded, r.slot, r.maxGen, r.pending, r.conflict = false, 0, 0, false, nil
}

// Load prepares the Record for writing: it reads the record and takes the
// newest valid copy that accept takes as the newest durable one. The next
// Write goes to the other slot, with a generation above every valid copy
// (accepted or not). A blank record is loaded as "nothing written" (and
// ErrEmpty returned). Load is implied by the first Write; call it
// explicitly to pass accept, and look at Choice.Rejected: a valid copy
// newer than the accepted one still sits in the slot the next Write
// overwrites (appendlog's recovery overwrites it at once). Load writes the
// adopted copy again and syncs it, so that it is durable before the next
// Write overwrites the other copy: it may be a dead writer's unstable
// write (N10).
func (r *Record) Load(ctx context.Context, accept func(Value) error) (Choice, error) {
	c, err := r.LoadDeferred(ctx, accept)
	if err != nil || r.maxGen == 0 {
		return c, err
	}
	return c, r.Persist(ctx)
}

// LoadDeferred is Load without making the adopted copy durable: the
// caller must call Persist before the next Write (appendlog first makes
// the data the copy names durable).
func (r *Record) LoadDeferred(ctx context.Context, accept func(Value) error) (Choice, error) {
	r.Reset()
	var c Choice
	var err error
	for attempt := 0; attempt <= r.rereads; attempt++ {
		if err = ctx.Err(); err != nil {
			return Choice{}, err
		}
		if err = r.readSpan(); err != nil {
			return Choice{}, err
		}
		c, err = Choose(r.l, r.span, accept)
		if err == nil || errors.Is(err, ErrEmpty) {
			break
		}
	}
	switch {
	case errors.Is(err, ErrEmpty):
		// Nothing written: the first write goes to slot 0.
		r.loaded, r.slot, r.maxGen = true, 1, 0
		return c, err
	case err != nil:
		var ce *CorruptError
		if errors.As(err, &ce) && ce.Path == "" {
			ce.Path = r.path
		}
		return c, err
	}
	r.loaded, r.slot, r.maxGen = true, c.Value.Slot, c.MaxGen
	r.seenGen, r.seenSum = c.Value.Gen, c.Value.Sum
	r.adopted = append(r.adopted[:0], r.span[int64(c.Value.Slot)*r.l.Stride():][:r.l.CopySize()]...)
	return c, nil
}

// Persist makes the copy the last Load adopted durable: it may be a dead
// writer's unstable write that the NFS server holds only in memory (N10),
// and the next Write overwrites the other copy, so it must be durable
// first. COMMIT covers the whole file, but if the server crashes before
// it, a client re-sends only its own unstable writes, so Persist writes
// the same bytes again and syncs.
func (r *Record) Persist(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !r.loaded || len(r.adopted) == 0 {
		return nil
	}
	if _, err := r.f.WriteAt(r.adopted, r.l.CopyOffset(r.slot)); err != nil {
		return fmt.Errorf("atomicrec: persist %s at %d: %w", r.path, r.l.Offset, err)
	}
	if err := r.f.Datasync(); err != nil {
		return fmt.Errorf("atomicrec: persist %s at %d: %w", r.path, r.l.Offset, err)
	}
	r.adopted = r.adopted[:0]
	return nil
}

// Write writes payload as the next generation into the slot not holding the
// newest durable copy, without making it durable: the caller must Datasync
// the file and then call Durable with the returned Value (appendlog does
// that to commit data and header with one sync). Until Durable is called,
// further Writes go to the same slot, so the last durable copy is never
// overwritten. The first Write of a Record Loads it.
func (r *Record) Write(ctx context.Context, payload []byte) (Value, error) {
	if len(payload) > r.l.PayloadSize {
		return Value{}, fmt.Errorf("%w: payload of %d bytes exceeds capacity %d", ErrLayout, len(payload), r.l.PayloadSize)
	}
	if !r.loaded {
		if _, err := r.Load(ctx, nil); err != nil && !errors.Is(err, ErrEmpty) {
			return Value{}, err
		}
	}
	if r.conflict != nil {
		return Value{}, r.conflict
	}
	slot := 1 - r.slot
	gen := r.maxGen + 1
	if r.rng == nil {
		r.rng = NewRand() // only writers need randomness
	}
	// Never 0, and byte 0 (the first byte of the copy) is odd, so no
	// non-empty prefix of a written copy is blank: a file cut short inside a
	// copy reads as damaged, never as "never written".
	nonce := r.rng.Uint64() | 1<<63 | 1
	b := EncodeCopy(r.l, slot, gen, nonce, payload)
	if _, err := r.f.WriteAt(b, r.l.CopyOffset(slot)); err != nil {
		r.pending = true
		r.maxGen = gen
		return Value{}, fmt.Errorf("atomicrec: write %s at %d: %w", r.path, r.l.CopyOffset(slot), err)
	}
	r.pending = true
	r.maxGen = gen
	v := Value{Gen: gen, Payload: append([]byte(nil), payload...), Slot: slot,
		Sum: binary.LittleEndian.Uint64(b[offPayload+r.l.PayloadSize:]), Nonce: nonce}
	return v, nil
}

// Durable records that v, returned by the last Write, is durable (the
// caller's Datasync returned nil after it): the next Write goes to the
// other slot. It panics if v is not the last Write's value.
func (r *Record) Durable(v Value) {
	assert(r.pending && v.Gen == r.maxGen && v.Slot == 1-r.slot, "Durable: not the last written copy")
	r.slot = v.Slot
	r.pending = false
	if v.Gen > r.seenGen {
		r.seenGen, r.seenSum = v.Gen, v.Sum
	}
}

// Update writes payload as the next generation and makes it durable: one
// WriteAt of the copy, one Datasync. When it returns nil the new value is
// committed (the copy's generation is the commit point, see the package
// doc). When it returns an error the update may or may not have happened;
// Read tells which, and the next Update overwrites the same slot, never the
// last durable copy.
func (r *Record) Update(ctx context.Context, payload []byte) (Value, error) {
	v, err := r.Write(ctx, payload)
	if err != nil {
		return Value{}, err
	}
	if err := r.f.Datasync(); err != nil {
		return Value{}, fmt.Errorf("atomicrec: sync %s: %w", r.path, err)
	}
	r.Durable(v)
	return v, nil
}

// Check verifies the record's on-disk state without the monotonic rules:
// at least one valid copy, distinct generations, and, when this Record has
// written, nothing newer than its own newest generation. It is the hook
// for tests and proofs (bbolt's Tx.Check).
func (r *Record) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.readSpan(); err != nil {
		return err
	}
	c, err := Choose(r.l, r.span, nil)
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Path = r.path
		}
		return err
	}
	if r.loaded && c.MaxGen > r.maxGen {
		return fmt.Errorf("%w: %s at %d: generation %d on disk, this writer wrote up to %d",
			ErrConflict, r.path, r.l.Offset, c.MaxGen, r.maxGen)
	}
	if r.loaded && !r.pending && r.maxGen > 0 && c.Value.Gen != r.maxGen {
		return fmt.Errorf("%w: %s at %d: newest valid copy is generation %d, last durable write was %d",
			ErrRegressed, r.path, r.l.Offset, c.Value.Gen, r.maxGen)
	}
	return nil
}

// NewRand returns a generator seeded from crypto/rand, for callers that do
// not need a deterministic run.
func NewRand() *rand.Rand {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic("atomicrec: crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return rand.New(rand.NewChaCha8(seed))
}
