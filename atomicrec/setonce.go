package atomicrec

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nfsindex/nfsindex/vfs"
)

// SetOnce is a 16-byte word at a fixed offset of a file that goes from
// unset (all zero) to set, once, and never back: the seed's "set bit",
// widened to carry a 64-bit value. It needs no double buffer: a torn or
// half-flushed set reads as ErrTorn (or as unset, if none of its bytes
// arrived), never as a wrong value, because the value's check binds it to
// the word's file offset. Only one host may set a given word.
type SetOnce struct {
	f       vfs.File
	off     int64
	rereads int
}

// NewSetOnce returns the set-once word at file offset off of f. It does no
// I/O.
func NewSetOnce(f vfs.File, off int64) SetOnce {
	return SetOnce{f: f, off: off, rereads: DefaultRereads}
}

func (s SetOnce) read() (v uint64, set bool, err error) {
	var b [SetOnceSize]byte
	n, err := s.f.ReadAt(b[:], s.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, false, fmt.Errorf("atomicrec: read %s at %d: %w", s.f.Name(), s.off, err)
	}
	clear(b[n:])
	return DecodeSetOnce(s.off, b[:])
}

// Get returns the word's value and whether it is set. A torn word is reread
// a bounded number of times, then reported as ErrTorn (wrapped).
func (s SetOnce) Get(ctx context.Context) (v uint64, set bool, err error) {
	for attempt := 0; attempt <= s.rereads; attempt++ {
		if err = ctx.Err(); err != nil {
			return 0, false, err
		}
		v, set, err = s.read()
		if !errors.Is(err, ErrTorn) {
			return v, set, err
		}
	}
	return 0, false, fmt.Errorf("%w: %s at offset %d", err, s.f.Name(), s.off)
}

// Set sets the word to v and makes it durable (one WriteAt, one Datasync).
// Setting it again to the same v is a no-op that still syncs, so a set
// whose outcome is unknown can be repeated; a word set to another value
// gives ErrAlreadySet. A torn word (an earlier set interrupted) is
// rewritten: only its own writer can have torn it.
func (s SetOnce) Set(ctx context.Context, v uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	old, set, err := s.read()
	switch {
	case err != nil && !errors.Is(err, ErrTorn):
		return err
	case set && old != v:
		return fmt.Errorf("%w: %s at offset %d holds %d, not %d", ErrAlreadySet, s.f.Name(), s.off, old, v)
	case !set:
		b := EncodeSetOnce(s.off, v)
		if _, err := s.f.WriteAt(b[:], s.off); err != nil {
			return fmt.Errorf("atomicrec: write %s at %d: %w", s.f.Name(), s.off, err)
		}
	}
	if err := s.f.Datasync(); err != nil {
		return fmt.Errorf("atomicrec: sync %s: %w", s.f.Name(), err)
	}
	return nil
}
