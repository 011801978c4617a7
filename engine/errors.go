package engine

import (
	"errors"
	"fmt"
)

// Errors a caller branches on, matched with errors.Is.
var (
	// ErrClosed is returned by every call on a closed Mailbox or View.
	ErrClosed = errors.New("engine: mailbox closed")
	// ErrCorrupt is returned when bytes the engine wrote fail validation
	// and cannot be rebuilt; *CorruptError gives the file and reason.
	ErrCorrupt = errors.New("engine: corrupt index")
	// ErrForeign is returned when the directory holds a file with an index
	// name that is not an index file of ours (another program, another
	// format version).
	ErrForeign = errors.New("engine: foreign file in index directory")
	// ErrNoMessage is returned by a transaction that names a UID the
	// mailbox does not hold (expunged meanwhile, or never appended).
	ErrNoMessage = errors.New("engine: no such message")
	// ErrTooLarge is returned when one transaction's record exceeds
	// MaxRecordBytes: split it.
	ErrTooLarge = errors.New("engine: transaction too large")
	// ErrContended is returned when a commit lost the race for the next
	// sequence number more than MaxCommitTries times in a row. Nothing was
	// committed; retry.
	ErrContended = errors.New("engine: too much contention")
	// ErrKeyUnknown is returned by Committed for a key older than the
	// window the index remembers.
	ErrKeyUnknown = errors.New("engine: idempotency key no longer remembered")
	// ErrFieldMoved is returned by FieldValue when the log a field
	// reference names was removed by its host after a field compaction
	// relocated its values (Mailbox.CompactFields): the reference comes
	// from a state older than the relocation. Sync and read the message's
	// field reference again.
	ErrFieldMoved = errors.New("engine: field value moved to a newer log")
)

// CorruptError describes bytes that failed validation.
type CorruptError struct {
	Name   string // file name in the mailbox directory
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("engine: %s: %s", e.Name, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corrupt(name, format string, args ...any) error {
	return &CorruptError{Name: name, Reason: fmt.Sprintf(format, args...)}
}
