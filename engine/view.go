package engine

import (
	"context"
	"sort"
)

// View is one session's view of the mailbox (an IMAP selected state): its
// message sequence numbers 1..Len() stay stable until Sync, which moves
// the view to the newest committed state and reports what changed. A View
// is used by one goroutine.
type View struct {
	m      *Mailbox
	msgs   []*Message // by UID; index i is sequence number i+1
	header Header
}

// View returns a view at the Mailbox's current state.
func (m *Mailbox) View() *View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &View{m: m, msgs: append([]*Message(nil), m.st.msgs...), header: m.st.header}
}

// Changes is what a Sync found.
type Changes struct {
	// Expunged are the sequence numbers (in the old numbering) of expunged
	// messages, in descending order: the order IMAP EXPUNGE responses
	// need so that each number is valid when it is sent.
	Expunged []int
	// Appended are the UIDs of new messages, ascending.
	Appended []uint32
	// Changed are messages whose flags, keywords or fields changed (new
	// MODSEQ), in the new numbering.
	Changed []Message
	// HighestModSeq after the sync.
	HighestModSeq uint64
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Expunged) == 0 && len(c.Appended) == 0 && len(c.Changed) == 0
}

// Sync reads every change committed anywhere since the view's last sync
// (one RPC when there is none), moves the view forward and reports the
// difference.
func (v *View) Sync(ctx context.Context) (Changes, error) {
	m := v.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Changes{}, ErrClosed
	}
	if err := m.refresh(ctx); err != nil {
		return Changes{}, err
	}
	newer := m.st.msgs
	var ch Changes
	moved := false // a message changed without a new ModSeq (relocated field references)
	i, j := 0, 0
	for i < len(v.msgs) || j < len(newer) {
		switch {
		case j == len(newer) || (i < len(v.msgs) && v.msgs[i].UID < newer[j].UID):
			ch.Expunged = append(ch.Expunged, i+1)
			i++
		case i == len(v.msgs) || newer[j].UID < v.msgs[i].UID:
			ch.Appended = append(ch.Appended, newer[j].UID)
			j++
		default:
			if newer[j] != v.msgs[i] && newer[j].ModSeq != v.msgs[i].ModSeq {
				ch.Changed = append(ch.Changed, *newer[j])
			}
			moved = moved || newer[j] != v.msgs[i]
			i, j = i+1, j+1
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ch.Expunged)))
	if !ch.Empty() || moved || len(v.msgs) != len(newer) {
		v.msgs = append(v.msgs[:0:0], newer...)
	}
	v.header = m.st.header
	ch.HighestModSeq = v.header.HighestModSeq
	return ch, nil
}

// Len is the number of messages in the view.
func (v *View) Len() int { return len(v.msgs) }

// Header is the mailbox header as of the view's last sync.
func (v *View) Header() Header { return v.header }

// BySeq returns the message with sequence number seq (1-based).
func (v *View) BySeq(seq int) (Message, bool) {
	if seq < 1 || seq > len(v.msgs) {
		return Message{}, false
	}
	return *v.msgs[seq-1], true
}

// ByUID returns the message with that UID and its sequence number.
func (v *View) ByUID(uid uint32) (Message, int, bool) {
	i := sort.Search(len(v.msgs), func(i int) bool { return v.msgs[i].UID >= uid })
	if i < len(v.msgs) && v.msgs[i].UID == uid {
		return *v.msgs[i], i + 1, true
	}
	return Message{}, 0, false
}

// All calls fn for every message of the view in sequence order until fn
// returns false.
func (v *View) All(fn func(seq int, msg Message) bool) {
	for i, msg := range v.msgs {
		if !fn(i+1, *msg) {
			return
		}
	}
}
