package engine

import (
	"context"
	"errors"
	"fmt"
)

// Tx collects changes to commit together: one record, one place in the
// total order, one MODSEQ. A Tx is used by one goroutine.
type Tx struct {
	m      *Mailbox
	key    Key
	ops    []op
	values []pendingField
}

type pendingField struct {
	op    int // index in ops
	field int // index in ops[op].fields
	value []byte
}

// NewMessage describes a message to append.
type NewMessage struct {
	Flags    Flags
	Keywords []string
	// Fields are cached fields (envelope, sizes, the file's base name...),
	// stored in this host's append-only log; the index holds references.
	Fields map[string][]byte
}

// Begin starts a transaction. Its Key identifies it across failures.
// It never waits for a commit in progress.
func (m *Mailbox) Begin() *Tx {
	return &Tx{m: m, key: Key{Owner: m.owner, N: m.nextN.Add(1)}}
}

// Key returns the transaction's idempotency key: after a Commit that
// returned an error, Mailbox.Committed(Key) says whether it happened.
func (t *Tx) Key() Key { return t.key }

// Append appends a message; its UID is assigned at commit, above every
// UID committed before it in the total order.
func (t *Tx) Append(msg NewMessage) {
	o := op{kind: opAppend, flags: msg.Flags, keywords: sortedUnique(msg.Keywords)}
	for _, name := range sortedKeys(msg.Fields) {
		t.values = append(t.values, pendingField{op: len(t.ops), field: len(o.fields), value: msg.Fields[name]})
		o.fields = append(o.fields, FieldRef{Name: name})
	}
	t.ops = append(t.ops, o)
}

// SetFlags adds and removes system flags of a message.
func (t *Tx) SetFlags(uid uint32, add, remove Flags) {
	t.ops = append(t.ops, op{kind: opFlags, uid: uid, flags: add, remove: remove})
}

// SetKeywords adds and removes keywords of a message.
func (t *Tx) SetKeywords(uid uint32, add, remove []string) {
	t.ops = append(t.ops, op{kind: opFlags, uid: uid, keywords: sortedUnique(add), removeKw: sortedUnique(remove)})
}

// Expunge removes a message.
func (t *Tx) Expunge(uid uint32) { t.ops = append(t.ops, op{kind: opExpunge, uid: uid}) }

// SetField sets (or replaces) a cached field of a message.
func (t *Tx) SetField(uid uint32, name string, value []byte) {
	t.values = append(t.values, pendingField{op: len(t.ops), field: 0, value: value})
	t.ops = append(t.ops, op{kind: opField, uid: uid, fields: []FieldRef{{Name: name}}})
}

// Commit makes the transaction durable and visible to every host, and
// returns its place in the total order. Changes to messages that another
// commit expunged first are no-ops. If Commit returns an error, the
// transaction happened entirely or not at all: Mailbox.Committed tells.
//
// Group commit: concurrent Commit calls on one Mailbox share the work
// that makes them durable. The first caller leads and commits every
// transaction queued by then; the others find theirs done. Each transaction keeps its own
// record and sequence number (its own MODSEQ); the group shares one sync
// of the field log, one directory sync and one publish WRITE.
func (t *Tx) Commit(ctx context.Context) (Result, error) {
	res, errs := t.m.CommitGroup(ctx, t)
	return res[0], errs[0]
}

// CommitGroup commits several transactions together, as if each were
// committed by its own concurrent Commit: each keeps its own record,
// place in the order and MODSEQ, and fails or succeeds on its own
// (results[i] and errs[i] are txs[i]'s); the group shares one sync of the
// field log, one directory sync and one publish WRITE. Transactions of
// other goroutines' Commit calls waiting at the same time join the group.
func (m *Mailbox) CommitGroup(ctx context.Context, txs ...*Tx) ([]Result, []error) {
	results, errs := make([]Result, len(txs)), make([]error, len(txs))
	reqs := make([]*commitReq, 0, len(txs))
	for i, t := range txs {
		if t.m != m {
			errs[i] = errors.New("engine: CommitGroup: a transaction of another Mailbox")
			continue
		}
		reqs = append(reqs, &commitReq{ctx: ctx, ops: t.ops, key: t.key, values: t.values})
	}
	m.qmu.Lock()
	opener := m.opt.GroupWindow > 0 && len(reqs) > 0 && m.window == nil
	wait := m.window
	if opener {
		// The first to queue opens the group-commit window: the others
		// queue behind it instead of leading at once.
		m.window = make(chan struct{})
	}
	m.queue = append(m.queue, reqs...)
	m.qmu.Unlock()
	if opener {
		m.opt.Sleep(m.opt.GroupWindow)
		m.qmu.Lock()
		close(m.window)
		m.window = nil
		m.qmu.Unlock()
	} else if wait != nil {
		<-wait
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(reqs) > 0 && !reqs[len(reqs)-1].done {
		// Nobody took our requests yet (a leader takes the whole queue):
		// we lead.
		m.leadGroup(ctx)
	}
	j := 0
	for i, t := range txs {
		if t.m != m {
			continue
		}
		r := reqs[j]
		j++
		results[i], errs[i] = r.res, r.err
		if r.err == nil {
			t.values = nil
		}
	}
	return results, errs
}

// leadGroup commits every queued transaction as one group. Called with
// m.mu held; the requests of the group are finished when it returns.
func (m *Mailbox) leadGroup(ctx context.Context) {
	m.qmu.Lock()
	group := m.queue
	m.queue = nil
	m.qmu.Unlock()
	if m.closed {
		for _, r := range group {
			r.finish(Result{}, ErrClosed)
		}
		return
	}
	// The shared work must not stop because the leader's caller gave up:
	// each request's own context is checked before each of its tries.
	shared := context.WithoutCancel(ctx)
	if err := m.storeFields(shared, group); err != nil {
		for _, r := range group {
			if len(r.values) > 0 {
				r.finish(Result{}, err)
			}
		}
	}
	m.commitRecords(shared, group)
	committed := false
	for _, r := range group {
		committed = committed || r.err == nil
	}
	if committed && m.compactDue() {
		// Best effort, never awaited: a claim held elsewhere skips it, and
		// a failure leaves the log as it was (the commits stand).
		_, _ = m.compact(shared)
	}
	if committed && m.fieldCompactDue() {
		_, _ = m.compactFields(shared) // best effort, like the compaction above
	}
}

// storeFields appends the field values of the group's transactions to
// this host's log and makes them durable (one sync for all), before the
// records that refer to them are installed.
func (m *Mailbox) storeFields(ctx context.Context, group []*commitReq) error {
	n := 0
	for _, r := range group {
		if !r.done && r.ctx.Err() == nil {
			n += len(r.values)
		}
	}
	if n == 0 {
		return nil
	}
	if m.fields == nil {
		// The current epoch's log (fieldlog.go).
		w, err := m.openFieldLog(ctx)
		if err != nil {
			return fmt.Errorf("engine: open field log: %w", err)
		}
		m.fields = w
	}
	for _, r := range group {
		if r.done || r.ctx.Err() != nil {
			continue
		}
		for _, pf := range r.values {
			ref, err := m.fields.Append(fieldRecordType, pf.value)
			if err != nil {
				return fmt.Errorf("engine: store field: %w", err)
			}
			f := &r.ops[pf.op].fields[pf.field]
			f.Host, f.Ref = m.flog.cur, int64(ref)
		}
	}
	if err := m.fields.Commit(ctx); err != nil {
		return fmt.Errorf("engine: store fields: %w", err)
	}
	return nil
}

const fieldRecordType = 1

// FieldValue reads a cached field's value from the log its reference
// names. A host's field compaction (CompactFields) copies the values
// still referenced into a new log and relocates the references, and once
// a snapshot holds no reference to the old log, removes it: a reference
// taken from a state before the relocation (a View not synced since, a
// FieldRef kept by the caller) then gives an error matching
// ErrFieldMoved. Sync (Mailbox.Sync or View.Sync) and read the message's
// field reference again.
func (m *Mailbox) FieldValue(ctx context.Context, f FieldRef) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.fieldValue(ctx, f)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sortedUnique(keys)
}
