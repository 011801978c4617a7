package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Result is what a commit did.
type Result struct {
	// Seq is the commit's position in the total order; it is the MODSEQ
	// of every message it changed.
	Seq uint64
	// UIDs are the UIDs given to the appended messages, in order.
	UIDs []uint32
}

// commitReq is one transaction to commit: alone (Open's create, a seal,
// Committed's empty record) or in a group of a host's concurrent
// Tx.Commit calls that share one directory sync and one publish.
type commitReq struct {
	ctx    context.Context
	ops    []op
	key    Key
	values []pendingField // field values to store before installing
	seal   bool           // ops is one opSeal, ending generation from
	from   uint32
	tries  int
	res    Result
	err    error
	done   bool
}

func (r *commitReq) finish(res Result, err error) {
	r.res, r.err, r.done = res, err, true
}

// installed is a request whose record this Mailbox installed and has not
// published yet.
type installed struct {
	req  *commitReq
	rec  *record
	uids []uint32 // the UIDs its appends get if it is applied next
}

// commitOps commits ops as one record under key, alone.
func (m *Mailbox) commitOps(ctx context.Context, ops []op, key Key) (Result, error) {
	req := &commitReq{ctx: ctx, ops: ops, key: key}
	m.commitRecords(ctx, []*commitReq{req})
	return req.res, req.err
}

// commitRecords installs each request as its own record, at the next
// free sequence numbers, in order: exclusive creation of the name
// t.<gen>.<seq> is the test-and-set. On EEXIST the winner's record is read
// and applied (ours is rebased: its effects are computed at apply time)
// and the next number is tried; nobody waits for anybody.
//
// Group commit: records this Mailbox won back to back are published
// together. One directory sync (when names are not durable at once) and
// one publish WRITE, of the highest slot, cover them all: the tail's size
// is what Sync reads, so publishing slot k publishes every slot below it.
// Before a foreign record is applied, the records installed below it are
// published and applied first, so the state always follows the order.
//
// A seal (a request of one opSeal) ends only the generation current when
// it was called: once that generation has ended otherwise, it fails with
// errDead instead of sealing the next one, whose tail its compactor did
// not create. A seal another compactor installed at the place ours was
// to take (it names that compactor's tail, so it is not byte for byte
// ours) ends the generation all the same: the request succeeds at it, the
// state stays exactly at the seal, and the caller goes on with the
// compaction of that generation.
//
// ctx bounds the shared work (publishing, reloading); each request's own
// context is checked before each of its tries.
func (m *Mailbox) commitRecords(ctx context.Context, reqs []*commitReq) {
	todo := make([]*commitReq, 0, len(reqs))
	for _, r := range reqs {
		if r.done {
			continue
		}
		r.seal, r.from = len(r.ops) == 1 && r.ops[0].kind == opSeal, m.st.gen
		todo = append(todo, r)
	}
	var pend []installed
	// flush publishes pend; the requests to try again go first.
	flush := func() bool {
		retry, ok := m.publishInstalled(ctx, pend)
		pend = nil
		todo = append(retry, todo...)
		return ok
	}
	for len(todo) > 0 || len(pend) > 0 {
		if len(todo) == 0 {
			flush() // zombies' requests come back into todo
			continue
		}
		req := todo[0]
		if err := req.ctx.Err(); err != nil {
			req.finish(Result{}, err)
			todo = todo[1:]
			continue
		}
		if req.tries++; req.tries > m.opt.MaxCommitTries {
			req.finish(Result{}, ErrContended)
			todo = todo[1:]
			continue
		}
		gen, seq := m.st.gen, m.st.applied+1+uint64(len(pend))
		if req.seal {
			if gen != req.from {
				req.finish(Result{}, errDead)
				todo = todo[1:]
				continue
			}
			req.ops = []op{{kind: opSeal, nextGen: gen + 1, tail: req.ops[0].tail}}
		}
		rec := &record{gen: gen, seq: seq, key: req.key, ops: req.ops}
		target, err := encodeRecord(rec)
		if err != nil {
			req.finish(Result{}, err)
			todo = todo[1:]
			continue
		}
		serr := m.fsys.Symlink(target, m.path(recordName(gen, seq)))
		if serr != nil && !errors.Is(serr, fs.ErrExist) {
			// The outcome is unknown (Committed tells the caller); the
			// next request tries this number again and learns it.
			req.finish(Result{}, fmt.Errorf("engine: install %s: %w", recordName(gen, seq), serr))
			todo = todo[1:]
			continue
		}
		if serr != nil {
			// EEXIST: somebody else's record, or ours whose reply was lost
			// and retransmitted (N14): read it back and compare.
			got, err := m.readRecord(gen, seq)
			if gone(err) {
				// Removed meanwhile: a compaction retired this generation.
				if flush() {
					m.reloadOrFail(ctx, todo)
				}
				todo = undone(todo)
				continue
			}
			if err != nil {
				req.finish(Result{}, err)
				todo = todo[1:]
				continue
			}
			if gotTarget, err := encodeRecord(got); err != nil || gotTarget != target {
				// A foreign record: what we installed below it goes first.
				if len(pend) > 0 && (!flush() || m.st.applied+1 != seq) {
					todo = undone(todo)
					continue
				}
				if err := m.applyForeign(ctx, got); err != nil {
					for _, r := range todo {
						r.finish(Result{}, err)
					}
					for _, p := range pend {
						// Installed, not published: the outcome is for
						// Committed to tell.
						p.req.finish(Result{}, err)
					}
					return
				}
				if _, seal := got.isSeal(); seal && req.seal && got.gen == req.from && m.st.gen == req.from+1 && m.st.applied == got.seq {
					// Another compactor's seal ended the generation ours
					// was to end, at the place ours was to take (its
					// claim was taken over, or it lost the lock to us):
					// the generation is sealed, and the state is exactly
					// at the seal, for the caller's snapshot. No catch-up.
					req.finish(Result{Seq: got.seq}, nil)
					todo = todo[1:]
					continue
				}
				// Lost a race: catch up on everything published since
				// (one GETATTR of the tail, then the records) instead of
				// losing one SYMLINK per record we are behind.
				if err := m.refresh(ctx); err != nil {
					for _, r := range todo {
						r.finish(Result{}, err)
					}
					return
				}
				continue
			}
		}
		uids := make([]uint32, 0, len(rec.ops))
		next := m.st.header.UIDNext
		for _, p := range pend {
			next += uint32(len(p.uids))
		}
		for _, o := range rec.ops {
			if o.kind == opAppend {
				uids = append(uids, next)
				next++
			}
		}
		pend = append(pend, installed{req: req, rec: rec, uids: uids})
		todo = todo[1:]
	}
}

// undone returns the requests not finished yet, in order.
func undone(reqs []*commitReq) []*commitReq {
	out := reqs[:0:0]
	for _, r := range reqs {
		if !r.done {
			out = append(out, r)
		}
	}
	return out
}

// reloadOrFail reloads the newest snapshot; if that fails, every request
// in reqs fails with the error.
func (m *Mailbox) reloadOrFail(ctx context.Context, reqs []*commitReq) {
	if err := m.reload(ctx); err != nil {
		for _, r := range reqs {
			r.finish(Result{}, err)
		}
	}
}

// applyForeign applies another committer's record read back after EEXIST.
// A seal's compactor created the next generation's tail before installing
// the seal: it is never created here (a retired tail re-created would take
// a zombie's publish). The seal is published: a compactor that stopped
// between installing it and publishing it left it invisible to Sync, and
// no later record of this generation will ever publish past it. A dead
// tail means the seal is a zombie, or folded already: reload instead.
func (m *Mailbox) applyForeign(ctx context.Context, got *record) error {
	if _, seal := got.isSeal(); seal {
		if err := m.publish(got.seq); errors.Is(err, errDead) || gone(err) {
			return m.reload(ctx)
		} else if err != nil {
			return err
		}
	}
	_, err := m.applyRecord(got)
	return err
}

// publishInstalled makes pend, records this Mailbox installed back to back
// from applied+1 in one generation, durable and visible: one directory
// sync if names are not durable when created, then one publish of the
// highest slot. It applies them and finishes their requests, and reports
// whether the state now follows them. The requests of zombies (installed
// after their generation ended and not folded into its snapshot) come back
// to be tried again; their names are removed.
func (m *Mailbox) publishInstalled(ctx context.Context, pend []installed) (retry []*commitReq, ok bool) {
	if len(pend) == 0 {
		return nil, true
	}
	fail := func(err error) ([]*commitReq, bool) {
		for _, p := range pend {
			p.req.finish(Result{}, err)
		}
		return nil, false
	}
	last := pend[len(pend)-1].rec
	if !m.opt.NamespaceDurable {
		if err := m.fsys.SyncDir(m.opt.Dir); err != nil {
			return fail(fmt.Errorf("engine: sync %s: %w", m.opt.Dir, err))
		}
	}
	err := m.publish(last.seq)
	if errors.Is(err, errDead) || gone(err) {
		// The generation ended while we were installing. Each record was
		// either folded into the snapshot (installed before the seal) or
		// is a zombie that reused a removed name: the snapshot's keys tell
		// which.
		if err := m.reload(ctx); err != nil {
			return fail(err)
		}
		for _, p := range pend {
			if p.req.key.Owner != 0 {
				if done, err := m.st.committed(p.req.key); err != nil || done {
					p.req.finish(Result{Seq: p.rec.seq, UIDs: p.uids}, err)
					continue
				}
			}
			if p.req.seal {
				p.req.finish(Result{}, errDead) // another compactor finished first
				continue
			}
			_ = m.fsys.Remove(m.path(recordName(p.rec.gen, p.rec.seq))) // our zombie
			retry = append(retry, p.req)
		}
		return retry, false
	}
	if err != nil {
		return fail(err)
	}
	for i, p := range pend {
		ch, err := m.applyRecord(p.rec)
		if err != nil {
			for _, q := range pend[i:] {
				q.req.finish(Result{}, err)
			}
			return nil, false
		}
		p.req.finish(Result{Seq: p.rec.seq, UIDs: ch.appended}, nil)
	}
	return nil, true
}
