// Package atomicrec is a double-buffered, fixed-size record at a chosen
// offset of a vfs.File, and a set-once word: the seed's use_first datasets
// and set bits (docs/design.md, "atomicrec"), made safe without trusting
// write order, page order or any multi-byte atomicity.
//
// # Layout
//
// A record has two copies (slot 0 and slot 1), one Layout.Stride() apart.
// Each copy carries a random per-write nonce, a magic, a format version, its
// slot, the record's file offset, the payload capacity, the payload length,
// a generation (1, 2, 3, ... one per write), the payload whitened with a
// keystream of the nonce, and an xxhash64 checksum of all of it (format.go
// has the byte table). The nonce makes every sector-sized piece of a copy
// specific to one write, so the pieces a torn write left behind can never
// be completed into a valid copy by a later write into the same slot: a
// write that a reader once saw as not done never comes back (a zombie;
// TestNoZombieWrite). With Layout.Align = 0 the copies are packed; with
// PageAligned each copy starts on its own page and is padded to whole
// pages, so a record never shares a page with another record (N9: two hosts
// writing one page through their page caches lose updates) and its two
// copies never share a page with each other.
//
// # Commit point: the generation, one sync per update
//
// A write goes to the slot that does not hold the newest durable copy, with
// the next generation, and is made durable by one Datasync: Update is one
// WriteAt and one Datasync. A reader decodes both copies and takes the
// valid one with the highest generation (bbolt's DB.meta shape). The copy's
// generation, protected by its checksum, is the commit point: the update is
// committed when its copy is complete and durable.
//
// There is deliberately no separate use_first selector. The seed needed one
// because its copies had no generation and no checksum; here the pair of
// generations is the selector, and flipping it is the same write as the
// data, so it cannot be torn apart from the copy it names, flushed before
// it (N7), or read stale while the copy is fresh. A separate selector would
// carry information only if it were written after a second barrier
// (write copy, Datasync, write selector, Datasync), which doubles the cost
// of every update, the whole of the 1.5x budget of brief §5, and buys one
// thing only: telling a bit flip in the newest copy from a crash in the
// middle of writing it. Both look the same here (the newest copy is
// invalid) and both fall back one generation; a Record that had already
// returned the newer generation reports ErrRegressed instead of going back.
//
// # What a reader is guaranteed
//
//   - It never returns a torn, half-flushed or foreign copy: every byte of
//     a returned copy was written by one Write (up to a 2^-64 chance).
//   - It returns a generation that some Write produced; an update that
//     returned nil is returned by every read that starts after it, on a
//     host whose page cache is coherent (N2: reopen the file on NFS).
//   - A Record is monotonic: once it returned generation g, it never
//     returns an older one (ErrRegressed) and never another payload for g
//     (ErrConflict).
//   - It may return a generation whose Update has not returned yet (a
//     concurrent read). If the writer host and the NFS server both crash
//     before that write was durable, the generation can disappear (N10);
//     a Record that saw it then reports ErrRegressed, or ErrConflict if the
//     writer later rewrote that generation. No protocol without locks can
//     prevent a reader from seeing an unstable write another host made.
//
// # Writers
//
// One writer per record, or writers ordered by something outside this
// package (a compaction lock file, a sequence number). If two writers race,
// the outcome is detected, never silently wrong: two valid copies with one
// generation give ErrConflict; a reader that sees a generation change its
// payload gives ErrConflict; a writer whose Record reads (or Checks) a
// generation it did not write refuses to write again with ErrConflict.
// Detection is certain on disk and best effort across hosts' caches.
//
// After a failed Update (the WriteAt or Datasync returned an error) the
// outcome is unknown; the next write goes to the same slot, so the last
// durable copy is never overwritten while the newer one may be torn.
//
// Initialise a record before its file is visible to others (write, sync,
// then rename or link the file into place): a record whose very first write
// was torn in place has no valid copy and reads as ErrCorrupt, since it is
// indistinguishable from a record whose only copy was damaged.
//
// # Set-once words
//
// SetOnce is a 16-byte word: a value and a check bound to the word's file
// offset. All zero is unset; a value with its check is set; anything else
// is ErrTorn (a set interrupted or half flushed). It is never read as a
// wrong value, so it needs no double buffer.
//
// # For proofs
//
// Choose, DecodeCopy and DecodeSetOnce are pure functions over bytes: a
// crash-point enumeration can compute what any reader would see from any
// byte image without a file. Record.Check verifies the on-disk state.
package atomicrec
