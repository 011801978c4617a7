package proofs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/appendlog"
	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
)

// fieldModel is what the field proofs know was committed: the acknowledged
// value of every field of every live message (exact), and every value a
// field of a message was ever given, acknowledged or in flight (what a
// read during the run may return).
type fieldModel struct {
	want    map[uint32]map[string]string
	allowed map[uint32]map[string]map[string]bool
}

func newFieldModel() *fieldModel {
	return &fieldModel{want: map[uint32]map[string]string{}, allowed: map[uint32]map[string]map[string]bool{}}
}

func (fm *fieldModel) set(uid uint32, name, val string) {
	if fm.want[uid] == nil {
		fm.want[uid] = map[string]string{}
	}
	fm.want[uid][name] = val
	fm.allow(uid, name, val)
}

func (fm *fieldModel) allow(uid uint32, name, val string) {
	if fm.allowed[uid] == nil {
		fm.allowed[uid] = map[string]map[string]bool{}
	}
	if fm.allowed[uid][name] == nil {
		fm.allowed[uid][name] = map[string]bool{}
	}
	fm.allowed[uid][name][val] = true
}

// readFields syncs m and reads every field of every message its state
// holds that the model knows. A read that gives ErrFieldMoved (the log was
// removed after the reference was relocated) must succeed after one more
// Sync: the documented contract of FieldValue. exact: the messages must be
// exactly the model's acknowledged ones, with their acknowledged values;
// otherwise a value must be one the field was ever given.
func readFields(ctx context.Context, m *engine.Mailbox, fm *fieldModel, exact bool) error {
	for attempt := 0; ; attempt++ {
		if err := m.Sync(ctx); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		v := m.View()
		if exact && v.Len() != len(fm.want) {
			return fmt.Errorf("%d messages, want %d", v.Len(), len(fm.want))
		}
		var moved, failed error
		v.All(func(_ int, msg engine.Message) bool {
			fields, known := fm.want[msg.UID]
			if !known {
				if exact {
					failed = fmt.Errorf("message %d was never acknowledged", msg.UID)
					return false
				}
				return true
			}
			names := make([]string, 0, len(fields))
			for n := range fields {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, name := range names {
				ref, ok := msg.Field(name)
				if !ok {
					failed = fmt.Errorf("message %d lost field %s", msg.UID, name)
					return false
				}
				got, err := m.FieldValue(ctx, ref)
				if errors.Is(err, engine.ErrFieldMoved) {
					fieldsMoved++
					moved = fmt.Errorf("message %d field %s %+v: %w", msg.UID, name, ref, err)
					return false
				}
				if err != nil {
					failed = fmt.Errorf("message %d field %s %+v: %w", msg.UID, name, ref, err)
					return false
				}
				if exact && string(got) != fields[name] || !fm.allowed[msg.UID][name][string(got)] {
					failed = fmt.Errorf("message %d field %s %+v = %q, want %q", msg.UID, name, ref, got, fields[name])
					return false
				}
			}
			return true
		})
		if failed != nil {
			return failed
		}
		if moved == nil {
			return nil
		}
		if attempt > 0 {
			return fmt.Errorf("still moved after a Sync: %w", moved)
		}
	}
}

// readView reads every field the model knows of every message of view
// that the model still holds: each must be a value the field was given;
// a read may say ErrFieldMoved only if movedOK (counted in moved).
func readView(ctx context.Context, m *engine.Mailbox, view *engine.View, fm *fieldModel, movedOK bool) (moved int, err error) {
	view.All(func(_ int, msg engine.Message) bool {
		for name := range fm.want[msg.UID] {
			ref, ok := msg.Field(name)
			if !ok {
				err = fmt.Errorf("message %d has no field %s", msg.UID, name)
				return false
			}
			got, rerr := m.FieldValue(ctx, ref)
			switch {
			case movedOK && errors.Is(rerr, engine.ErrFieldMoved):
				moved++
			case rerr != nil:
				err = fmt.Errorf("message %d field %s %+v: %w", msg.UID, name, ref, rerr)
			case !fm.allowed[msg.UID][name][string(got)]:
				err = fmt.Errorf("message %d field %s %+v = %q, never committed", msg.UID, name, ref, got)
			}
			if err != nil {
				return false
			}
		}
		return true
	})
	fieldsMoved += moved
	return moved, err
}

// appendFields commits one message with two fields and records it; it
// returns the message's UID.
func appendFields(ctx context.Context, m *engine.Mailbox, name string, n int, fm *fieldModel, events *[]engineEvent) (uint32, error) {
	start := len(*events)
	tx := m.Begin()
	vals := map[string]string{"file": fmt.Sprintf("%s.%d.file", name, n), "env": fmt.Sprintf("%s.%d.envelope %s", name, n, strings.Repeat("x", n%7*10))}
	f := map[string][]byte{}
	for k, v := range vals {
		f[k] = []byte(v)
	}
	tx.Append(engine.NewMessage{Fields: f})
	res, err := tx.Commit(ctx)
	if err != nil {
		return 0, err
	}
	for k, v := range vals {
		fm.set(res.UIDs[0], k, v)
	}
	_, dig := m.Digest()
	*events = append(*events, engineEvent{host: name, kind: "commit", key: tx.Key(), seq: res.Seq, uids: res.UIDs, digest: dig, start: start})
	return res.UIDs[0], nil
}

// commitTx commits tx and records it.
func commitTx(ctx context.Context, m *engine.Mailbox, name string, tx *engine.Tx, events *[]engineEvent) error {
	start := len(*events)
	res, err := tx.Commit(ctx)
	if err != nil {
		return err
	}
	_, dig := m.Digest()
	*events = append(*events, engineEvent{host: name, kind: "commit", key: tx.Key(), seq: res.Seq, uids: res.UIDs, digest: dig, start: start})
	return nil
}

// TestEngineFieldRewriteCrashPoints (F1-F3): host mx1 rewrites its field
// logs twice. In one set of runs the first rewrite (out of epoch 0), in
// the other the second (which also removes the log the first one emptied,
// a snapshot having dropped every reference to it), is stopped at each of
// its fault points: mx1 pauses there (and is resumed after mx2 has done
// its work), crashes losing or keeping its dirty pages, loses the reply
// of the RPC there (no DRC), or the server crashes there. Meanwhile mx2
// commits (flags, its own values), compacts the index and reads every
// field value, syncing once when a read says ErrFieldMoved; mx3 reads
// through a View taken before both rewrites, where ErrFieldMoved is
// allowed, then syncs the View and must read every value. Then mx1
// restarts and, as a new process, commits, rewrites, compacts and
// rewrites again. Afterwards: every acknowledged commit is in the order
// exactly once, hosts agree, Syncs are fresh (checkEngineHistory); every
// field of every live message reads back, during the run, on the
// restarted mx1 and on a fresh host, equal to the value committed; and
// mx1 is left with exactly one log, no temporary name and no
// silly-renamed file (nothing leaks). NFSv3 and v4.2.
func TestEngineFieldRewriteCrashPoints(t *testing.T) {
	for _, run := range []struct {
		v      nfssim.Version
		window int
	}{{nfssim.V3, 1}, {nfssim.V3, 2}, {nfssim.V4, 1}, {nfssim.V4, 2}} {
		v, window := run.v, run.window
		points := fieldsRun(t, v, window, -1, nfssim.Fault{})
		states := 0
		for k, p := range points {
			for _, f := range []nfssim.Fault{
				{Kind: nfssim.PauseHost},
				{Kind: nfssim.CrashHost},
				{Kind: nfssim.CrashHost, Keep: ^uint64(0)},
				{Kind: nfssim.DropReply},
				{Kind: nfssim.CrashServer},
			} {
				if f.Kind == nfssim.DropReply && p.Kind != nfssim.PointRPC {
					continue // only an RPC has a reply to lose
				}
				fieldsRun(t, v, window, k, f)
				states++
			}
		}
		t.Logf("%v, rewrite %d: %d fault points, %d states", v, window, len(points), states)
	}
	t.Logf("reads that met ErrFieldMoved (and read again after a Sync): %d", fieldsMoved)
}

// fieldsMoved counts the reads of the field proofs that met ErrFieldMoved.
var fieldsMoved int

// fieldsRun runs the scenario of TestEngineFieldRewriteCrashPoints with
// fault f at the k-th fault point of mx1's first or second field rewrite
// (window; k < 0: none), checks it, and returns the fault points of that
// rewrite.
func fieldsRun(t *testing.T, v nfssim.Version, window, k int, f nfssim.Fault) []nfssim.Point {
	t.Helper()
	ctx := context.Background()
	seed := uint64(v) + 300
	cfg := nfssim.DefaultConfig(seed)
	if f.Kind == nfssim.DropReply {
		cfg.Server.DRCSize = 0 // the retransmission is executed again
	}
	rewriting, hit := false, false
	var points []nfssim.Point
	cfg.Fault = func(p nfssim.Point) nfssim.Fault {
		if p.Host != "mx1" || !rewriting {
			return nfssim.Fault{}
		}
		points = append(points, p)
		if len(points)-1 == k {
			hit = true
			return f
		}
		return nfssim.Fault{}
	}
	s := nfssim.New(cfg)
	defer s.Close()
	mnt := nfssim.DefaultMount()
	mnt.Version = v
	hosts := map[string]*nfssim.Host{}
	for _, name := range []string{"mx1", "mx2", "mx3", "judge", "fresh"} {
		h, err := s.AddHost(name, mnt)
		if err != nil {
			t.Fatal(err)
		}
		hosts[name] = h
	}
	replay := fmt.Sprintf("go test ./proofs -run TestEngineFieldRewriteCrashPoints (vers=%v seed %d, rewrite %d, point %d, fault %+v)", v, seed, window, k, f)
	fm := newFieldModel()
	var events []engineEvent
	var failures []string
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }
	down := func(err error) bool { return errors.Is(err, nfssim.ErrHostDown) }
	open := func(name string, i uint64) (*engine.Mailbox, error) {
		return engine.Open(ctx, engine.Options{FS: hosts[name].FS(), Dir: "mbox", Host: name, NamespaceDurable: true,
			FieldCompactRatio: -1, Rand: rand.New(rand.NewPCG(seed, i))})
	}
	mx1Done, mx1Ready, staleTaken := false, false, false
	s.Go(hosts["mx1"], "mx1", func() {
		m, err := open("mx1", 1)
		if err != nil {
			fail("mx1 open: %v", err)
			return
		}
		defer m.Close()
		var mine []uint32
		for n := range 6 {
			uid, err := appendFields(ctx, m, "mx1", n, fm, &events)
			if err != nil {
				fail("mx1 append: %v", err)
				return
			}
			mine = append(mine, uid)
		}
		tx := m.Begin()
		tx.Expunge(mine[0])
		tx.Expunge(mine[2])
		tx.SetField(mine[1], "env", []byte("mx1.1.envelope replaced"))
		fm.allow(mine[1], "env", "mx1.1.envelope replaced")
		if err := commitTx(ctx, m, "mx1", tx, &events); err != nil {
			fail("mx1 expunge: %v", err)
			return
		}
		delete(fm.want, mine[0])
		delete(fm.want, mine[2])
		fm.set(mine[1], "env", "mx1.1.envelope replaced")
		// mx3 takes its view now, with references into log.mx1.
		mx1Ready = true
		for i := 0; !staleTaken && i < 10000; i++ {
			hosts["mx1"].Sleep(time.Millisecond)
		}
		rewriting = window == 1
		done1, err := m.CompactFields(ctx)
		rewriting = false
		if down(err) {
			return
		}
		if err != nil || k < 0 && !done1 {
			fail("mx1 first CompactFields = %v, %v; want a rewrite", done1, err)
			return
		}
		for n := 6; n < 8; n++ {
			if _, err := appendFields(ctx, m, "mx1", n, fm, &events); err != nil {
				fail("mx1 append: %v", err)
				return
			}
		}
		tx = m.Begin()
		tx.Expunge(mine[3])
		if err := commitTx(ctx, m, "mx1", tx, &events); err != nil {
			fail("mx1 expunge: %v", err)
			return
		}
		delete(fm.want, mine[3])
		if done, err := m.Compact(ctx); err != nil || !done {
			fail("mx1 Compact = %v, %v", done, err)
			return
		}
		rewriting = window == 2
		done, err := m.CompactFields(ctx)
		rewriting = false
		if down(err) {
			return
		}
		if err != nil {
			fail("mx1 second CompactFields: %v", err)
			return
		}
		if k < 0 && !done {
			fail("mx1 second CompactFields did not rewrite")
			return
		}
		if err := readFields(ctx, m, fm, false); err != nil {
			fail("mx1 after its rewrite: %v", err)
			return
		}
		if _, err := appendFields(ctx, m, "mx1", 8, fm, &events); err != nil {
			fail("mx1 append after the rewrite: %v", err)
			return
		}
		mx1Done = true
	})
	mx2Done := false
	s.Go(hosts["mx3"], "mx3", func() {
		m, err := open("mx3", 5)
		if err != nil {
			fail("mx3 open: %v", err)
			return
		}
		defer m.Close()
		for i := 0; !mx1Ready && i < 10000; i++ {
			hosts["mx3"].Sleep(time.Millisecond)
		}
		if err := m.Sync(ctx); err != nil {
			fail("mx3 sync: %v", err)
			return
		}
		view := m.View()
		staleTaken = true
		for i := 0; !mx2Done && i < 10000; i++ {
			hosts["mx3"].Sleep(10 * time.Millisecond)
		}
		// The view's references are from before both rewrites: each reads
		// its value, or, once the log is removed, ErrFieldMoved.
		moved, err := readView(ctx, m, view, fm, true)
		if err != nil {
			fail("mx3 stale view: %v", err)
			return
		}
		if k < 0 && moved == 0 {
			fail("mx3's stale references never met a removed log: the scenario lost its point")
			return
		}
		if _, err := view.Sync(ctx); err != nil {
			fail("mx3 view sync: %v", err)
			return
		}
		if _, err := readView(ctx, m, view, fm, false); err != nil {
			fail("mx3 after View.Sync: %v", err)
		}
	})
	s.Go(hosts["mx2"], "mx2", func() {
		m, err := open("mx2", 2)
		if err != nil {
			fail("mx2 open: %v", err)
			return
		}
		defer m.Close()
		if _, err := appendFields(ctx, m, "mx2", 0, fm, &events); err != nil {
			fail("mx2 append: %v", err)
			return
		}
		for round := range 24 {
			hosts["mx2"].Sleep(40 * time.Millisecond)
			if err := readFields(ctx, m, fm, false); err != nil {
				fail("mx2 read, round %d: %v", round, err)
				return
			}
			start := len(events)
			if err := m.Sync(ctx); err != nil {
				fail("mx2 sync: %v", err)
				return
			}
			applied, dig := m.Digest()
			events = append(events, engineEvent{host: "mx2", kind: "sync", seq: applied, digest: dig, start: start})
			switch round % 6 {
			case 2:
				if view := m.View(); view.Len() > 0 {
					msg, _ := view.BySeq(view.Len())
					tx := m.Begin()
					tx.SetFlags(msg.UID, engine.Seen, 0)
					if err := commitTx(ctx, m, "mx2", tx, &events); err != nil {
						fail("mx2 flag: %v", err)
						return
					}
				}
			case 4:
				if _, err := appendFields(ctx, m, "mx2", round, fm, &events); err != nil {
					fail("mx2 append: %v", err)
					return
				}
			case 5:
				if _, err := m.Compact(ctx); err != nil {
					fail("mx2 compact: %v", err)
					return
				}
			}
		}
		// A paused mx1 wakes up and finishes its rewrite.
		hosts["mx1"].Resume()
		hosts["mx2"].Sleep(2 * time.Second)
		if err := readFields(ctx, m, fm, false); err != nil {
			fail("mx2 read after mx1 resumed: %v", err)
			return
		}
		mx2Done = true
	})
	if err := s.Run(0); err != nil {
		t.Fatalf("%s: run: %v", replay, err)
	}
	for _, msg := range failures {
		t.Fatalf("%s: %s", replay, msg)
	}
	if k >= 0 && !hit {
		t.Fatalf("%s: the fault point was never reached", replay)
	}
	crashed := f.Kind == nfssim.CrashHost && hit
	if !mx2Done || !mx1Done && !crashed {
		t.Fatalf("%s: a host did not finish its work (mx1 %v, mx2 %v)", replay, mx1Done, mx2Done)
	}
	// mx1 restarts: a new process commits, rewrites, compacts and
	// rewrites again; then its logs are one, and every value reads back.
	hosts["mx1"].Restart()
	m, err := open("mx1", 3)
	if err != nil {
		t.Fatalf("%s: mx1 reopen: %v", replay, err)
	}
	if err := readFields(ctx, m, fm, true); err != nil {
		t.Fatalf("%s: mx1 restarted: %v", replay, err)
	}
	if _, err := appendFields(ctx, m, "mx1", 9, fm, &events); err != nil {
		t.Fatalf("%s: mx1 restarted, append: %v", replay, err)
	}
	if _, err := m.CompactFields(ctx); err != nil {
		t.Fatalf("%s: mx1 restarted, CompactFields: %v", replay, err)
	}
	if done, err := m.Compact(ctx); err != nil || !done {
		t.Fatalf("%s: mx1 restarted, Compact = %v, %v", replay, done, err)
	}
	if _, err := m.CompactFields(ctx); err != nil {
		t.Fatalf("%s: mx1 restarted, CompactFields: %v", replay, err)
	}
	if err := readFields(ctx, m, fm, true); err != nil {
		t.Fatalf("%s: mx1 restarted, after cleaning up: %v", replay, err)
	}
	m.Close()
	names, err := hosts["judge"].FS().ReadDir("mbox")
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for _, n := range names {
		if strings.HasPrefix(n, ".nfs") {
			t.Fatalf("%s: a file removed while its host held it open is left (N17): %v", replay, names)
		}
		if l, ok := appendlog.ParseLogName(n); ok && (l == "mx1" || strings.HasPrefix(l, "mx1+")) {
			own = append(own, n)
		}
		if l, ok := appendlog.ParseTempName(n); ok && (l == "mx1" || strings.HasPrefix(l, "mx1+")) {
			t.Fatalf("%s: mx1's temporary name %s is left: %v", replay, n, names)
		}
	}
	if len(own) != 1 {
		t.Fatalf("%s: after a rewrite and a snapshot mx1 still has the logs %v", replay, own)
	}
	// A fresh host (opening from the snapshot) reads every value.
	fresh, err := open("fresh", 4)
	if err != nil {
		t.Fatalf("%s: fresh open: %v", replay, err)
	}
	if err := readFields(ctx, fresh, fm, true); err != nil {
		t.Fatalf("%s: fresh host: %v", replay, err)
	}
	if _, err := fresh.Committed(ctx, engine.Key{Owner: 1, N: 1}); err != nil {
		t.Fatalf("%s: flush: %v", replay, err)
	}
	fresh.Close()
	in, err := engine.Inspect(ctx, hosts["judge"].FS(), "mbox")
	if err != nil {
		t.Fatalf("%s: inspect: %v", replay, err)
	}
	checkEngineHistory(prefixed{t, replay}, in, events)
	return points
}
