// Package readahead is the seed's "lseek/read/write with a read-ahead cache":
// a block cache with read-ahead in front of vfs.File, shared by all the files
// one host reads, that knows which bytes can never change and revalidates the
// others only when the caller asks. It implements the "readahead" part of
// docs/design.md.
//
// # Blocks and reads
//
// A Cache holds blocks of a fixed BlockSize (default 64 KiB, a typical NFS
// rsize). Every read it issues is exactly one aligned vfs.File.ReadAt of one
// block, so on NFS with BlockSize <= rsize each is one READ RPC and the
// counters in Stats are RPC counts. Memory is bounded: at most
// MemoryBytes/BlockSize blocks are held, and the bytes held never exceed
// MemoryBytes. There is no mmap and no write path: writers use the vfs.File
// directly and tell the cache what they made immutable.
//
// # Identity
//
// Cache.Open(f, id) returns a Reader keyed by a FileID: the inode number and
// a generation the caller reads from the file itself (a log id, a snapshot
// generation). A file renamed over another (N15) or an inode number reused
// after removal gets a new FileID and can never be served the old file's
// blocks. Readers of one FileID share blocks, claim and baseline, as the file
// descriptors of one NFS client share its page cache (N22).
//
// # Immutable and mutable bytes
//
// Reader.MarkImmutable(off, end) claims that bytes [off, end) exist and never
// change again for this identity: committed append-only data below the
// published length, or the records of a snapshot that is only replaced by
// rename. Blocks read while the claim covers them whole are immutable: they are
// served without any revalidation for as long as the identity lives. The
// caller decides; a wrong claim is the caller's bug and the cache will serve
// old bytes. The cache checks what is cheap to check: a read or Revalidate
// that finds the file ending inside the claim returns ErrShortImmutable.
//
// Every other block is mutable. Reader.Revalidate is the only point at which
// mutable blocks are checked: one File.Stat, and if size, mtime or ctime
// differ from the previous Revalidate (or there was none), every mutable
// block of the identity is dropped. There are no timers. Between two
// Revalidate calls a mutable block is served as it was read, as the NFS page
// cache serves pages between two attribute revalidations (N1, N2). Change
// detection is only as good as the attributes (N3); when a checksum over
// cached bytes fails, Reader.Invalidate drops the blocks and the next read
// goes to the file.
//
// # Torn reads
//
// A torn read (N8) is the caller's concern: checksums live in the formats.
// The cache never makes a tear the caller cannot see: a block is always the
// bytes of one ReadAt, never patched from two, and a block read that races a
// Revalidate, MarkImmutable or Invalidate that dropped its neighbours is
// returned to its reader but not cached (an epoch per identity fences it).
// A ReadAt that spans several blocks may combine blocks read at different
// times, as an NFS read larger than rsize does.
//
// # ESTALE
//
// An error of the file reaches the caller wrapped with the step that failed;
// errors.Is(err, vfs.ErrStale) still matches ESTALE (N16), and on ESTALE every
// block of the identity is dropped. The caller reopens by name and gets a new
// identity, or the same one if the file was not replaced.
//
// # Read-ahead
//
// Each Reader has a read-ahead window, in blocks. A ReadAt that starts in the
// block where the previous one ended, or at most a window further on, is
// sequential; when a sequential ReadAt misses, the window doubles (up to
// MaxReadAheadBlocks, 16 blocks = 1 MiB by default, and at most a quarter of
// the cache), and the blocks from the miss to the end of the window are read
// together, never past the last known end of file. Any other ReadAt resets
// the window to one block. ReadAt returns when all its reads have finished:
// no read outlives the call and the counters are exact.
//
// By default the reads of one ReadAt are issued one after another, in
// ascending offset order, from the calling goroutine: the I/O is then a
// function of the cache's state and the file's answers, never of the Go
// scheduler, which a deterministic simulation (nfssim, whose tasks must not
// start goroutines that call into it) requires. Options.ReadConcurrency
// above one issues that many at a time in parallel, for real NFS mounts: a
// sequential scan of N blocks then costs the same N reads in about
// log2(16) + N/16 round trips instead of N.
//
// # Eviction
//
// CLOCK (second chance) over a fixed ring of block slots: O(1) per insert
// amortised, one bit per block, no list to reorder under the lock on a hit.
// A block enters with its reference bit clear and gets it only when it is used
// again: the first use of a read-ahead block and consecutive small reads inside
// the block a reader is already in do not count. A scan of a large file
// therefore leaves its blocks unreferenced and they are the first to go, while
// blocks that are really read again (headers, hot records) survive it.
//
// # Concurrency
//
// Cache and Reader are safe for concurrent use. One mutex guards the cache's
// maps and ring; it is never held during I/O, and cached bytes are copied to
// the caller outside it (a block's bytes never change once cached). Two
// goroutines that miss the same block at once may both read it; one copy is
// kept. Only with ReadConcurrency above one does the cache start goroutines
// of its own, and never one that outlives a ReadAt. Nothing here waits for
// another host.
//
// # Not guaranteed
//
// Freshness of mutable bytes beyond the last Revalidate, or beyond what the
// vfs.File shows this host (on NFS, reopen for close-to-open before
// Revalidate when another host's commit must be seen). Atomicity of a ReadAt
// across blocks. Immutable bytes after a wrong claim.
package readahead
