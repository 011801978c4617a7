package engine

import (
	"fmt"
	"sort"
)

// Flags are the IMAP system flags of a message.
type Flags uint16

// System flags.
const (
	Seen Flags = 1 << iota
	Answered
	Flagged
	Deleted
	Draft
)

// Header is the mailbox header.
type Header struct {
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	// IndexID identifies this mailbox's index for its whole life (the
	// seed's indexid): a different id means a different mailbox.
	IndexID uint64
}

// Message is one message as the index holds it.
type Message struct {
	UID      uint32
	Flags    Flags
	Keywords []string // sorted, each name once
	// ModSeq is the sequence number of the last commit that changed the
	// message: the total order's position (RFC 7162 MODSEQ).
	ModSeq uint64
	fields []FieldRef
}

// Field returns the reference of a cached field, if set.
func (m *Message) Field(name string) (FieldRef, bool) {
	for _, f := range m.fields {
		if f.Name == name {
			return f, true
		}
	}
	return FieldRef{}, false
}

func (m *Message) clone() *Message {
	c := *m
	c.Keywords = append([]string(nil), m.Keywords...)
	c.fields = append([]FieldRef(nil), m.fields...)
	return &c
}

// keyWindow is how many keys per owner the state remembers for Committed.
const keyWindow = 256

// state is the mailbox as of a position in the total order. apply is
// deterministic: every host that applies the same records in the same
// order holds the same state (invariant I3).
type state struct {
	header  Header
	created bool
	msgs    []*Message // sorted by UID
	applied uint64     // last applied sequence number
	gen     uint32     // generation of the next record
	base    uint64     // seq of the seal that opened gen (0 for gen 1)
	tail    uint64     // id of gen's tail, named by that seal (0 for gen 1)
	keys    map[uint64][]uint64
	// logRefs counts the field references per log name (derived from
	// msgs, kept by apply); baseLogs is the set of logs the state at base
	// (the snapshot index.<gen>) references. Neither is in the digest or
	// the snapshot: both follow from the messages.
	logRefs  map[string]int
	baseLogs map[string]bool
}

func newState() *state {
	return &state{gen: 1, keys: map[uint64][]uint64{}, logRefs: map[string]int{}, baseLogs: map[string]bool{}}
}

// countRefs computes logRefs from the messages, and baseLogs from it: for
// a state that is exactly a snapshot's.
func (s *state) countRefs() {
	s.logRefs = map[string]int{}
	for _, m := range s.msgs {
		for _, f := range m.fields {
			s.logRefs[f.Host]++
		}
	}
	s.baseLogs = s.logSet()
}

func (s *state) logSet() map[string]bool {
	set := make(map[string]bool, len(s.logRefs))
	for l := range s.logRefs {
		set[l] = true
	}
	return set
}

func (s *state) addRef(log string, d int) {
	if n := s.logRefs[log] + d; n > 0 {
		s.logRefs[log] = n
	} else {
		delete(s.logRefs, log)
	}
}

func (s *state) find(uid uint32) (int, bool) {
	i := sort.Search(len(s.msgs), func(i int) bool { return s.msgs[i].UID >= uid })
	return i, i < len(s.msgs) && s.msgs[i].UID == uid
}

// clone copies the state; messages are copied on write by apply.
func (s *state) clone() *state {
	c := *s
	c.msgs = append([]*Message(nil), s.msgs...)
	c.keys = make(map[uint64][]uint64, len(s.keys))
	for k, v := range s.keys {
		c.keys[k] = v
	}
	c.logRefs = make(map[string]int, len(s.logRefs))
	for k, v := range s.logRefs {
		c.logRefs[k] = v
	}
	c.baseLogs = make(map[string]bool, len(s.baseLogs))
	for k, v := range s.baseLogs {
		c.baseLogs[k] = v
	}
	return &c
}

// change is what one record did, for views.
type change struct {
	seq      uint64
	appended []uint32
	expunged []uint32
	changed  []uint32
}

// apply applies record r at seq r.seq. Ops on messages that do not exist
// (expunged by an earlier record) are no-ops, so every host reaches the
// same state whatever it committed against.
func (s *state) apply(r *record) (change, error) {
	if r.seq != s.applied+1 {
		return change{}, fmt.Errorf("engine: apply: record %d after %d", r.seq, s.applied)
	}
	ch := change{seq: r.seq}
	// Expunges are collected and the message slice is rebuilt once per
	// record: removing one by one would cost O(messages) per expunge.
	var gone map[uint32]bool
	find := func(uid uint32) (int, bool) {
		i, ok := s.find(uid)
		return i, ok && !gone[uid]
	}
	for _, o := range r.ops {
		switch o.kind {
		case opCreate:
			if !s.created {
				s.created = true
				s.header.UIDValidity, s.header.IndexID, s.header.UIDNext = o.uidValidity, o.indexID, 1
			}
		case opAppend:
			uid := s.header.UIDNext
			s.header.UIDNext++
			m := &Message{UID: uid, Flags: o.flags, Keywords: sortedUnique(o.keywords), ModSeq: r.seq,
				fields: append([]FieldRef(nil), o.fields...)}
			for _, f := range m.fields {
				s.addRef(f.Host, 1)
			}
			s.msgs = append(s.msgs, m) // UIDs only grow: stays sorted
			ch.appended = append(ch.appended, uid)
		case opFlags, opField:
			i, ok := find(o.uid)
			if !ok {
				continue
			}
			m := s.msgs[i].clone()
			if o.kind == opFlags {
				m.Flags = (m.Flags | o.flags) &^ o.remove
				kw := append(m.Keywords, o.keywords...)
				m.Keywords = without(sortedUnique(kw), o.removeKw)
			} else {
				if old, ok := m.Field(o.fields[0].Name); ok {
					s.addRef(old.Host, -1)
				}
				s.addRef(o.fields[0].Host, 1)
				m.fields = setField(m.fields, o.fields[0])
			}
			m.ModSeq = r.seq
			s.msgs[i] = m
			ch.changed = append(ch.changed, o.uid)
		case opExpunge:
			if _, ok := find(o.uid); !ok {
				continue
			}
			if gone == nil {
				gone = map[uint32]bool{}
			}
			gone[o.uid] = true
			ch.expunged = append(ch.expunged, o.uid)
		case opSeal:
			s.gen, s.base, s.tail = o.nextGen, r.seq, o.tail
		case opRelocate:
			// Not a change a client sees: the values are the same, so
			// neither ModSeq nor the view's changes move.
			s.relocate(o)
		}
	}
	if len(gone) > 0 {
		kept := make([]*Message, 0, len(s.msgs)-len(gone))
		for _, m := range s.msgs {
			if !gone[m.UID] {
				kept = append(kept, m)
				continue
			}
			for _, f := range m.fields {
				s.addRef(f.Host, -1)
			}
		}
		s.msgs = kept
	}
	if _, seal := r.isSeal(); seal {
		// The state at a seal is the next snapshot's.
		s.baseLogs = s.logSet()
	}
	s.applied = r.seq
	s.header.HighestModSeq = r.seq
	if r.key.Owner != 0 {
		ks := append(s.keys[r.key.Owner], r.key.N)
		if len(ks) > keyWindow {
			ks = ks[len(ks)-keyWindow:]
		}
		s.keys[r.key.Owner] = ks
	}
	return ch, nil
}

// relocate makes every field reference to o.from at an old ref of o.moves
// name o.to at the move's new ref; references not in the moves stay.
// Each move copies a value (fieldlog.go), so this preserves every value
// whichever message holds the reference and whenever it is applied.
func (s *state) relocate(o op) {
	if s.logRefs[o.from] == 0 || len(o.moves) == 0 {
		return
	}
	lo, hi := o.moves[0].old, o.moves[len(o.moves)-1].old
	for i, m := range s.msgs {
		var c *Message
		for k, f := range m.fields {
			if f.Host != o.from || f.Ref < lo || f.Ref > hi {
				continue
			}
			j := sort.Search(len(o.moves), func(j int) bool { return o.moves[j].old >= f.Ref })
			if j == len(o.moves) || o.moves[j].old != f.Ref {
				continue
			}
			if c == nil {
				c = m.clone() // messages are shared with views: copy on write
				s.msgs[i] = c
			}
			c.fields[k] = FieldRef{Name: f.Name, Host: o.to, Ref: o.moves[j].new}
			s.addRef(o.from, -1)
			s.addRef(o.to, 1)
		}
	}
}

func without(ss, drop []string) []string {
	if len(drop) == 0 {
		return ss
	}
	out := ss[:0:0]
	for _, s := range ss {
		keep := true
		for _, d := range drop {
			keep = keep && s != d
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}

func setField(fs []FieldRef, f FieldRef) []FieldRef {
	for i := range fs {
		if fs[i].Name == f.Name {
			fs[i] = f
			return fs
		}
	}
	return append(fs, f)
}

// committed reports whether key is in the state: yes, no, or unknown
// (older than the window).
func (s *state) committed(k Key) (bool, error) {
	ks := s.keys[k.Owner]
	for _, n := range ks {
		if n == k.N {
			return true, nil
		}
	}
	if len(ks) == keyWindow && k.N < ks[0] {
		return false, ErrKeyUnknown
	}
	return false, nil
}
