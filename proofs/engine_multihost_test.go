package proofs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
	"pgregory.net/rapid"
)

// engineEvent is one observation in a multi-host run, in the order the
// deterministic scheduler ran them.
type engineEvent struct {
	host   string
	kind   string // "commit", "sync"
	key    engine.Key
	seq    uint64   // commit: its place; sync: applied after it
	uids   []uint32 // commit: assigned UIDs
	digest uint64   // the host's state digest after the call
	// noDigest: a commit of a group that is not the group's last; the
	// state after the call is the group's, at a later seq.
	noDigest bool
	start    int // index of the event log when the call started
}

// TestEngineMultiHost is the engine's property test (invariants I1-I5 of
// docs/design.md): random schedules of 2-3 hosts appending, flagging,
// expunging and syncing on nfssim with background write-back, lost
// replies, a host crash and a server crash; then every acknowledged
// commit is in the final order exactly once at the place it was told,
// every host's state at every point equals the state the final order
// gives at that point (one order), every Sync saw every commit that had
// returned before it started (freshness), and UIDs ascend.
func TestEngineMultiHost(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		nHosts := rapid.IntRange(2, 3).Draw(rt, "hosts")
		drc := rapid.SampledFrom([]int{0, 1024}).Draw(rt, "drc")
		crashHostAt := rapid.IntRange(-1, 400).Draw(rt, "crashHostAt")
		crashServerAt := rapid.IntRange(-1, 400).Draw(rt, "crashServerAt")
		dropEvery := rapid.IntRange(0, 7).Draw(rt, "dropEvery")
		plans := make([][]int, nHosts)
		for i := range plans {
			// Some hosts only read: their Syncs are the freshness test.
			if rapid.Bool().Draw(rt, fmt.Sprintf("reader%d", i)) {
				plans[i] = rapid.SliceOfN(rapid.Just(5), 1, 12).Draw(rt, fmt.Sprintf("plan%d", i))
			} else {
				plans[i] = rapid.SliceOfN(rapid.IntRange(0, 7), 1, 12).Draw(rt, fmt.Sprintf("plan%d", i))
			}
		}
		runEngineSchedule(rt, seed, nHosts, drc, crashHostAt, crashServerAt, dropEvery, plans)
	})
	t.Logf("%d schedules, %d records in their orders, %d acknowledged calls checked, %d freshness pairs, %d runs compacted", engineRuns, engineRecords, engineEvents, freshPairs, engineCompacted)
}

func runEngineSchedule(t *rapid.T, seed uint64, nHosts, drc, crashHostAt, crashServerAt, dropEvery int, plans [][]int) {
	ctx := context.Background()
	cfg := nfssim.DefaultConfig(seed)
	cfg.Server.DRCSize = drc
	cfg.WritebackProb = 0.1
	cfg.Latency.Jitter = 100 * time.Microsecond
	crashed := ""
	cfg.Fault = func(p nfssim.Point) nfssim.Fault {
		switch {
		case p.Seq == crashHostAt && p.Host != "judge":
			crashed = p.Host
			return nfssim.Fault{Kind: nfssim.CrashHost, RandomKeep: true}
		case p.Seq == crashServerAt:
			return nfssim.Fault{Kind: nfssim.CrashServer}
		case dropEvery > 0 && p.Kind == nfssim.PointRPC && p.Seq%dropEvery == 0:
			return nfssim.Fault{Kind: nfssim.DropReply}
		}
		return nfssim.Fault{}
	}
	s := nfssim.New(cfg)
	defer s.Close()
	var events []engineEvent
	var failures []string
	for i := range nHosts {
		name := fmt.Sprintf("mx%d", i+1)
		h := s.Host(name)
		plan := plans[i]
		s.Go(h, name, func() {
			m, err := engine.Open(ctx, engine.Options{FS: h.FS(), Dir: "mbox", Host: name,
				Rand: rand.New(rand.NewPCG(seed, uint64(i)))})
			if err != nil {
				if !errors.Is(err, nfssim.ErrHostDown) {
					failures = append(failures, fmt.Sprintf("%s open: %v", name, err))
				}
				return
			}
			defer m.Close()
			r := rand.New(rand.NewPCG(seed, uint64(i)+100))
			for _, step := range plan {
				h.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond) // think time
				start := len(events)
				tx := m.Begin()
				v := m.View()
				switch step {
				case 0, 1:
					for range 1 + r.IntN(2) {
						tx.Append(engine.NewMessage{Flags: engine.Flags(r.IntN(4))})
					}
				case 2, 3:
					if v.Len() == 0 {
						continue
					}
					msg, _ := v.BySeq(1 + r.IntN(v.Len()))
					tx.SetFlags(msg.UID, engine.Flags(1<<r.IntN(5)), engine.Flags(1<<r.IntN(5)))
				case 4:
					if v.Len() == 0 {
						continue
					}
					msg, _ := v.BySeq(1 + r.IntN(v.Len()))
					tx.Expunge(msg.UID)
				case 5:
					err := m.Sync(ctx)
					applied, dig := m.Digest()
					if err != nil {
						if !errors.Is(err, nfssim.ErrHostDown) {
							failures = append(failures, fmt.Sprintf("%s sync: %v", name, err))
						}
						return
					}
					events = append(events, engineEvent{host: name, kind: "sync", seq: applied, digest: dig, start: start})
					continue
				case 6:
					if _, err := m.Compact(ctx); err != nil && !errors.Is(err, nfssim.ErrHostDown) {
						failures = append(failures, fmt.Sprintf("%s compact: %v", name, err))
						return
					}
					continue
				case 7:
					evs, err := commitGroup(ctx, m, name, 2+r.IntN(2), r, start)
					events = append(events, evs...)
					if err != nil {
						if !errors.Is(err, nfssim.ErrHostDown) {
							failures = append(failures, fmt.Sprintf("%s group commit: %v", name, err))
						}
						return
					}
					continue
				}
				res, err := tx.Commit(ctx)
				if err != nil {
					if !errors.Is(err, nfssim.ErrHostDown) {
						failures = append(failures, fmt.Sprintf("%s commit: %v", name, err))
					}
					return
				}
				applied, dig := m.Digest()
				if applied != res.Seq {
					failures = append(failures, fmt.Sprintf("%s: commit at %d but applied %d", name, res.Seq, applied))
				}
				events = append(events, engineEvent{host: name, kind: "commit", key: tx.Key(), seq: res.Seq, uids: res.UIDs, digest: dig, start: start})
			}
		})
	}
	if err := s.Run(0); err != nil {
		t.Fatalf("run: %v", err)
	}
	if crashed != "" {
		s.Host(crashed).Restart()
	}
	for _, f := range failures {
		t.Fatalf("%s (crashed host: %q)", f, crashed)
	}
	// The judge publishes whatever a crashed committer left unpublished,
	// then reads the whole order.
	j, err := engine.Open(ctx, engine.Options{FS: s.Host("judge").FS(), Dir: "mbox", Host: "judge",
		Rand: rand.New(rand.NewPCG(seed, 999))})
	if err != nil {
		t.Fatalf("judge open: %v", err)
	}
	if _, err := j.Committed(ctx, engine.Key{Owner: 1, N: 1}); err != nil {
		t.Fatalf("judge flush: %v", err)
	}
	j.Close()
	in, err := engine.Inspect(ctx, s.Host("judge").FS(), "mbox")
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	checkEngineHistory(t, in, events)
	engineRuns++
	engineRecords += len(in.Entries)
	engineEvents += len(events)
	if in.Base > 0 {
		engineCompacted++
	}
}

var engineRuns, engineRecords, engineEvents, freshPairs, engineCompacted int

// commitGroup commits n random transactions (appends with a cached
// field, flag changes, expunges) with one Mailbox.CommitGroup and returns
// an event for each that was acknowledged; the state digest after the
// group belongs to the one at the highest seq. The first error is
// returned after the events.
func commitGroup(ctx context.Context, m *engine.Mailbox, name string, n int, r *rand.Rand, start int) ([]engineEvent, error) {
	v := m.View()
	txs := make([]*engine.Tx, n)
	for i := range txs {
		txs[i] = m.Begin()
		switch k := r.IntN(3); {
		case k == 0 || v.Len() == 0:
			txs[i].Append(engine.NewMessage{Flags: engine.Flags(r.IntN(4)), Fields: map[string][]byte{"f": fmt.Appendf(nil, "%s-%d", name, txs[i].Key().N)}})
		case k == 1:
			msg, _ := v.BySeq(1 + r.IntN(v.Len()))
			txs[i].SetFlags(msg.UID, engine.Flags(1<<r.IntN(5)), 0)
		default:
			msg, _ := v.BySeq(1 + r.IntN(v.Len()))
			txs[i].Expunge(msg.UID)
		}
	}
	res, errs := m.CommitGroup(ctx, txs...)
	applied, dig := m.Digest()
	var evs []engineEvent
	var first error
	for i, tx := range txs {
		if errs[i] != nil {
			first = cmp.Or(first, errs[i])
			continue
		}
		evs = append(evs, engineEvent{host: name, kind: "commit", key: tx.Key(), seq: res[i].Seq, uids: res[i].UIDs,
			digest: dig, noDigest: res[i].Seq != applied, start: start})
	}
	return evs, first
}

// fataler is what the checkers need of *testing.T and *rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
}

func checkEngineHistory(t fataler, in engine.Inspection, events []engineEvent) {
	hist := in.Entries
	for i, e := range hist {
		if e.Seq != in.Base+uint64(i+1) {
			t.Fatalf("I3: position %d after the snapshot at %d holds seq %d: a hole or a duplicate", i+1, in.Base, e.Seq)
		}
	}
	last := in.Base + uint64(len(hist))
	// digestAt is the order's state digest at seq, when the order still
	// has it (records folded into the snapshot are gone, but every host
	// that saw a seq must agree with every other host that saw it).
	digestAt := map[uint64]uint64{}
	if in.Base > 0 {
		digestAt[in.Base] = in.BaseDigest
	}
	for _, e := range hist {
		digestAt[e.Seq] = e.Digest
	}
	keyAt := map[uint64]engine.Key{}
	for _, e := range hist {
		keyAt[e.Seq] = e.Key
	}
	for i, ev := range events {
		if ev.seq > last {
			t.Fatalf("I4: %s observed seq %d but the order ends at %d", ev.host, ev.seq, last)
		}
		if d, ok := digestAt[ev.seq]; ok && ev.seq > 0 && !ev.noDigest && d != ev.digest {
			t.Fatalf("I3: %s's state at seq %d differs from the order's (event %d, %s)", ev.host, ev.seq, i, ev.kind)
		}
		if ev.seq > 0 && !ev.noDigest {
			digestAt[ev.seq] = ev.digest
		}
		if ev.kind != "commit" {
			continue
		}
		if ev.seq == 0 {
			t.Fatalf("I4: commit %v of %s acknowledged without a place in the order", ev.key, ev.host)
		}
		if k, ok := keyAt[ev.seq]; ok && k != ev.key {
			t.Fatalf("I3/I4: commit %v of %s acknowledged at seq %d, but seq %d holds %v", ev.key, ev.host, ev.seq, ev.seq, k)
		}
		keyAt[ev.seq] = ev.key
		// Durability and exactly-once: the final state remembers the key once.
		count := 0
		for _, n := range in.Keys[ev.key.Owner] {
			if n == ev.key.N {
				count++
			}
		}
		if count != 1 {
			t.Fatalf("I4: acknowledged commit %v of %s (seq %d) is in the final state %d times", ev.key, ev.host, ev.seq, count)
		}
		// Real-time order: a commit that started after this one returned
		// is after it in the total order (linearizability: positions are
		// explicit, so this and the state checks above are all of it).
		for _, later := range events[i+1:] {
			if later.kind == "commit" && later.start > i && later.seq <= ev.seq {
				t.Fatalf("I3: %s's commit started after %s's commit at seq %d returned, but got seq %d", later.host, ev.host, ev.seq, later.seq)
			}
		}
		// Freshness: every sync that started after this commit returned
		// saw it (I5).
		for _, later := range events[i+1:] {
			if later.kind == "sync" && later.start > i && later.host != ev.host {
				freshPairs++
			}
			if later.kind == "sync" && later.start > i && later.seq < ev.seq {
				t.Fatalf("I5: %s's Sync started after %s's commit at seq %d returned, but saw only %d", later.host, ev.host, ev.seq, later.seq)
			}
		}
	}
	// UIDs ascend along the order (I2).
	type ack struct {
		seq  uint64
		uids []uint32
	}
	var acks []ack
	for _, ev := range events {
		if ev.kind == "commit" && len(ev.uids) > 0 {
			acks = append(acks, ack{ev.seq, ev.uids})
		}
	}
	slices.SortFunc(acks, func(a, b ack) int { return cmp.Compare(a.seq, b.seq) })
	var lastUID uint32
	for _, a := range acks {
		for _, u := range a.uids {
			if u <= lastUID {
				t.Fatalf("I2: UID %d at seq %d is not above %d", u, a.seq, lastUID)
			}
			lastUID = u
		}
	}
}
