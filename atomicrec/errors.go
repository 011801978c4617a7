package atomicrec

import (
	"errors"
	"fmt"
)

// kindError is a per-copy failure kind. Every kind except ErrBlank matches
// ErrCorrupt through errors.Is, so callers can test the family or the kind.
type kindError struct {
	msg     string
	corrupt bool
}

func (k *kindError) Error() string { return k.msg }

func (k *kindError) Unwrap() error {
	if k.corrupt {
		return ErrCorrupt
	}
	return nil
}

// Errors a caller branches on. The per-copy kinds (ErrMagic .. ErrLength)
// come back from DecodeCopy, and inside a *CorruptError from Record methods
// when no copy is valid.
var (
	// ErrCorrupt is returned (inside a *CorruptError) when a record has no
	// valid copy although it is not blank: both copies are damaged, or the
	// first write ever was torn in place. Every per-copy kind below, except
	// ErrBlank, matches it.
	ErrCorrupt = errors.New("atomicrec: corrupt record")

	// ErrBlank is returned by DecodeCopy when the copy is all zero: never
	// written. It does not match ErrCorrupt.
	ErrBlank error = &kindError{msg: "atomicrec: blank copy"}
	// ErrMagic is returned when a copy does not start with CopyMagic: not
	// an atomicrec copy, or a write torn across the magic.
	ErrMagic error = &kindError{msg: "atomicrec: bad magic", corrupt: true}
	// ErrVersion is returned when a copy has a format version this code
	// does not read.
	ErrVersion error = &kindError{msg: "atomicrec: unsupported format version", corrupt: true}
	// ErrChecksum is returned when a copy's checksum does not match its
	// bytes: a torn or half-flushed write, a stale page mixed with a fresh
	// one, or damage.
	ErrChecksum error = &kindError{msg: "atomicrec: checksum mismatch", corrupt: true}
	// ErrMismatch is returned when a copy's checksum matches but it was
	// written for another slot, file offset or payload capacity.
	ErrMismatch error = &kindError{msg: "atomicrec: copy belongs to another slot, offset or layout", corrupt: true}
	// ErrLength is returned when a copy is short, or its checksum matches
	// but its length or generation fields are impossible.
	ErrLength error = &kindError{msg: "atomicrec: bad length or generation", corrupt: true}

	// ErrEmpty is returned when both copies are blank: the record was
	// never written. It does not match ErrCorrupt.
	ErrEmpty = errors.New("atomicrec: record never written")
	// ErrConflict is returned when two valid copies claim one generation,
	// or a Record sees a generation it returned before with another
	// payload, or a writer finds a generation it did not write: two
	// writers raced, or a write that another host read before it was
	// durable was lost in a crash and rewritten (N10). It does not match
	// ErrCorrupt: every copy involved is intact.
	ErrConflict = errors.New("atomicrec: conflicting generations (two writers?)")
	// ErrRegressed is returned when, after bounded rereads, the newest
	// valid copy on disk is older than one this Record already returned: a
	// page cache that stayed stale, a write seen before it was durable and
	// then lost (N10), or damage to the newest copy. Reset forgets what
	// the Record has seen.
	ErrRegressed = errors.New("atomicrec: record went back to an older generation")
	// ErrTorn is returned when a set-once word is neither unset nor a
	// value with its check: a set in progress, torn, or half flushed.
	// Reread it, or treat it as unset.
	ErrTorn = errors.New("atomicrec: torn set-once word")
	// ErrAlreadySet is returned when a set-once word is already set to a
	// different value.
	ErrAlreadySet = errors.New("atomicrec: set-once word already set to another value")
	// ErrLayout is returned when a Layout is unusable (see
	// Layout.Validate), or a payload does not fit it.
	ErrLayout = errors.New("atomicrec: invalid layout")
)

// CorruptError describes a record with no valid copy, or a damaged
// set-once word. Its Unwrap returns the failure kind, which matches
// ErrCorrupt: errors.Is(err, ErrCorrupt) and errors.Is(err, ErrChecksum)
// both work.
type CorruptError struct {
	// Path is the file's name.
	Path string
	// Offset is the file offset of the record (or word).
	Offset int64
	// Err is the failure kind: one of the per-copy kinds when both copies
	// failed the same way, else ErrCorrupt.
	Err error
	// Reason says what each copy looked like.
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("atomicrec: %s at offset %d: %v: %s", e.Path, e.Offset, e.Err, e.Reason)
}

// Unwrap returns the failure kind.
func (e *CorruptError) Unwrap() error { return e.Err }
