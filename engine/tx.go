package engine

import (
	"context"
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
func (m *Mailbox) Begin() *Tx {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextN++
	return &Tx{m: m, key: Key{Owner: m.owner, N: m.nextN}}
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
func (t *Tx) Commit(ctx context.Context) (Result, error) {
	m := t.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Result{}, ErrClosed
	}
	if len(t.values) > 0 {
		if err := m.storeFields(ctx, t); err != nil {
			return Result{}, err
		}
	}
	res, err := m.commitOps(ctx, t.ops, t.key)
	if err == nil && m.compactDue() {
		// Best effort, never awaited: a claim held elsewhere skips it, and
		// a failure leaves the log as it was (the commit stands).
		_, _ = m.compact(ctx)
	}
	if err == nil && m.fieldCompactDue() {
		_, _ = m.compactFields(ctx) // best effort, like the compaction above
	}
	return res, err
}

// storeFields appends the transaction's field values to this host's log
// and makes them durable (one sync for all), before the record that
// refers to them is installed.
func (m *Mailbox) storeFields(ctx context.Context, t *Tx) error {
	if m.fields == nil {
		// The current epoch's log (fieldlog.go).
		w, err := m.openFieldLog(ctx)
		if err != nil {
			return fmt.Errorf("engine: open field log: %w", err)
		}
		m.fields = w
	}
	for _, pf := range t.values {
		ref, err := m.fields.Append(fieldRecordType, pf.value)
		if err != nil {
			return fmt.Errorf("engine: store field: %w", err)
		}
		f := &t.ops[pf.op].fields[pf.field]
		f.Host, f.Ref = m.flog.cur, int64(ref)
	}
	if err := m.fields.Commit(ctx); err != nil {
		return fmt.Errorf("engine: store fields: %w", err)
	}
	t.values = nil
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
