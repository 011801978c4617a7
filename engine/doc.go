// Package engine is the per-mailbox index that mail servers link as their
// storage layer, shared by several hosts on one NFS export with no locks:
// any host may crash at any instant and no host ever waits for another
// (docs/design.md, "The engine").
//
// What it guarantees, each clause checked by a test named in
// docs/design.md:
//
//   - One order. Every committed transaction has a sequence number; all
//     hosts apply the same records in the same order. The sequence number
//     is the MODSEQ of what the transaction changed, and appended messages
//     get UIDs above every UID before them in that order.
//   - Durability. A Commit that returned nil survives the crash of any
//     host and of the NFS server. A Commit that returned an error happened
//     entirely or not at all, and Mailbox.Committed(tx.Key()) says which.
//   - Freshness. A Sync (Mailbox.Sync, View.Sync) that starts after a
//     Commit returned on any host sees it, whatever the mount's attribute
//     caches. With nothing new it costs one RPC.
//   - Readers never lock, and nobody waits: a commit that loses the race
//     for a sequence number reads the winner's record, rebases and takes
//     the next number.
//   - Group commit. Concurrent Tx.Commit calls on one Mailbox (and
//     Mailbox.CommitGroup) share the syncs and the publishing write; each
//     transaction keeps its own record, place and MODSEQ.
//
// How: each transaction is one record, installed as a symbolic link named
// after its generation and sequence number (t.<gen>.<seq>); the link's
// exclusive creation at the server is the test-and-set, and its target is
// the record, durable when the SYMLINK reply arrives. A per-generation
// file tail.<gen> counts published records by its size, which only grows,
// so one close-to-open GETATTR tells any host whether anything is new,
// even on NFSv3 with coarse timestamps. Cached fields of variable size go
// to the committing host's append-only log (package appendlog) first; the
// record holds their references.
//
// Compact folds the log into an immutable snapshot index.<gen>, seals the
// old generation with a record in the same total order, marks it dead and
// removes it; a committer that fell behind is fenced by the dead mark;
// commits trigger it at the seed's 50% threshold. The compaction is
// claimed and its snapshot installed with package rename: rename.Begin on
// <dir>/index (the lock directory index.lock/) and Claim.CommitTo
// index.<gen+1>; snapshots are rename version files, read with
// rename.Load. A fresh claim elsewhere makes Compact skip, never wait; a
// claim whose host stopped is taken over once it is
// Options.CompactStaleAge old by the server's clock, and the stopped
// compactor, if it wakes, installs nothing (its install finds its claim
// file gone: ErrLost).
//
// Cached field values are reclaimed at the seed's 20% for variable data:
// once Options.FieldCompactRatio of a host's log records is garbage, a
// commit on that host (or CompactFields) copies the values still
// referenced into a new log epoch, log.<host>+<e>, and commits relocation
// records that move every host's references there; the old log is removed
// once a snapshot no longer references it. A read through a reference
// older than that gives ErrFieldMoved: Sync and read the reference again.
// Not yet: a host's logs are rewritten only by that host, so the logs of a
// host that never commits again keep their garbage (docs/design.md, 8e).
package engine
