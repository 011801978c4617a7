package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

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

func (m *Mailbox) readSnapshot(ctx context.Context, gen uint32) (*state, error) {
	name := indexName(gen)
	f, err := m.fsys.OpenFile(m.path(name), vfs.ReadOnly, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, snapHeaderSize)
	if _, err := f.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, err
	}
	n, err := decodeSnapshotHeader(name, head)
	if err != nil {
		return nil, err
	}
	b := make([]byte, snapHeaderSize+n)
	k, err := f.ReadAt(b, 0)
	if err != nil && !(err == io.EOF && k == len(b)) {
		if err == io.EOF {
			return nil, corrupt(name, "truncated to %d of %d bytes", k, len(b))
		}
		return nil, err
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

// Compact folds the log into a new snapshot and removes what it folded,
// reclaiming space without stopping anyone (contract 7). It claims
// index.lock with an exclusive create; if another host holds the claim it
// returns false at once: compaction is skipped, never waited for.
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

func (m *Mailbox) compact(ctx context.Context) (bool, error) {
	if err := m.refresh(ctx); err != nil {
		return false, err
	}
	lock, err := m.fsys.OpenFile(m.path(lockName), vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("engine: claim %s: %w", lockName, err)
	}
	installed := false
	mine, err := lock.Stat()
	if err != nil {
		lock.Close()
		return false, err
	}
	defer func() {
		if installed {
			return
		}
		lock.Close()
		// Remove the claim only if the name is still ours: after a lost
		// reply the name may already belong to another compactor.
		if st, err := m.fsys.Lstat(m.path(lockName)); err == nil && st.Ino == mine.Ino {
			_ = m.fsys.Remove(m.path(lockName))
		}
	}()
	oldGen, oldBase := m.st.gen, m.st.base
	// 1. Open the next generation, then seal this one at the next
	// sequence number: the seal is ordered with every commit.
	if err := m.ensureTail(oldGen + 1); err != nil {
		return false, err
	}
	if _, err := m.commitOps(ctx, []op{{kind: opSeal}}, Key{}); err != nil {
		if errors.Is(err, errDead) {
			return false, nil
		}
		return false, err
	}
	if m.st.gen != oldGen+1 {
		return false, nil // somebody sealed first; we already moved on
	}
	seal := m.st.base
	// 2. The snapshot of everything up to the seal, durable, installed by
	// rename from the claim file (install and release in one step).
	img := encodeSnapshot(m.st)
	if _, err := lock.WriteAt(img, 0); err != nil {
		return false, fmt.Errorf("engine: write snapshot: %w", err)
	}
	if err := lock.Sync(); err != nil {
		return false, fmt.Errorf("engine: sync snapshot: %w", err)
	}
	if err := lock.Close(); err != nil {
		return false, fmt.Errorf("engine: close snapshot: %w", err)
	}
	if err := m.fsys.Rename(m.path(lockName), m.path(indexName(m.st.gen))); err != nil {
		// A lost reply makes a rename that happened report ENOENT (N14):
		// look at what the name holds now.
		st, rerr := m.readSnapshot(ctx, m.st.gen)
		if !errors.Is(err, fs.ErrNotExist) || rerr != nil || st.base != seal {
			return false, fmt.Errorf("engine: install snapshot: %w (reading it back: %v)", err, rerr)
		}
	}
	installed = true
	if err := m.fsys.SyncDir(m.opt.Dir); err != nil {
		return true, err
	}
	// 3. Mark the old generation dead, then remove it. Marking first is
	// what fences a committer that installs a record after its name was
	// removed: its publish sees the mark (or ESTALE) and it retries.
	return true, m.retire(oldGen, oldBase, seal)
}

// retire marks generation gen dead and removes its files: records
// base+1..seal, its tail, its snapshot, and anything older still listed.
func (m *Mailbox) retire(gen uint32, base, seal uint64) error {
	if err := m.markDead(gen); err != nil {
		return err
	}
	for seq := base + 1; seq <= seal; seq++ {
		if err := m.fsys.Remove(m.path(recordName(gen, seq))); err != nil && !gone(err) {
			return fmt.Errorf("engine: retire %s: %w", recordName(gen, seq), err)
		}
	}
	// The tail stays, marked dead, as a tombstone: if it were removed, a
	// host that fell behind could create the name again and publish a
	// zombie record in it as if the generation were live.
	if err := m.fsys.Remove(m.path(indexName(gen))); err != nil && !gone(err) {
		return fmt.Errorf("engine: retire %s: %w", indexName(gen), err)
	}
	// Leftovers of compactions that crashed midway.
	names, err := m.fsys.ReadDir(m.opt.Dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if g, ok := parseGen(n, tailPrefix); ok && g < gen {
			if err := m.markDead(g); err != nil && !gone(err) {
				return err
			}
		}
	}
	for _, n := range names {
		if _, isTail := parseGen(n, tailPrefix); isTail {
			continue // tombstones (above)
		}
		if g, ok := oldName(n); ok && g < gen {
			_ = m.fsys.Remove(m.path(n))
		}
	}
	return nil
}

func (m *Mailbox) markDead(gen uint32) error {
	if m.pub != nil && m.pubGen == gen {
		m.pub.Close()
		m.pub = nil
	}
	f, err := m.fsys.OpenFile(m.path(tailName(gen)), vfs.WriteOnly|vfs.DSync, 0)
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

// oldName returns the generation of a record, tail or snapshot name.
func oldName(n string) (uint32, bool) {
	if g, ok := parseGen(n, tailPrefix); ok {
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
