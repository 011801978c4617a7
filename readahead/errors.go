package readahead

import "errors"

// Errors a Reader returns. They are wrapped with the file name and the step
// that failed; match them with errors.Is. Errors of the underlying file
// (vfs.ErrStale among them) are wrapped the same way and stay matchable.
var (
	// ErrClosed is returned by every method of a Reader after its Close.
	ErrClosed = errors.New("readahead: reader closed")

	// ErrShortImmutable is returned when the file ends before the end of the
	// range given to MarkImmutable: a block read observed end of file inside
	// the claimed range, or Revalidate saw a size below it. Either the claim
	// was wrong (a caller bug), or this host's view of the file is older than
	// the claim, for example an attribute cache that still holds the size of
	// before an append (N1). The offending bytes are not cached; the caller
	// should reopen the file by name (close-to-open, N2) and retry.
	ErrShortImmutable = errors.New("readahead: file ends inside its immutable range")

	// ErrIdentity is returned by Revalidate when the file's inode number is
	// not the one in the FileID the Reader was opened with: the caller keyed
	// the cache with the wrong identity. Every cached block of that identity
	// is dropped.
	ErrIdentity = errors.New("readahead: file is not the identity it was opened as")
)
