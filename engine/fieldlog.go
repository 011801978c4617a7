package engine

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/nfsindex/nfsindex/appendlog"
	"github.com/nfsindex/nfsindex/readahead"
)

// Field compaction: the seed's 20% threshold for variable data.
//
// A host's cached field values go to its current log (appendlog, one
// writer). Its first log is epoch 0, log.<host>; every later one is
// log.<host>+<e>, where e is at least the sequence number the host had
// applied when it created it. A rewrite (Mailbox.CompactFields, or a
// commit that finds Options.FieldCompactRatio of the host's records
// unreferenced) creates a new epoch, copies into it every value of the
// host's logs that the state it has applied references, commits it (one
// appendlog Commit per 8 MiB), makes it the current log, and commits
// opRelocate records (old ref -> new ref, inline, as many records as the
// 3000-byte limit needs) through the total order. Applying one rewrites
// every reference it names; references it does not name stay. Each move
// is a copy, so a relocation preserves every value whichever message holds
// the reference and whatever was committed meanwhile: the rewrite needs
// no coordination with anybody.
//
// Only the removal of an old log needs an argument. This Mailbox removes
// one of its host's logs L other than the current one when
//
//  1. since(L) is the sequence number of a commit of this Mailbox that was
//     acknowledged after L stopped being current for it (after the
//     rewrite switched away from it, or, for a log an earlier process left,
//     after this Mailbox opened its log), and since(L) > L's epoch;
//  2. the snapshot index.<gen> of the state this Mailbox has applied is
//     installed, its seal base >= since(L), and its state references no
//     value of L (state.baseLogs).
//
// Every record that references L (a field value the host wrote into L,
// or a relocation into L) was installed before the commit of 1: the host
// wrote L only while it was current, one commit at a time, and an earlier
// process of the host is dead (one process per host name, as appendlog
// requires of its writer). A record installed before another is before it
// in the order, so every reference to L is at or below the snapshot of 2,
// which has none: no state at or after the newest snapshot references L.
// A host that is behind may still hold a reference to L: its read gives
// ErrFieldMoved, and after a Sync its state is past the snapshot. The
// epoch rule makes a removed name impossible to create again: a new epoch
// is at least the sequence number applied when it is created, which is at
// least the snapshot's base, above every removed epoch (1).

// MaxHostLen bounds Options.Host: a log epoch's appendlog name, the host,
// '+' and up to 20 digits, must fit appendlog.MaxHostLen.
const MaxHostLen = appendlog.MaxHostLen - 21

// validHost checks Options.Host: a valid appendlog host name without '+',
// which separates a log epoch from the host.
func validHost(host string) error {
	if err := appendlog.ValidHost(host); err != nil {
		return err
	}
	if strings.Contains(host, "+") {
		return fmt.Errorf("%w: %q: '+' is reserved for log epochs", appendlog.ErrHostName, host)
	}
	if len(host) > MaxHostLen {
		return fmt.Errorf("%w: %q is longer than %d bytes", appendlog.ErrHostName, host, MaxHostLen)
	}
	return nil
}

// epochName returns the appendlog name of host's log of epoch e.
func epochName(host string, e uint64) string {
	if e == 0 {
		return host
	}
	return host + "+" + strconv.FormatUint(e, 10)
}

// ownEpoch returns the epoch of the log named log if it is one of host's.
func ownEpoch(host, log string) (uint64, bool) {
	if log == host {
		return 0, true
	}
	rest, ok := strings.CutPrefix(log, host+"+")
	if !ok {
		return 0, false
	}
	e, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || e == 0 || strconv.FormatUint(e, 10) != rest {
		return 0, false
	}
	return e, true
}

// fieldLogs is what a Mailbox knows of its own host's field logs.
type fieldLogs struct {
	cur string // the log new values go to (its appendlog name)
	// others are the host's other logs known to exist: older epochs,
	// logs an earlier process left, targets of rewrites that failed.
	others map[string]*ownLog
	// tried is the snapshot base at which removal was last tried.
	tried uint64
	// failed: an automatic rewrite failed at snapshot base failedBase;
	// commits do not try again before the base moves (each try may leave
	// an orphan epoch behind).
	failed     bool
	failedBase uint64
}

type ownLog struct {
	records uint64 // committed records (never written again)
	// since is the sequence number of a commit of this Mailbox
	// acknowledged after the log stopped being current for it (0: none
	// yet); every record referencing the log is before it.
	since uint64
	// relocated: a rewrite of this Mailbox relocated the references the
	// state held; the log no longer counts toward the threshold.
	relocated bool
}

func (m *Mailbox) fieldLogs() *fieldLogs {
	if m.flog == nil {
		m.flog = &fieldLogs{others: map[string]*ownLog{}}
	}
	return m.flog
}

func (m *Mailbox) logOptions() appendlog.Options { return appendlog.Options{Rand: m.rng} }

// listOwnLogs lists this host's logs (name -> epoch) and the temporary
// names of its log creations that stopped.
func (m *Mailbox) listOwnLogs() (map[string]uint64, []string, error) {
	names, err := m.fsys.ReadDir(m.opt.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("engine: list %s: %w", m.opt.Dir, err)
	}
	logs := map[string]uint64{}
	var temps []string
	for _, n := range names {
		if l, ok := appendlog.ParseLogName(n); ok {
			if e, ok := ownEpoch(m.opt.Host, l); ok {
				logs[l] = e
			}
		} else if l, ok := appendlog.ParseTempName(n); ok {
			if _, ok := ownEpoch(m.opt.Host, l); ok {
				temps = append(temps, n)
			}
		}
	}
	return logs, temps, nil
}

// openFieldLog opens the log this host writes new values to: the newest
// of its logs the directory lists, confirmed by opening it, or else a new
// one. Epoch 0 (log.<host>) is created only while the mailbox has never
// been sealed (no log of anybody was ever removed); otherwise a new epoch
// is numbered from the state (createEpoch), so a name removed once is
// never created again, even if the listing missed logs (N6).
func (m *Mailbox) openFieldLog(ctx context.Context) (*appendlog.Writer, error) {
	fl := m.fieldLogs()
	logs, temps, err := m.listOwnLogs()
	if err != nil {
		return nil, err
	}
	for _, t := range temps {
		// A creation that stopped (this host's earlier process): no other
		// host ever uses the name.
		_ = m.fsys.Remove(m.path(t))
	}
	for len(logs) > 0 {
		newest, best := "", uint64(0)
		for l, e := range logs {
			if newest == "" || e > best {
				newest, best = l, e
			}
		}
		delete(logs, newest)
		w, err := appendlog.Open(ctx, m.fsys, m.opt.Dir, newest, m.logOptions())
		if err == nil {
			fl.cur = newest
			delete(fl.others, newest)
			for l := range logs {
				m.noteOwnLog(ctx, l)
			}
			return w, nil
		}
		if !gone(err) {
			return nil, err
		}
		// Listed but removed since (a stale listing): try the next one.
	}
	if m.st.gen == 1 {
		w, err := appendlog.Open(ctx, m.fsys, m.opt.Dir, m.opt.Host, m.logOptions())
		if errors.Is(err, fs.ErrNotExist) {
			// Only a missing log is created: any other error (damage,
			// ESTALE) is reported as it is, never hidden behind EEXIST.
			w, err = appendlog.Create(ctx, m.fsys, m.opt.Dir, m.opt.Host, m.logOptions())
		}
		if err != nil {
			return nil, err
		}
		fl.cur = m.opt.Host
		return w, nil
	}
	name, w, err := m.createEpoch(ctx)
	if err != nil {
		return nil, err
	}
	fl.cur = name
	return w, nil
}

// createEpoch creates a new log for this host. Its epoch is at least the
// sequence number applied, and above every epoch of this host that this
// Mailbox knows of (listed, referenced, or its own). A name that exists
// is a log this Mailbox did not know (an earlier process's): it is noted
// (to be removed once safe) and the next epoch tried.
func (m *Mailbox) createEpoch(ctx context.Context) (string, *appendlog.Writer, error) {
	fl := m.fieldLogs()
	e := m.st.applied
	bump := func(l string) {
		if x, ok := ownEpoch(m.opt.Host, l); ok && x >= e {
			e = x + 1
		}
	}
	bump(fl.cur)
	for l := range fl.others {
		bump(l)
	}
	for l := range m.st.logRefs {
		bump(l)
	}
	for range 16 {
		name := epochName(m.opt.Host, e)
		w, err := appendlog.Create(ctx, m.fsys, m.opt.Dir, name, m.logOptions())
		if err == nil {
			return name, w, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", nil, err
		}
		m.noteOwnLog(ctx, name)
		e++
	}
	return "", nil, fmt.Errorf("engine: create a field log epoch: every name up to %s exists", epochName(m.opt.Host, e))
}

// noteOwnLog records a log of this host other than the current one.
func (m *Mailbox) noteOwnLog(ctx context.Context, l string) {
	fl := m.fieldLogs()
	if l == fl.cur || fl.others[l] != nil {
		return
	}
	o := &ownLog{}
	if r, err := m.reader(ctx, l); err == nil {
		o.records = r.Info().Records
	}
	fl.others[l] = o
}

// stamp records seq, a commit of this Mailbox just acknowledged, as
// since() of every other log that has none yet (condition 1 above).
func (m *Mailbox) stamp(seq uint64) {
	if m.flog == nil {
		return
	}
	for l, o := range m.flog.others {
		if e, _ := ownEpoch(m.opt.Host, l); o.since == 0 && seq > e {
			o.since = seq
		}
	}
}

// DefaultFieldCacheBytes is the memory bound of a Mailbox's cache of field
// log blocks when Options.FieldCacheBytes is 0: 8 MiB, 128 blocks of 64 KiB.
const DefaultFieldCacheBytes = 8 << 20

// newFieldCache returns the cache of field log blocks of Options
// FieldCacheBytes n >= 0.
func newFieldCache(n int64) (*readahead.Cache, error) {
	if n == 0 {
		n = DefaultFieldCacheBytes
	}
	c, err := readahead.New(readahead.Options{BlockSize: min(readahead.DefaultBlockSize, n), MemoryBytes: n})
	if err != nil {
		return nil, fmt.Errorf("engine: FieldCacheBytes %d: %w", n, err)
	}
	return c, nil
}

// FieldCacheStats returns the counters of the cache through which this
// Mailbox reads field logs (Options.FieldCacheBytes): hits, misses, READs.
// All zero when there is no cache.
func (m *Mailbox) FieldCacheStats() readahead.Stats {
	m.mu.Lock()
	c := m.fcache
	m.mu.Unlock()
	if c == nil {
		return readahead.Stats{}
	}
	return c.Stats()
}

// reader returns a Reader of the log named l, opened once per Mailbox.
func (m *Mailbox) reader(ctx context.Context, l string) (*appendlog.Reader, error) {
	if r := m.logs[l]; r != nil {
		return r, nil
	}
	r, err := appendlog.OpenReader(ctx, m.fsys, m.opt.Dir, l, appendlog.Options{Cache: m.fcache})
	if err != nil {
		return nil, fmt.Errorf("engine: open field log %s: %w", l, err)
	}
	if m.logs == nil {
		m.logs = map[string]*appendlog.Reader{}
	}
	m.logs[l] = r
	return r, nil
}

func (m *Mailbox) dropReader(l string) {
	if r := m.logs[l]; r != nil {
		_ = r.Close()
		delete(m.logs, l)
	}
}

// fieldValue reads the value f references (Mailbox.FieldValue). A log that
// is gone was removed by its host after relocating its values:
// ErrFieldMoved.
func (m *Mailbox) fieldValue(ctx context.Context, f FieldRef) ([]byte, error) {
	if m.fields != nil && m.flog != nil && f.Host == m.flog.cur {
		rec, err := m.fields.Read(ctx, appendlog.Ref(f.Ref))
		return rec.Payload, err
	}
	_, cached := m.logs[f.Host]
	r, err := m.reader(ctx, f.Host)
	if err == nil {
		var rec appendlog.Record
		// ReadBody: the value without its next word (field values are
		// never chained), so a cached frame costs no I/O.
		rec, err = r.ReadBody(ctx, appendlog.Ref(f.Ref))
		if err != nil && !gone(err) {
			// The log may have grown since this reader last looked.
			if _, rerr := r.Refresh(ctx); rerr == nil {
				rec, err = r.ReadBody(ctx, appendlog.Ref(f.Ref))
			} else if gone(rerr) {
				err = rerr
			}
		}
		if err != nil && !gone(err) && cached {
			// An open file's header may come from this host's page cache
			// (N2): open the log again (close-to-open) and read once more.
			m.dropReader(f.Host)
			if r, err = m.reader(ctx, f.Host); err == nil {
				rec, err = r.ReadBody(ctx, appendlog.Ref(f.Ref))
			}
		}
		if err == nil {
			return rec.Payload, nil
		}
	}
	if gone(err) {
		m.dropReader(f.Host)
		return nil, fmt.Errorf("engine: field %q at %s:%d: %w (%w)", f.Name, f.Host, f.Ref, ErrFieldMoved, err)
	}
	return nil, err
}

// CompactFields rewrites this host's logs of cached fields now, if any of
// their records is garbage (no longer referenced by the mailbox: its
// message expunged, its field replaced) or the mailbox still references
// an older log of this host: the values still referenced are copied into
// a new log, and relocation records in the total order make every host's
// references point there. It also removes this host's old logs that are
// safe to remove: those that no state at or after the newest snapshot
// references (a reference taken before then reads ErrFieldMoved; see
// FieldValue). It reports whether it rewrote. Commits run it when
// Options.FieldCompactRatio of the records is garbage. No other host
// waits: it touches only this host's logs, and its records are committed
// like any other.
func (m *Mailbox) CompactFields(ctx context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	return m.rewriteFields(ctx, true)
}

// fieldCompactDue is called after each acknowledged commit: it stamps the
// commit on this host's other logs (see stamp) and reports whether the
// garbage threshold is reached (Options.FieldCompactRatio of the records
// counted by garbage, and at least Options.FieldCompactMinRecords of
// them) or a snapshot newer than the last removal attempt may allow
// removing an old log.
func (m *Mailbox) fieldCompactDue() bool {
	if m.flog == nil || m.fields == nil {
		return false
	}
	m.stamp(m.st.applied)
	if m.opt.FieldCompactRatio < 0 {
		return false
	}
	if m.flog.failed && m.flog.failedBase == m.st.base {
		return false
	}
	return m.removalDue() || m.thresholdReached()
}

func (m *Mailbox) removalDue() bool {
	for _, o := range m.flog.others {
		if o.since > 0 && o.since <= m.st.base && m.flog.tried != m.st.base {
			return true
		}
	}
	return false
}

// garbage counts the records of the current log and of the other logs
// that the state still references and that no rewrite of this Mailbox
// relocated yet, and how many of them the state references. A log nothing
// references needs no rewrite, only removal (a log left by a process that
// stopped between its rewrite and the removal is not copied again).
func (m *Mailbox) garbage() (total, live uint64) {
	total, live = m.fields.Info().Records, uint64(m.st.logRefs[m.flog.cur])
	for l, o := range m.flog.others {
		if !o.relocated && m.st.logRefs[l] > 0 {
			total += o.records
			live += uint64(m.st.logRefs[l])
		}
	}
	return total, min(live, total)
}

func (m *Mailbox) thresholdReached() bool {
	total, live := m.garbage()
	return m.opt.FieldCompactRatio >= 0 && total >= uint64(m.opt.FieldCompactMinRecords) &&
		float64(total-live) >= m.opt.FieldCompactRatio*float64(total)
}

// compactFields is the automatic field compaction (after a commit).
func (m *Mailbox) compactFields(ctx context.Context) (bool, error) {
	done, err := m.rewriteFields(ctx, false)
	if m.flog != nil {
		m.flog.failed, m.flog.failedBase = err != nil, m.st.base
	}
	return done, err
}

// rewriteFields removes the old logs that are safe to remove, then
// rewrites if forced and there is garbage, or if the threshold is
// reached, or if an old log relocated once is still referenced by the
// snapshot (records installed before the relocation that it could not
// name) and so cannot be removed.
func (m *Mailbox) rewriteFields(ctx context.Context, force bool) (bool, error) {
	if err := m.refresh(ctx); err != nil {
		return false, err
	}
	if m.fields == nil {
		if !force {
			return false, nil
		}
		logs, _, err := m.listOwnLogs()
		if err != nil || len(logs) == 0 {
			return false, err // this host never wrote a field
		}
		w, err := m.openFieldLog(ctx)
		if err != nil {
			return false, fmt.Errorf("engine: open field log: %w", err)
		}
		m.fields = w
	}
	if err := m.removeLogs(ctx); err != nil {
		return false, err
	}
	total, live := m.garbage()
	due := force && total > live || !force && m.thresholdReached()
	for l, o := range m.flog.others {
		if m.st.logRefs[l] > 0 && (force || o.relocated && o.since > 0 && o.since <= m.st.base) {
			due = true
		}
	}
	if !due {
		return false, nil
	}
	return m.rewrite(ctx)
}

// removeLogs removes the other logs of this host that conditions 1 and 2
// (top of this file) allow removing.
func (m *Mailbox) removeLogs(ctx context.Context) error {
	fl, base := m.flog, m.st.base
	if base == 0 {
		return nil
	}
	fl.tried = base
	var doomed []string
	for l, o := range fl.others {
		if o.since > 0 && o.since <= base && !m.st.baseLogs[l] {
			doomed = append(doomed, l)
		}
	}
	if len(doomed) == 0 {
		return nil
	}
	// The state at base is the snapshot index.<gen>'s only once that is
	// installed (a compactor may have stopped after its seal). A name that
	// exists was installed whole; if it was removed since, a newer
	// snapshot holds no more references to these logs than it did.
	if _, err := m.fsys.Stat(m.path(indexName(m.st.gen))); err != nil {
		if gone(err) {
			return nil // not installed (yet): try at the next snapshot
		}
		return fmt.Errorf("engine: stat %s: %w", indexName(m.st.gen), err)
	}
	sort.Strings(doomed)
	for _, l := range doomed {
		m.dropReader(l)
		if err := m.fsys.Remove(m.path(appendlog.LogName(l))); err != nil && !gone(err) {
			return fmt.Errorf("engine: remove field log %s: %w", l, err)
		}
		delete(fl.others, l)
	}
	// Logs an earlier process of this host left that this Mailbox did not
	// know yet are removed at a later snapshot.
	logs, _, err := m.listOwnLogs()
	if err != nil {
		return err
	}
	for l := range logs {
		m.noteOwnLog(ctx, l)
	}
	return nil
}

// copyGroupBytes bounds the values one appendlog Commit of a rewrite
// copies (appendlog.MaxGroupSize is the hard limit).
const copyGroupBytes = 8 << 20

// rewrite copies every value of this host's logs that the state
// references into a new epoch, makes it the current log, and commits the
// relocations.
func (m *Mailbox) rewrite(ctx context.Context) (bool, error) {
	fl := m.flog
	refs := map[string][]int64{}
	for _, msg := range m.st.msgs {
		for _, f := range msg.fields {
			if _, ok := ownEpoch(m.opt.Host, f.Host); ok {
				refs[f.Host] = append(refs[f.Host], f.Ref)
			}
		}
	}
	sources := make([]string, 0, len(refs))
	for l, rs := range refs {
		sources = append(sources, l)
		sort.Slice(rs, func(i, j int) bool { return rs[i] < rs[j] })
		refs[l] = compactRefs(rs)
	}
	sort.Strings(sources)
	name, w, err := m.createEpoch(ctx)
	if err != nil {
		return false, err
	}
	failed := func(err error) (bool, error) {
		// The new log is an orphan no record references: removed once safe.
		fl.others[name] = &ownLog{records: w.Info().Records}
		_ = w.Close()
		return false, fmt.Errorf("engine: field compaction: %w", err)
	}
	moves := map[string][]refMove{}
	pending := int64(0)
	for _, src := range sources {
		for _, ref := range refs[src] {
			val, err := m.fieldValue(ctx, FieldRef{Host: src, Ref: ref})
			if err != nil {
				return failed(err)
			}
			size := appendlog.FrameSize(len(val))
			if pending > 0 && pending+size > copyGroupBytes {
				if err := w.Commit(ctx); err != nil {
					return failed(err)
				}
				pending = 0
			}
			nref, err := w.Append(fieldRecordType, val)
			if err != nil {
				return failed(err)
			}
			pending += size
			moves[src] = append(moves[src], refMove{old: ref, new: int64(nref)})
		}
	}
	if err := w.Commit(ctx); err != nil {
		return failed(err)
	}
	// Switch: new values go to the new log from now on. The old one is
	// never written again; it is removed once a snapshot at or after a
	// commit acknowledged from now on no longer references it.
	old := fl.cur
	fl.others[old] = &ownLog{records: m.fields.Info().Records}
	_ = m.fields.Close()
	m.fields, fl.cur = w, name
	for _, src := range sources {
		m.noteOwnLog(ctx, src) // known, so that it is removed once safe
		if o := fl.others[src]; o != nil {
			o.relocated = true
		}
	}
	fl.others[old].relocated = true
	var last uint64
	for _, src := range sources {
		for _, chunk := range relocationChunks(src, name, moves[src]) {
			res, err := m.commitOps(ctx, []op{{kind: opRelocate, from: src, to: name, moves: chunk}}, Key{})
			if err != nil {
				// The values stay where they are: references not relocated
				// keep their old log alive, and the next rewrite moves them.
				return true, fmt.Errorf("engine: field compaction: relocate %s: %w", src, err)
			}
			last = res.Seq
		}
	}
	if last == 0 {
		// Nothing was referenced: an empty record still gives the old logs
		// their since() without waiting for the next commit.
		res, err := m.commitOps(ctx, nil, Key{})
		if err != nil {
			return true, err
		}
		last = res.Seq
	}
	m.stamp(last)
	return true, nil
}

// compactRefs removes duplicates from sorted refs (two messages never
// share a value, but a damaged state must not make a rewrite fail).
func compactRefs(rs []int64) []int64 {
	out := rs[:0]
	for i, r := range rs {
		if i == 0 || r != rs[i-1] {
			out = append(out, r)
		}
	}
	return out
}

// relocateBudget is the encoded size a relocation record may reach:
// MaxRecordBytes (tests lower it to get several records from few moves).
var relocateBudget = MaxRecordBytes

// relocationChunks splits moves into the moves of relocation records
// that each encode to at most relocateBudget bytes.
func relocationChunks(from, to string, moves []refMove) [][]refMove {
	// record header (magic, gen, seq, key, op count), op kind, the two
	// names, the move count, the checksum
	fixed := 4 + 4 + 8 + 8 + 8 + 2 + 1 + 1 + len(from) + 1 + len(to) + 2 + 8
	var chunks [][]refMove
	for len(moves) > 0 {
		size, po, pn, n := fixed, int64(0), int64(0), 0
		for n < len(moves) && n < 0xffff {
			mv := moves[n]
			add := uvarintLen(uint64(mv.old-po)/refAlign) + uvarintLen(uint64(mv.new-pn)/refAlign)
			if n > 0 && base64.RawURLEncoding.EncodedLen(size+add) > relocateBudget {
				break
			}
			size, po, pn, n = size+add, mv.old, mv.new, n+1
		}
		chunks = append(chunks, moves[:n:n])
		moves = moves[n:]
	}
	return chunks
}

func uvarintLen(v uint64) int { return len(binary.AppendUvarint(nil, v)) }
