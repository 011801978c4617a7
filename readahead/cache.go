package readahead

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// DefaultBlockSize is the block size when Options.BlockSize is zero: 64 KiB,
// a common NFS rsize, so that one block read is one READ RPC.
const DefaultBlockSize = 64 << 10

// DefaultMemoryBytes is the memory bound when Options.MemoryBytes is zero.
const DefaultMemoryBytes = 32 << 20

// DefaultMaxReadAheadBlocks is the largest read-ahead window, in blocks, when
// Options.MaxReadAheadBlocks is zero: 16 blocks, 1 MiB with the default block
// size, enough to keep 16 READ RPCs in flight on a sequential scan while a
// stream holds little memory.
const DefaultMaxReadAheadBlocks = 16

// Options configure a Cache. The zero value selects every default.
type Options struct {
	// BlockSize is the size in bytes of a cached block and of every read
	// issued to a file: one aligned ReadAt of BlockSize bytes per block.
	// Choose it equal to (or a divisor of) the mount's rsize so a block
	// read is one READ RPC. Zero means DefaultBlockSize.
	BlockSize int64
	// MemoryBytes bounds the bytes of block data the cache holds, over all
	// files. It must be at least BlockSize. Zero means DefaultMemoryBytes.
	// Per-block bookkeeping (about 100 bytes a block) is not counted.
	MemoryBytes int64
	// MaxReadAheadBlocks caps the read-ahead window. One disables read-ahead;
	// zero means DefaultMaxReadAheadBlocks. The window is further capped at a
	// quarter of the cache's capacity in blocks, so read-ahead cannot evict
	// its own blocks before they are used.
	MaxReadAheadBlocks int
	// ReadConcurrency is how many block reads one ReadAt keeps in flight at
	// once, read-ahead included. Zero or one, the default, issues them one
	// after another from the calling goroutine in ascending offset order,
	// so a ReadAt does the same I/O in the same order every time and starts
	// no goroutine: that is what a deterministic simulation needs (inside
	// an nfssim task, a goroutine the simulator did not start must not call
	// into it). On a real NFS mount, set it to MaxReadAheadBlocks so the
	// READs of a read-ahead window overlap: a sequential scan of N blocks
	// then waits about log2(window) + N/window round trips instead of N.
	// The reads issued, and so the counters, are the same either way.
	// Negative is an error.
	ReadConcurrency int

	_ struct{} // forces keyed literals: the struct will grow
}

// FileID is the identity cached blocks are keyed by: a file's inode number
// (vfs.FileInfo.Ino) and a generation the caller reads from the file itself,
// such as a log id or a snapshot generation in its header. Inode numbers are
// reused after a file is removed, and a file renamed over another (N15) is a
// different inode, so the generation is what keeps a new file from ever being
// served the blocks of an old one. Two files must never share a FileID; doing
// so is the caller's bug.
type FileID struct {
	Ino        uint64
	Generation uint64
}

// Stats are a Cache's counters since New. Block counts are per block of
// BlockSize bytes; a ReadAt that spans three blocks counts three.
type Stats struct {
	// Hits counts demanded blocks served from memory, including the first
	// use of a block that read-ahead fetched.
	Hits int64
	// Misses counts demanded blocks that had to be read from the file.
	Misses int64
	// ReadAheadBlocks counts blocks read speculatively by read-ahead.
	ReadAheadBlocks int64
	// ReadCalls counts vfs.File.ReadAt calls that have returned; Misses +
	// ReadAheadBlocks whenever no ReadAt is in progress (a miss is counted
	// when it is planned, its read when the read returns). Each is one
	// READ RPC on NFS when BlockSize <= rsize.
	ReadCalls int64
	// BytesRead counts the bytes those calls returned.
	BytesRead int64
	// RPCsSaved is Hits + Misses - ReadCalls: the block reads that a reader
	// without a cache (one aligned read per block touched by each ReadAt)
	// would have issued, minus the ones this cache issued. Read-ahead moves
	// reads earlier without saving them, and a read-ahead block evicted or
	// dropped before use makes the figure smaller, so it is a net figure and
	// can be negative.
	RPCsSaved int64
	// StatCalls counts vfs.File.Stat calls issued by Revalidate (one GETATTR
	// on NFS once the attribute cache has expired).
	StatCalls int64
	// Evictions counts blocks evicted to make room.
	Evictions int64
	// Drops counts blocks dropped because their bytes could no longer be
	// trusted: by Revalidate, MarkImmutable, Invalidate, ESTALE or ErrIdentity.
	Drops int64
	// CachedBlocks and CachedBytes are the blocks and bytes held now;
	// CachedBytes never exceeds MemoryBytes.
	CachedBlocks int64
	CachedBytes  int64
	// MemoryBytes is the configured bound.
	MemoryBytes int64
}

// Cache is a block cache with read-ahead shared by all the files one host
// reads. It is safe for concurrent use by several goroutines. See the package
// documentation for the contract.
type Cache struct {
	blockSize   int64
	memoryBytes int64
	maxWindow   int // read-ahead cap in blocks, >= 1
	concurrency int // block reads in flight per ReadAt, >= 1; 1 is sequential

	mu    sync.Mutex
	files map[FileID]*fileState
	// slots is the CLOCK ring: one entry per block the memory bound allows,
	// nil when free. free lists the nil slots; hand is the clock hand.
	slots []*block
	free  []int
	hand  int

	cachedBytes int64
	// missesInFlight counts the misses of ReadAt calls whose block reads
	// have not returned yet: Misses counts them when they are planned,
	// ReadCalls when the reads are done.
	missesInFlight int64
	stats          Stats // counters; the Cached* and MemoryBytes fields are filled by Stats
}

// fileState is everything the cache knows about one identity. It is shared
// by all Readers of that identity and lives while a Reader holds it or a
// block of it is cached. All fields are guarded by Cache.mu.
type fileState struct {
	id     FileID
	refs   int // open Readers
	gone   bool
	blocks map[int64]*block // by block index

	// immLo and immHi are the current MarkImmutable claim [immLo, immHi);
	// empty when immLo >= immHi.
	immLo, immHi int64

	// epoch is bumped whenever blocks are dropped because their bytes may be
	// older than what the caller must see; a fetch planned in an earlier
	// epoch is returned to its reader but never inserted.
	epoch uint64

	// baseline holds the attributes at the last Revalidate; mutable blocks
	// are trusted only while the file still has them.
	baseline    attrs
	hasBaseline bool

	// sizeHint is the end of file as last observed (Revalidate's size or a
	// short block), or -1 when unknown. It only limits read-ahead.
	sizeHint int64
}

// attrs are the attributes Revalidate compares (N3: v3 compares exactly
// these; v4's change attribute is not in the seam).
type attrs struct {
	size  int64
	mtime time.Time
	ctime time.Time
}

func (a attrs) equal(b attrs) bool {
	return a.size == b.size && a.mtime.Equal(b.mtime) && a.ctime.Equal(b.ctime)
}

// block is one cached block. data is never modified after the block is
// inserted, so readers copy from it without holding the lock; a block
// shorter than BlockSize records end of file as of its fetch.
type block struct {
	owner     *fileState
	index     int64
	data      []byte
	immutable bool // fetched while the claim covered the whole block
	used      bool // demanded at least once (false: read ahead, not used yet)
	ref       bool // CLOCK reference bit: re-used since the hand last passed
	slot      int
}

// New returns a Cache configured by opts.
func New(opts Options) (*Cache, error) {
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	mem := opts.MemoryBytes
	if mem == 0 {
		mem = DefaultMemoryBytes
	}
	maxWindow := opts.MaxReadAheadBlocks
	if maxWindow == 0 {
		maxWindow = DefaultMaxReadAheadBlocks
	}
	switch {
	case bs < 0:
		return nil, fmt.Errorf("readahead: BlockSize %d is negative", bs)
	case mem < bs:
		return nil, fmt.Errorf("readahead: MemoryBytes %d is less than BlockSize %d", mem, bs)
	case maxWindow < 0:
		return nil, fmt.Errorf("readahead: MaxReadAheadBlocks %d is negative", maxWindow)
	case opts.ReadConcurrency < 0:
		return nil, fmt.Errorf("readahead: ReadConcurrency %d is negative", opts.ReadConcurrency)
	}
	capacity := mem / bs
	if capacity > 1<<30 {
		return nil, fmt.Errorf("readahead: %d blocks of %d bytes are too many", capacity, bs)
	}
	maxWindow = min(maxWindow, max(int(capacity/4), 1))
	c := &Cache{
		blockSize:   bs,
		memoryBytes: mem,
		maxWindow:   maxWindow,
		concurrency: max(opts.ReadConcurrency, 1),
		files:       make(map[FileID]*fileState),
		slots:       make([]*block, capacity),
		free:        make([]int, 0, capacity),
	}
	for i := int(capacity) - 1; i >= 0; i-- {
		c.free = append(c.free, i)
	}
	return c, nil
}

// BlockSize returns the block size in bytes: the size and alignment of every
// read the cache issues.
func (c *Cache) BlockSize() int64 { return c.blockSize }

// Open returns a Reader of f through the cache, keyed by id. It does no I/O.
// Readers of the same id share cached blocks, the immutable claim and the
// revalidation baseline, just as all the file descriptors of one NFS client
// share its page cache (N22); each Reader has its own read-ahead window.
// The caller keeps ownership of f: close the Reader, then f. By default the
// cache calls f.ReadAt only from the goroutine that called Reader.ReadAt;
// with Options.ReadConcurrency above one it calls it from several goroutines
// at once, as pread and every vfs implementation allow.
func (c *Cache) Open(f vfs.File, id FileID) *Reader {
	c.mu.Lock()
	defer c.mu.Unlock()
	fs := c.files[id]
	if fs == nil {
		fs = &fileState{id: id, blocks: make(map[int64]*block), sizeHint: -1}
		c.files[id] = fs
	}
	fs.refs++
	return &Reader{c: c, f: f, fs: fs, window: 1}
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.RPCsSaved = s.Hits + s.Misses - s.ReadCalls
	s.CachedBlocks = int64(len(c.slots) - len(c.free))
	s.CachedBytes = c.cachedBytes
	s.MemoryBytes = c.memoryBytes
	return s
}

// Check verifies the cache's internal invariants and returns every violation
// it finds (joined), or nil. It takes the lock and walks every block, so it
// is for tests (in the spirit of bbolt's Tx.Check), not for the read path.
func (c *Cache) Check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("readahead: check: "+format, args...))
	}
	var bytes int64
	occupied := 0
	for i, b := range c.slots {
		if b == nil {
			continue
		}
		occupied++
		bytes += int64(cap(b.data))
		switch {
		case b.slot != i:
			bad("slot %d holds a block that thinks it is in slot %d", i, b.slot)
		case b.owner.gone || c.files[b.owner.id] != b.owner:
			bad("block %d of %v belongs to a file the cache forgot", b.index, b.owner.id)
		case b.owner.blocks[b.index] != b:
			bad("block %d of %v is not in its file's map", b.index, b.owner.id)
		case len(b.data) == 0 || int64(cap(b.data)) > c.blockSize:
			bad("block %d of %v has %d bytes (cap %d), block size %d", b.index, b.owner.id, len(b.data), cap(b.data), c.blockSize)
		case b.immutable && int64(len(b.data)) != c.blockSize:
			bad("immutable block %d of %v is short (%d bytes)", b.index, b.owner.id, len(b.data))
		}
	}
	if occupied+len(c.free) != len(c.slots) {
		bad("%d occupied + %d free slots != %d slots", occupied, len(c.free), len(c.slots))
	}
	for _, s := range c.free {
		if c.slots[s] != nil {
			bad("free slot %d is occupied", s)
		}
	}
	mapped := 0
	for id, fs := range c.files {
		mapped += len(fs.blocks)
		switch {
		case fs.id != id:
			bad("file %v is filed under %v", fs.id, id)
		case fs.refs < 0:
			bad("file %v has %d readers", id, fs.refs)
		case fs.refs == 0 && len(fs.blocks) == 0:
			bad("file %v has neither readers nor blocks but is kept", id)
		}
	}
	if mapped != occupied {
		bad("%d blocks in file maps, %d in slots", mapped, occupied)
	}
	if bytes != c.cachedBytes {
		bad("cached bytes %d, counted %d", bytes, c.cachedBytes)
	}
	if c.cachedBytes > c.memoryBytes {
		bad("cached bytes %d exceed the bound %d", c.cachedBytes, c.memoryBytes)
	}
	if s := c.stats; c.missesInFlight < 0 || s.ReadCalls+c.missesInFlight != s.Misses+s.ReadAheadBlocks {
		bad("read calls %d + misses in flight %d != misses %d + read-ahead %d", s.ReadCalls, c.missesInFlight, s.Misses, s.ReadAheadBlocks)
	}
	return errors.Join(errs...)
}

// insert caches data as block index of fs, evicting if the cache is full.
// The caller holds c.mu and has checked that the block is not cached.
func (c *Cache) insert(fs *fileState, index int64, data []byte, immutable, used bool) {
	s := c.allocSlot()
	b := &block{owner: fs, index: index, data: data, immutable: immutable, used: used, slot: s}
	c.slots[s] = b
	fs.blocks[index] = b
	c.cachedBytes += int64(cap(data))
}

// allocSlot returns a free slot, evicting with CLOCK when there is none: the
// hand skips (and clears) blocks whose reference bit is set and evicts the
// first one whose bit is clear. The loop is bounded: after one full turn
// every bit is clear.
func (c *Cache) allocSlot() int {
	for range 2*len(c.slots) + 1 {
		if n := len(c.free); n > 0 {
			s := c.free[n-1]
			c.free = c.free[:n-1]
			return s
		}
		b := c.slots[c.hand]
		c.hand = (c.hand + 1) % len(c.slots)
		if b.ref {
			b.ref = false
			continue
		}
		c.remove(b)
		c.stats.Evictions++
	}
	panic("readahead: CLOCK found no victim in two turns") // unreachable: asserts the ring is consistent
}

// remove takes b out of the cache and forgets its file when nothing refers
// to it any more. The caller holds c.mu.
func (c *Cache) remove(b *block) {
	fs := b.owner
	delete(fs.blocks, b.index)
	c.slots[b.slot] = nil
	c.free = append(c.free, b.slot)
	c.cachedBytes -= int64(cap(b.data))
	c.forgetIfUnused(fs)
}

// forgetIfUnused drops fs from the file map when it has no Reader and no
// block: its claim and baseline go with it, which is safe because nothing
// cached depends on them. The caller holds c.mu.
func (c *Cache) forgetIfUnused(fs *fileState) {
	if fs.refs == 0 && len(fs.blocks) == 0 && !fs.gone {
		fs.gone = true
		delete(c.files, fs.id)
	}
}

// drop removes the blocks of fs for which keep returns false and fences
// in-flight fetches by bumping the epoch. The caller holds c.mu.
func (c *Cache) drop(fs *fileState, keep func(*block) bool) {
	fs.epoch++
	for _, b := range fs.blocks {
		if keep != nil && keep(b) {
			continue
		}
		c.remove(b)
		c.stats.Drops++
	}
}
