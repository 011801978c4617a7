package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"strings"

	"github.com/nfsindex/nfsindex/rename"
	"github.com/nfsindex/nfsindex/vfs"
)

// loadNewest starts from the newest snapshot the directory lists, if any.
// A listing may be stale or incomplete (N6): an older snapshot is still a
// correct start, because every generation after it is reached through its
// seal record or, if already removed, through reload.
func (m *Mailbox) loadNewest(ctx context.Context) error {
	names, err := m.fsys.ReadDir(m.opt.Dir)
	if err != nil {
		return fmt.Errorf("engine: list %s: %w", m.opt.Dir, err)
	}
	var best uint32
	for _, n := range names {
		if g, ok := parseGen(n, indexPrefix); ok && g > best {
			best = g
		}
	}
	if best == 0 || best <= m.st.gen && m.st.created {
		return nil
	}
	st, err := m.readSnapshot(ctx, best)
	if gone(err) {
		return nil // removed since the listing; the caller goes on from its state
	}
	if err != nil {
		return err
	}
	m.adopt(st)
	return nil
}

// reload is called when the generation being read is over (its tail is
// marked dead or removed, or a record is gone): a snapshot of a newer
// generation exists. It adopts the newest one it can find.
func (m *Mailbox) reload(ctx context.Context) error {
	from := m.st.gen
	for try := range 8 {
		if err := ctx.Err(); err != nil {
			return err
		}
		// index.<gen+1> was installed before gen was marked dead.
		if st, err := m.readSnapshot(ctx, from+1); err == nil {
			m.adopt(st)
		} else if !gone(err) {
			return err
		}
		if err := m.loadNewest(ctx); err != nil {
			return err
		}
		if m.st.gen > from {
			return nil
		}
		_ = try
	}
	return fmt.Errorf("engine: generation %d is over but no newer snapshot was found: %w", from, ErrCorrupt)
}

// adopt replaces the state by a snapshot's if it is ahead: further in the
// order, or of a later generation. A later generation always wins, even
// over a state that applied more: everything of an ended generation up to
// its seal is in the snapshot, and a record applied past the seal's
// position in an ended generation can only be a zombie that reused a
// removed name (read back after an EEXIST), never part of the order.
func (m *Mailbox) adopt(st *state) {
	if m.st.created && st.header.IndexID != m.st.header.IndexID {
		return // a foreign snapshot is never adopted over our mailbox
	}
	if !m.st.created || st.gen > m.st.gen || st.applied > m.st.applied {
		m.st = st
	}
}

// readSnapshot reads index.<gen> with the rename package's reader: the
// file is pinned by a hard link of its own while it is read (so a host
// installing a newer snapshot never silly-renames a name this host holds
// open, and an install elsewhere never makes the read go stale, N15/N17),
// and its rename header, size and payload hash are checked before the
// engine's own decoder checks the snapshot payload. A missing name, or one
// that kept going stale, is reported as such (gone): a compaction removed
// it. Anything that is not a whole version of generation gen holding a
// snapshot of gen is a *CorruptError.
func (m *Mailbox) readSnapshot(ctx context.Context, gen uint32) (*state, error) {
	name := indexName(gen)
	info, b, err := rename.Load(ctx, m.fsys, m.path(name), m.renameOptions())
	if errors.Is(err, rename.ErrCorrupt) {
		return nil, corrupt(name, "%v", err)
	}
	if err != nil {
		return nil, err
	}
	if info.Generation != uint64(gen) {
		return nil, corrupt(name, "version file of generation %d under the name of %d", info.Generation, gen)
	}
	st, err := decodeSnapshot(name, b)
	if err != nil {
		return nil, err
	}
	if st.gen != gen {
		return nil, corrupt(name, "snapshot of generation %d under the name of %d", st.gen, gen)
	}
	return st, ctx.Err()
}

// renameOptions are the options of every rename call: ids of claims, pins
// and probes are drawn from the mailbox's generator (seeded in tests).
func (m *Mailbox) renameOptions() rename.Options {
	host := m.opt.Host
	if len(host) > rename.MaxHostLen {
		host = host[:rename.MaxHostLen]
	}
	if m.rng == nil {
		// Inspect: a read-only Mailbox; its pins need ids, nothing else.
		m.rng = mrand.New(mrand.NewPCG(0x6e6673696e646578, 0x696e7370656374))
	}
	return rename.Options{Host: host, StaleAge: m.opt.CompactStaleAge, Rand: m.rng}
}

// Compact folds the log into a new snapshot and removes what it folded,
// reclaiming space without stopping anyone (contract 7). It claims the
// compaction with the rename package (the lock directory index.lock/); if
// another host holds a claim that is not stale it returns false at once:
// compaction is skipped, never waited for. A claim whose host stopped is
// taken over once it is Options.CompactStaleAge old by the server's
// clock.
func (m *Mailbox) Compact(ctx context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	return m.compact(ctx)
}

// compactDue reports whether the log since the snapshot has reached the
// threshold: Options.CompactRatio of the mailbox's size, and at least
// Options.CompactMinRecords records (the seed compacts its index when half
// of it is garbage).
func (m *Mailbox) compactDue() bool {
	logged := float64(m.st.applied - m.st.base)
	return m.opt.CompactRatio > 0 && logged >= float64(m.opt.CompactMinRecords) &&
		logged >= m.opt.CompactRatio*float64(len(m.st.msgs))
}

// compact is one compaction, from generation gen to gen+1:
//
//  1. claim: rename.Begin on <dir>/index for generation gen+1 (the lock
//     directory index.lock/; a fresh claim elsewhere: skip; a stale one,
//     older than CompactStaleAge by the server's clock: taken over);
//  2. seal: create tail.<gen+1>.<claim id>, then install the seal record
//     naming it in gen's order. A seal already there (a claimant that
//     stopped after sealing and was taken over) seals the generation all
//     the same: this compaction finishes that generation, and removes its
//     own tail, which no seal names;
//  3. snapshot: the state at the seal, written through the claim and
//     installed by Claim.CommitTo as index.<gen+1> (sync, then one rename
//     of the claim's own file, which also releases the lock);
//  4. retire gen: mark its tail dead, remove its records, its tail, its
//     snapshot and leftovers of older generations, tails and pins of
//     retired snapshots included, and sweep rename's litter if the
//     listing shows any.
//
// A claim taken over (ErrLost) or a snapshot already installed by another
// (ErrFenced) make it return false, nil: the seal it may have committed is
// harmless, the next compaction folds it.
func (m *Mailbox) compact(ctx context.Context) (bool, error) {
	if err := m.refresh(ctx); err != nil {
		return false, err
	}
	oldGen, oldTail, oldBase := m.st.gen, m.st.tail, m.st.base
	newGen := oldGen + 1
	claim, err := rename.Begin(ctx, m.fsys, m.path(claimBase), uint64(newGen), m.renameOptions())
	if errors.Is(err, rename.ErrBusy) || errors.Is(err, rename.ErrLost) {
		// Busy: another compaction is at it. Lost: we paused while
		// claiming and another host swept our claim as stale.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("engine: claim the compaction: %w", err)
	}
	open := true
	defer func() {
		if open {
			// Every early return gives the claim up, so the lock is free
			// at once (after ErrLost or ErrFenced the claim is already
			// over and Abort only says so).
			_ = claim.Abort(ctx)
		}
	}()
	// 1. Open the next generation: its tail, under a name only this
	// claim ever creates (a retired tail is removed, and its name must
	// never come back for a zombie to publish in). Then seal this one at
	// the next sequence number: the seal is ordered with every commit.
	tail := claim.Info().ClaimID
	if err := m.createTail(newGen, tail); gone(err) {
		// Removed while we created it: a compaction retired the
		// generation we were to open (we stopped after claiming, and our
		// claim was taken over).
		return false, nil
	} else if err != nil {
		return false, err
	}
	// A seal already at our place, installed by a compactor whose claim we
	// took over (it stopped after sealing, maybe before publishing), ends
	// the generation all the same, naming its own tail: we finish the
	// generation it opened, and ours is an orphan.
	if _, err := m.commitOps(ctx, []op{{kind: opSeal, tail: tail}}, Key{}); err != nil {
		if errors.Is(err, errDead) {
			return false, nil // the generation ended otherwise meanwhile
		}
		return false, err
	}
	if m.st.gen != newGen || m.st.applied != m.st.base {
		return false, nil // somebody sealed first; we already moved on
	}
	if m.st.tail != tail {
		// Nobody knows our tail's name: it can go at once.
		_ = m.fsys.Remove(m.path(tailName(newGen, tail)))
	}
	seal := m.st.base
	// 2. The snapshot of everything up to the seal, durable, installed by
	// renaming the claim's file (install and release in one step).
	if _, err := claim.Write(encodeSnapshot(m.st)); err != nil {
		if errors.Is(err, rename.ErrLost) {
			return false, nil
		}
		return false, fmt.Errorf("engine: write snapshot: %w", err)
	}
	target := m.path(indexName(newGen))
	info, err := claim.CommitTo(ctx, target)
	if errors.Is(err, rename.ErrUnknown) {
		// The claim is still open: the rename is sent again (Commit
		// re-checks and renames).
		info, err = claim.CommitTo(ctx, target)
	}
	switch {
	case err == nil:
		open = false
	case errors.Is(err, rename.ErrLost), errors.Is(err, rename.ErrFenced):
		// Taken over, or the generation is installed by another: our
		// version is not installed and never will be.
		open = false
		return false, nil
	case errors.Is(err, rename.ErrUnknown):
		// Give the claim up (its file removed: it can no longer be
		// installed), then read back what the name holds.
		open = false
		_ = claim.Abort(ctx)
		if !m.installedBy(ctx, newGen, claim.Info().ClaimID) {
			return false, fmt.Errorf("engine: install snapshot: %w (not installed, read back)", err)
		}
	case info.ClaimID != 0:
		// Installed; only syncing the directory failed.
		open = false
		return true, fmt.Errorf("engine: install snapshot: %w", err)
	default:
		return false, fmt.Errorf("engine: install snapshot: %w", err)
	}
	// 3. Mark the old generation dead, then remove it. Marking first is
	// what fences a committer that installs a record after its name was
	// removed: its publish sees the mark (or ESTALE) and it retries.
	return true, m.retire(ctx, oldGen, oldTail, oldBase, seal)
}

// createTail creates the tail of generation gen named by id, exclusively:
// the name is the claim's own, so it exists already only if our create's
// reply was lost and the call retransmitted (N14).
func (m *Mailbox) createTail(gen uint32, id uint64) error {
	name := tailName(gen, id)
	f, err := m.fsys.OpenFile(m.path(name), vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("engine: create %s: %w", name, err)
	}
	return f.Close()
}

// installedBy reports whether index.<gen> is the version of claim id.
func (m *Mailbox) installedBy(ctx context.Context, gen uint32, id uint64) bool {
	v, err := rename.OpenLatest(ctx, m.fsys, m.path(indexName(gen)), m.renameOptions())
	if err != nil {
		return false
	}
	defer v.Close()
	return v.Info().ClaimID == id
}

// retire marks generation gen (whose tail's id is tail) dead and removes
// its files: records base+1..seal, its tail, its snapshot and the pins of
// it, and anything older still listed: leftovers of compactions that
// stopped midway, tails included (each marked dead before it goes, I12),
// and the tails of compactors that lost the race to open a generation.
// tail.1 alone stays, marked dead, as the one tombstone (its name is the
// one a new opener creates). Names of the rename package are never taken
// for a generation's (see oldName); its litter (private claim directories
// and probes of hosts that stopped) is swept by rename.Sweep when the
// listing shows any.
//
// Removing a dead tail is safe because its name is never created again:
// only the compactor that opens a generation creates that generation's
// tail, under its own claim's id. A committer that still holds it open
// sees the mark (a local disk) or ESTALE (NFS); one that opens it by name
// gets ENOENT; either way it learns the generation is over.
func (m *Mailbox) retire(ctx context.Context, gen uint32, tail, base, seal uint64) error {
	if err := m.markDead(gen, tail); err != nil && !gone(err) {
		return err
	}
	for seq := base + 1; seq <= seal; seq++ {
		if err := m.fsys.Remove(m.path(recordName(gen, seq))); err != nil && !gone(err) {
			return fmt.Errorf("engine: retire %s: %w", recordName(gen, seq), err)
		}
	}
	if err := m.removeTail(gen, tail); err != nil {
		return err
	}
	if err := m.fsys.Remove(m.path(indexName(gen))); err != nil && !gone(err) {
		return fmt.Errorf("engine: retire %s: %w", indexName(gen), err)
	}
	names, err := m.fsys.ReadDir(m.opt.Dir)
	if err != nil {
		return err
	}
	litter := false
	for _, n := range names {
		if g, id, ok := parseTail(n); ok {
			if g > gen || g == gen && id == tail {
				continue // live (or to be), or removed above
			}
			// A leftover of a generation at or below gen: the tail of a
			// compaction that stopped before retiring (marked first: a
			// committer stopped in that generation must not acknowledge
			// a commit there), or an orphan no seal names.
			if id == 0 && m.firstDead {
				continue
			}
			if st, err := m.fsys.Stat(m.path(n)); err != nil || st.Size < deadOffset {
				// Not marked yet (a size past deadOffset was only ever
				// reached by the mark, even a cached one).
				if err := m.markDead(g, id); err != nil && !gone(err) {
					return err
				}
			}
			if err := m.removeTail(g, id); err != nil {
				return err
			}
			continue
		}
		if g, ok := pinGen(n); ok && g <= gen {
			// A reader's pin of a retired snapshot: the litter of a
			// reader that stopped, or a reader that is reading it now,
			// which then goes stale and reloads (as after its removal).
			_ = m.fsys.Remove(m.path(n))
			continue
		}
		if g, ok := oldName(n); ok && g < gen {
			_ = m.fsys.Remove(m.path(n))
			continue
		}
		litter = litter || strings.HasPrefix(n, claimBase+".claim.") || strings.HasPrefix(n, claimBase+".probe.")
	}
	if litter {
		// Best effort: what a sweep misses is swept after the next
		// compaction.
		_, _ = rename.Sweep(ctx, m.fsys, m.path(claimBase), m.renameOptions())
	}
	return nil
}

// removeTail removes a tail marked dead; tail.1 stays (createFirstTail).
func (m *Mailbox) removeTail(gen uint32, tail uint64) error {
	if tail == 0 {
		m.firstDead = true
		return nil
	}
	if err := m.fsys.Remove(m.path(tailName(gen, tail))); err != nil && !gone(err) {
		return fmt.Errorf("engine: retire %s: %w", tailName(gen, tail), err)
	}
	return nil
}

// markDead writes the dead mark into a tail: a byte at deadOffset,
// synced, so that every later publish sees a size past it.
func (m *Mailbox) markDead(gen uint32, tail uint64) error {
	name := tailName(gen, tail)
	if m.pub != nil && m.pubName == name {
		// Closed first: a file this client holds open would be
		// silly-renamed when removed (N17), and keep its space.
		m.pub.Close()
		m.pub = nil
	}
	f, err := m.fsys.OpenFile(m.path(name), vfs.WriteOnly|vfs.DSync, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteAt([]byte{1}, deadOffset)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// pinGen returns gen of a reader's pin of a snapshot, index.<gen>.pin.<id>
// (rename.OpenLatest of index.<gen>).
func pinGen(n string) (uint32, bool) {
	rest, ok := strings.CutPrefix(n, indexPrefix)
	if !ok {
		return 0, false
	}
	i := strings.IndexByte(rest, '.')
	if i <= 0 {
		return 0, false
	}
	id, ok := strings.CutPrefix(rest[i:], pinInfix)
	if !ok || id == "" {
		return 0, false
	}
	return parseGen(rest[:i], "")
}

// oldName returns the generation of a record, tail or snapshot name. The
// names of the rename package (index.lock, index.claim.<id>,
// index.probe.<id>, index.<gen>.pin.<id>) are none of these: parseGen
// accepts only a canonical number after the prefix.
func oldName(n string) (uint32, bool) {
	if g, _, ok := parseTail(n); ok {
		return g, true
	}
	if g, ok := parseGen(n, indexPrefix); ok {
		return g, true
	}
	if rest, ok := strings.CutPrefix(n, recordPrefix); ok {
		if i := strings.IndexByte(rest, '.'); i > 0 {
			return parseGen(rest[:i], "")
		}
	}
	return 0, false
}
