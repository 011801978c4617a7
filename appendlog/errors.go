package appendlog

import (
	"errors"
	"fmt"
)

// corruptKind is a failure kind that matches ErrCorrupt through errors.Is.
type corruptKind struct{ msg string }

func (k *corruptKind) Error() string { return k.msg }
func (k *corruptKind) Unwrap() error { return ErrCorrupt }

// Errors a caller branches on. The kinds ErrHeader .. ErrForeign all match
// ErrCorrupt.
var (
	// ErrCorrupt is returned (inside a *CorruptError) when committed bytes
	// of a log do not validate after bounded rereads: a header with no
	// valid copy, a frame below used_file_size that fails its checks, a
	// next pointer to something that is not this record's continuation.
	ErrCorrupt = errors.New("appendlog: corrupt log")

	// ErrHeader is returned when a header copy's payload is not an
	// appendlog header or its fields are impossible.
	ErrHeader error = &corruptKind{"appendlog: bad header"}
	// ErrVersion is returned when the header has a format version this
	// code does not read.
	ErrVersion error = &corruptKind{"appendlog: unsupported format version"}
	// ErrFrame is returned when a frame below used_file_size has a bad
	// magic, length, checksum or reserved field.
	ErrFrame error = &corruptKind{"appendlog: bad frame"}
	// ErrGroup is returned when no header copy's last group of frames
	// verifies: the frames a header says it committed are not there.
	ErrGroup error = &corruptKind{"appendlog: committed frames missing"}
	// ErrChain is returned when a set next pointer does not lead to a
	// continuation of its record.
	ErrChain error = &corruptKind{"appendlog: broken chain"}
	// ErrForeign is returned when a log's header names another host than
	// its file name: a foreign or misplaced file.
	ErrForeign error = &corruptKind{"appendlog: log belongs to another host"}

	// ErrReplaced is returned when the file under a log's name now has
	// another log id than when the Reader opened it: it was replaced.
	// Open a new Reader.
	ErrReplaced = errors.New("appendlog: log file was replaced")
	// ErrNotCommitted is returned when a Ref is at or beyond the committed
	// length this Reader knows (Refresh, then retry), or not a frame start.
	ErrNotCommitted = errors.New("appendlog: record not committed")
	// ErrChained is returned by AppendAfter when the record already has a
	// continuation: append after the chain's tail.
	ErrChained = errors.New("appendlog: record already has a continuation")
	// ErrTooLarge is returned when a record exceeds MaxRecordSize, or the
	// appends pending since the last Commit would exceed MaxGroupSize.
	ErrTooLarge = errors.New("appendlog: record or group too large")
	// ErrBroken is returned by a Writer after a failed Commit: what reached
	// the disk is unknown, so the Writer must be closed and the log
	// reopened with Open, which recovers it.
	ErrBroken = errors.New("appendlog: writer unusable after a failed commit; reopen")
	// ErrHostName is returned for a host name that cannot name a log.
	ErrHostName = errors.New("appendlog: invalid host name")
)

// CorruptError describes committed bytes of a log that do not validate.
// Unwrap returns the kind (ErrHeader, ErrFrame, ...), which matches
// ErrCorrupt.
type CorruptError struct {
	// Path is the log file's name.
	Path string
	// Offset is the file offset of the bad header or frame.
	Offset int64
	// Err is the failure kind.
	Err error
	// Reason says what was found.
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("appendlog: %s at offset %d: %v: %s", e.Path, e.Offset, e.Err, e.Reason)
}

// Unwrap returns the failure kind.
func (e *CorruptError) Unwrap() error { return e.Err }

// assert panics when cond is false: only for caller bugs and broken
// internal invariants, never for bytes read from disk.
func assert(cond bool, msg string) {
	if !cond {
		panic("appendlog: assertion failed: " + msg)
	}
}
