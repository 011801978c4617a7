package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nfsindex/nfsindex/appendlog"
	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/errorfs"
)

// hostLogs returns the field logs of host in the mailbox directory (their
// appendlog names) with their committed records and bytes, and fails on
// any temporary name of a log creation and any silly-renamed file.
func hostLogs(t *testing.T, fsys vfs.FS, host string) (logs []string, records uint64, used int64) {
	t.Helper()
	names, err := fsys.ReadDir("mbox")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".nfs") {
			// A log removed while this host still held it open (N17):
			// its space is not reclaimed until the file is closed.
			t.Fatalf("a silly-renamed file is left: %v", names)
		}
		if l, ok := appendlog.ParseTempName(n); ok {
			if _, ours := ownEpoch(host, l); ours {
				t.Fatalf("a log creation's temporary name is left: %v", names)
			}
		}
		l, ok := appendlog.ParseLogName(n)
		if !ok {
			continue
		}
		if _, ours := ownEpoch(host, l); !ours {
			continue
		}
		r, err := appendlog.OpenReader(context.Background(), fsys, "mbox", l, appendlog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		info := r.Info()
		if err := r.Check(context.Background()); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		r.Close()
		logs, records, used = append(logs, l), records+info.Records, used+info.Used
	}
	return logs, records, used
}

// checkValues reads every field of every message on m (after a Sync) and
// compares it with want (uid -> name -> value): every field is there with
// its value, and no other field.
func checkValues(t *testing.T, who string, m *Mailbox, want map[uint32]map[string]string) {
	t.Helper()
	ctx := context.Background()
	if err := m.Sync(ctx); err != nil {
		t.Fatalf("%s: sync: %v", who, err)
	}
	v := m.View()
	if v.Len() != len(want) {
		t.Fatalf("%s holds %d messages, want %d", who, v.Len(), len(want))
	}
	v.All(func(_ int, msg Message) bool {
		fields := want[msg.UID]
		if len(msg.fields) != len(fields) {
			t.Fatalf("%s: message %d has %d fields, want %d", who, msg.UID, len(msg.fields), len(fields))
		}
		for name, val := range fields {
			ref, ok := msg.Field(name)
			if !ok {
				t.Fatalf("%s: message %d lost field %s", who, msg.UID, name)
			}
			got, err := m.FieldValue(ctx, ref)
			if err != nil || string(got) != val {
				t.Fatalf("%s: message %d field %s (%+v) = %q, %v; want %q", who, msg.UID, name, ref, got, err, val)
			}
		}
		return true
	})
}

// TestFieldCompactionReclaimsGarbage (F1, F2): after most messages are
// expunged and fields replaced, CompactFields copies the live values into
// a new epoch and relocates the references through several relocation
// records; every host reads every value unchanged and all agree on the
// state digest; a reference from before (a view not synced) reads until the
// old log is removed, then gives ErrFieldMoved, and after View.Sync reads
// again; the old log is removed only after a snapshot without references
// to it, and the host's logs then hold fewer records and bytes; a host
// opened afterwards from the snapshot reads every value.
func TestFieldCompactionReclaimsGarbage(t *testing.T) {
	defer func(b int) { relocateBudget = b }(relocateBudget)
	relocateBudget = 100 // a few moves per relocation record
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(21))
	a, b := openOn(t, s, "mx1", 1), openOn(t, s, "mx2", 2)
	want := map[uint32]map[string]string{}
	for i := range 60 {
		tx := a.Begin()
		f := map[string][]byte{"file": fmt.Appendf(nil, "%d.M%dP1.mx1", 1700000000+i, i), "size": fmt.Appendf(nil, "%d", 1000+i*37)}
		tx.Append(NewMessage{Fields: f})
		r := commit(t, tx)
		want[r.UIDs[0]] = map[string]string{"file": string(f["file"]), "size": string(f["size"])}
	}
	tb := b.Begin() // another host's values are not touched
	tb.Append(NewMessage{Fields: map[string][]byte{"file": []byte("mx2's own")}})
	want[commit(t, tb).UIDs[0]] = map[string]string{"file": "mx2's own"}
	tx := a.Begin()
	for uid := uint32(1); uid <= 45; uid++ {
		tx.Expunge(uid)
		delete(want, uid)
	}
	commit(t, tx)
	for uid := uint32(46); uid <= 50; uid++ { // replaced values are garbage too
		tx := a.Begin()
		tx.SetField(uid, "size", []byte("replaced"))
		commit(t, tx)
		want[uid]["size"] = "replaced"
	}
	judge := s.Host("judge").FS()
	logs0, recs0, used0 := hostLogs(t, judge, "mx1")
	if !slices.Equal(logs0, []string{"mx1"}) || recs0 != 125 {
		t.Fatalf("before: logs %v with %d records", logs0, recs0)
	}
	stale := b.View() // references into log.mx1
	staleMsg, _, _ := stale.ByUID(50)
	staleRef, _ := staleMsg.Field("file")

	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	synced := b.View()
	done, err := a.CompactFields(ctx)
	if err != nil || !done {
		t.Fatalf("CompactFields = %v, %v", done, err)
	}
	// To a view, a relocation is no change (same values, same ModSeq),
	// but a Sync gives it the new references.
	if ch, err := synced.Sync(ctx); err != nil || !ch.Empty() {
		t.Fatalf("View.Sync after a relocation: %+v, %v; want no change", ch, err)
	}
	synced.All(func(_ int, msg Message) bool {
		if ref, _ := msg.Field("file"); ref.Host == "mx1" {
			t.Fatalf("message %d after View.Sync still references %+v", msg.UID, ref)
		}
		return true
	})
	hist, err := ReadHistory(ctx, judge, "mbox")
	if err != nil {
		t.Fatal(err)
	}
	relocs := 0
	for _, e := range hist {
		relocs += e.Relocations
	}
	if relocs < 3 {
		t.Fatalf("%d relocation records; the budget of %d bytes should need more", relocs, relocateBudget)
	}
	checkValues(t, "mx1", a, want)
	checkValues(t, "mx2", b, want)
	if got, err := b.FieldValue(ctx, staleRef); err != nil || string(got) != want[50]["file"] {
		t.Fatalf("a reference from before the relocation, old log still there: %q, %v", got, err)
	}
	// The old log stays until a snapshot holds no reference to it.
	if logs, _, _ := hostLogs(t, judge, "mx1"); len(logs) != 2 {
		t.Fatalf("after the rewrite, before any snapshot: logs %v, want the old and the new", logs)
	}
	if done, err := a.CompactFields(ctx); err != nil || done {
		t.Fatalf("CompactFields with nothing to do = %v, %v", done, err)
	}
	if logs, _, _ := hostLogs(t, judge, "mx1"); len(logs) != 2 {
		t.Fatalf("the old log was removed before a snapshot: %v", logs)
	}
	if done, err := b.Compact(ctx); err != nil || !done { // another host's compaction
		t.Fatalf("Compact = %v, %v", done, err)
	}
	tx = a.Begin() // a commit after the compaction removes the old log
	tx.SetFlags(50, Seen, 0)
	commit(t, tx)
	logs1, recs1, used1 := hostLogs(t, judge, "mx1")
	if len(logs1) != 1 || logs1[0] == "mx1" {
		t.Fatalf("after the snapshot: logs %v, want only the new epoch", logs1)
	}
	if recs1 != 30 || used1-appendlog.DataStart >= (used0-appendlog.DataStart)/3 {
		t.Fatalf("records %d -> %d (want 30), bytes %d -> %d", recs0, recs1, used0, used1)
	}
	// b may still hold the removed log open (and read it from its cache:
	// the value is right); a host that does not gets ErrFieldMoved.
	if got, err := b.FieldValue(ctx, staleRef); !errors.Is(err, ErrFieldMoved) && (err != nil || string(got) != want[50]["file"]) {
		t.Fatalf("a reference into the removed log on a host that read it before: %q, %v", got, err)
	}
	if _, err := openOn(t, s, "mx4", 5).FieldValue(ctx, staleRef); !errors.Is(err, ErrFieldMoved) {
		t.Fatalf("a reference into the removed log: %v, want ErrFieldMoved", err)
	}
	if _, err := stale.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	staleMsg, _, _ = stale.ByUID(50)
	staleRef, _ = staleMsg.Field("file")
	if got, err := b.FieldValue(ctx, staleRef); err != nil || string(got) != want[50]["file"] {
		t.Fatalf("after View.Sync: %+v = %q, %v", staleRef, got, err)
	}
	checkValues(t, "mx1", a, want)
	checkValues(t, "mx2", b, want)
	// Two more rewrites after that snapshot: the logs they leave stay
	// until a snapshot at or after their relocation (a state after the
	// newest snapshot still references them), even the one the snapshot
	// never referenced (created after it).
	tx = a.Begin()
	for uid := uint32(46); uid <= 48; uid++ {
		tx.Expunge(uid)
		delete(want, uid)
	}
	commit(t, tx)
	if done, err := a.CompactFields(ctx); err != nil || !done {
		t.Fatalf("second CompactFields = %v, %v", done, err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	mid := b.View() // after the newest snapshot, references into the second epoch
	midFile := map[uint32]string{}
	for uid, f := range want {
		midFile[uid] = f["file"]
	}
	tx = a.Begin()
	tx.Expunge(49)
	delete(want, 49)
	commit(t, tx)
	if done, err := a.CompactFields(ctx); err != nil || !done {
		t.Fatalf("third CompactFields = %v, %v", done, err)
	}
	if done, err := a.CompactFields(ctx); err != nil || done {
		t.Fatalf("CompactFields with nothing to do = %v, %v", done, err)
	}
	if logs, _, _ := hostLogs(t, judge, "mx1"); len(logs) != 3 {
		t.Fatalf("logs %v after two rewrites since the snapshot: want all three", logs)
	}
	fresh := openOn(t, s, "mx5", 6)
	mid.All(func(_ int, msg Message) bool {
		ref, _ := msg.Field("file")
		if got, err := fresh.FieldValue(ctx, ref); err != nil || string(got) != midFile[msg.UID] {
			t.Fatalf("a reference of a state after the newest snapshot: %+v = %q, %v", ref, got, err)
		}
		return true
	})
	if done, err := a.Compact(ctx); err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	if _, err := a.CompactFields(ctx); err != nil {
		t.Fatal(err)
	}
	logs2, _, _ := hostLogs(t, judge, "mx1")
	if len(logs2) != 1 || logs2[0] == logs1[0] {
		t.Fatalf("after the next snapshot: logs %v, want one new epoch", logs2)
	}
	logs1 = logs2
	checkValues(t, "mx1", a, want)
	checkValues(t, "mx2", b, want)
	c := openOn(t, s, "mx3", 3) // from the snapshot
	checkValues(t, "mx3 (fresh)", c, want)
	sa, da := a.Digest()
	for _, m := range []*Mailbox{b, c} {
		if sm, dm := m.Digest(); sm != sa || dm != da {
			t.Fatalf("digests differ: %d/%x vs %d/%x", sa, da, sm, dm)
		}
	}
	// New values go to the current epoch, and a reopened host goes on there.
	tx = a.Begin()
	tx.Append(NewMessage{Fields: map[string][]byte{"file": []byte("after")}})
	want[commit(t, tx).UIDs[0]] = map[string]string{"file": "after"}
	a.Close()
	a = openOn(t, s, "mx1", 4)
	tx = a.Begin()
	tx.Append(NewMessage{Fields: map[string][]byte{"file": []byte("reopened")}})
	want[commit(t, tx).UIDs[0]] = map[string]string{"file": "reopened"}
	if logs, _, _ := hostLogs(t, judge, "mx1"); !slices.Equal(logs, logs1) {
		t.Fatalf("after reopening: logs %v, want %v", logs, logs1)
	}
	for _, m := range []*Mailbox{a, b, c} {
		checkValues(t, "after reopening", m, want)
	}
}

// TestFieldCompactionTrigger (F1): commits rewrite the host's log once
// FieldCompactRatio of its records (and at least FieldCompactMinRecords)
// are garbage, and not before; a negative ratio never does.
func TestFieldCompactionTrigger(t *testing.T) {
	for _, ratio := range []float64{0, 0.5, -1} {
		ctx := context.Background()
		s := nfssim.New(nfssim.DefaultConfig(22))
		m, err := Open(ctx, Options{FS: s.Host("mx1").FS(), Dir: "mbox", Host: "mx1", FieldCompactRatio: ratio,
			FieldCompactMinRecords: 20, Rand: rand.New(rand.NewPCG(1, 2))})
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			tx := m.Begin()
			tx.Append(NewMessage{Fields: map[string][]byte{"f": []byte("value")}})
			commit(t, tx)
		}
		threshold := ratio
		if threshold == 0 {
			threshold = 0.2 // the default, the seed's 20%
		}
		rewritten := -1
		for uid := uint32(1); uid <= 20; uid++ {
			tx := m.Begin()
			tx.Expunge(uid)
			commit(t, tx)
			logs, _, _ := hostLogs(t, s.Host("judge").FS(), "mx1")
			if len(logs) > 1 || logs[0] != "mx1" {
				rewritten = int(uid)
				break
			}
		}
		want := 1
		for float64(want) < threshold*20 {
			want++
		}
		switch {
		case ratio < 0 && rewritten != -1:
			t.Fatalf("ratio %v: rewritten after %d expunges", ratio, rewritten)
		case ratio >= 0 && rewritten != want:
			t.Fatalf("ratio %v: rewritten after %d expunges of 20, want %d", ratio, rewritten, want)
		}
		m.Close()
	}
}

// TestOrphanEpochsAreRemoved (F2, F3): logs that a rewrite which stopped
// left (a new epoch no relocation refers to, and the old log) are removed
// by the host's next process once a snapshot allows it: in the end the
// host has one log, and every value reads back.
func TestOrphanEpochsAreRemoved(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(23))
	a := openOn(t, s, "mx1", 1)
	want := map[uint32]map[string]string{}
	for i := range 10 {
		tx := a.Begin()
		tx.Append(NewMessage{Fields: map[string][]byte{"f": fmt.Appendf(nil, "v%d", i)}})
		want[commit(t, tx).UIDs[0]] = map[string]string{"f": fmt.Sprintf("v%d", i)}
	}
	a.Close()
	// What a rewrite that stopped after creating its epochs leaves: two
	// new logs, one with a copy in it, and a creation's temporary name.
	fsys := s.Host("mx1").FS()
	for _, e := range []uint64{5, 11} {
		w, err := appendlog.Create(ctx, fsys, "mbox", epochName("mx1", e), appendlog.Options{Rand: rand.New(rand.NewPCG(e, 1))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Append(fieldRecordType, []byte("copy")); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	f, err := fsys.OpenFile("mbox/"+appendlog.TempName("mx1+12"), vfs.WriteOnly|vfs.Create, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	a = openOn(t, s, "mx1", 2)
	tx := a.Begin()
	tx.Append(NewMessage{Fields: map[string][]byte{"f": []byte("new")}})
	want[commit(t, tx).UIDs[0]] = map[string]string{"f": "new"}
	if logs, _, _ := hostLogs(t, s.Host("judge").FS(), "mx1"); len(logs) != 3 {
		t.Fatalf("logs %v", logs)
	}
	if done, err := a.CompactFields(ctx); err != nil || !done {
		t.Fatalf("CompactFields = %v, %v", done, err)
	}
	if done, err := a.Compact(ctx); err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	if _, err := a.CompactFields(ctx); err != nil {
		t.Fatal(err)
	}
	logs, _, _ := hostLogs(t, s.Host("judge").FS(), "mx1")
	if len(logs) != 1 {
		t.Fatalf("after a rewrite and a snapshot the host still has logs %v", logs)
	}
	checkValues(t, "mx1", a, want)
	checkValues(t, "mx2", openOn(t, s, "mx2", 3), want)
}

// TestOpenRejectsReservedHostNames: '+' separates a log epoch from its
// host, so a host name may not contain it; nor may it be too long for an
// epoch's name.
func TestOpenRejectsReservedHostNames(t *testing.T) {
	s := nfssim.New(nfssim.DefaultConfig(24))
	for _, h := range []string{"mx1+2", "+", strings.Repeat("a", MaxHostLen+1)} {
		_, err := Open(context.Background(), Options{FS: s.Host("mx1").FS(), Dir: "mbox", Host: h})
		if !errors.Is(err, appendlog.ErrHostName) {
			t.Fatalf("Open with host %q: %v, want ErrHostName", h, err)
		}
	}
	if _, err := Open(context.Background(), Options{FS: s.Host("mx1").FS(), Dir: "mbox", Host: strings.Repeat("a", MaxHostLen)}); err != nil {
		t.Fatal(err)
	}
	for l, e := range map[string]uint64{"mx1": 0, "mx1+7": 7, "mx1+18446744073709551615": 1<<64 - 1} {
		if got, ok := ownEpoch("mx1", l); !ok || got != e || epochName("mx1", e) != l {
			t.Errorf("ownEpoch(%q) = %d, %v", l, got, ok)
		}
	}
	for _, l := range []string{"mx10", "mx1+0", "mx1+07", "mx1+", "mx1+x", "mx2+1", "mx1+1+2"} {
		if e, ok := ownEpoch("mx1", l); ok {
			t.Errorf("ownEpoch(%q) = %d", l, e)
		}
	}
}

// TestRelocationChunksFit: relocation records split at the size limit,
// each as full as it can be, in order, and each encodes and decodes back.
func TestRelocationChunksFit(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 1))
	var moves []refMove
	o, n := int64(4096), int64(4096)
	for range 5000 {
		o += 8 * (1 + r.Int64N(300))
		n += 8 * (1 + r.Int64N(40))
		moves = append(moves, refMove{o, n})
	}
	from, to := "mx1.example.org", "mx1.example.org+123456"
	chunks := relocationChunks(from, to, moves)
	var all []refMove
	for i, c := range chunks {
		all = append(all, c...)
		rec := &record{gen: 1 << 31, seq: 1 << 60, key: Key{}, ops: []op{{kind: opRelocate, from: from, to: to, moves: c}}}
		target, err := encodeRecord(rec)
		if err != nil {
			t.Fatalf("chunk %d of %d moves: %v", i, len(c), err)
		}
		if i < len(chunks)-1 {
			rec.ops[0].moves = chunks[i][:len(c):len(c)]
			rec.ops[0].moves = append(rec.ops[0].moves, chunks[i+1][0])
			if _, err := encodeRecord(rec); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("chunk %d could have taken one more move", i)
			}
		}
		got, err := decodeRecord("t.1.1", target)
		if err != nil || !slices.Equal(got.ops[0].moves, c) {
			t.Fatalf("chunk %d does not decode back: %v", i, err)
		}
	}
	if !slices.Equal(all, moves) || len(chunks) < 5 {
		t.Fatalf("%d chunks do not concatenate to the moves", len(chunks))
	}
}

// TestRelocateKeepsCountsAndOthers (F1): applying relocations moves only
// the references they name, leaves ModSeq alone, and keeps the per-log
// reference counts equal to a recount, through appends, replaced fields
// and expunges in random order.
func TestRelocateKeepsCountsAndOthers(t *testing.T) {
	r := rand.New(rand.NewPCG(26, 1))
	s := newState()
	seq := uint64(0)
	apply := func(ops ...op) {
		t.Helper()
		seq++
		if _, err := s.apply(&record{gen: 1, seq: seq, ops: ops}); err != nil {
			t.Fatal(err)
		}
		logRefs := s.logRefs
		s2 := *s
		s2.countRefs()
		if !mapsEqual(logRefs, s2.logRefs) {
			t.Fatalf("after seq %d: counts %v, recount %v", seq, logRefs, s2.logRefs)
		}
	}
	apply(op{kind: opCreate, uidValidity: 1, indexID: 1})
	next := map[string]int64{"a": 4096, "b": 4096, "a+9": 4096}
	ref := func(l string) FieldRef {
		next[l] += 64
		return FieldRef{Host: l, Ref: next[l]}
	}
	for range 400 {
		switch k := r.IntN(10); {
		case k < 4:
			f1, f2 := ref([]string{"a", "b"}[r.IntN(2)]), ref("a")
			f1.Name, f2.Name = "x", "y"
			apply(op{kind: opAppend, fields: []FieldRef{f1, f2}})
		case k < 6 && len(s.msgs) > 0:
			f := ref([]string{"a", "b"}[r.IntN(2)])
			f.Name = []string{"x", "z"}[r.IntN(2)]
			apply(op{kind: opField, uid: s.msgs[r.IntN(len(s.msgs))].UID, fields: []FieldRef{f}})
		case k < 8 && len(s.msgs) > 0:
			apply(op{kind: opExpunge, uid: s.msgs[r.IntN(len(s.msgs))].UID})
		default:
			// relocate a random half of a's references into a+9
			before := map[uint32][]FieldRef{}
			modseq := map[uint32]uint64{}
			var mv []refMove
			for _, m := range s.msgs {
				before[m.UID] = slices.Clone(m.fields)
				modseq[m.UID] = m.ModSeq
				for _, f := range m.fields {
					if f.Host == "a" && r.IntN(2) == 0 {
						mv = append(mv, refMove{old: f.Ref})
					}
				}
			}
			slices.SortFunc(mv, func(x, y refMove) int { return int(x.old - y.old) })
			for i := range mv {
				mv[i].new = ref("a+9").Ref
			}
			if len(mv) == 0 {
				continue
			}
			apply(op{kind: opRelocate, from: "a", to: "a+9", moves: mv})
			for _, m := range s.msgs {
				if m.ModSeq != modseq[m.UID] {
					t.Fatalf("a relocation changed message %d's ModSeq", m.UID)
				}
				for i, f := range m.fields {
					was := before[m.UID][i]
					j := slices.IndexFunc(mv, func(x refMove) bool { return x.old == was.Ref })
					switch {
					case was.Host == "a" && j >= 0:
						if f.Host != "a+9" || f.Ref != mv[j].new || f.Name != was.Name {
							t.Fatalf("message %d: %+v relocated to %+v", m.UID, was, f)
						}
					case f != was:
						t.Fatalf("message %d: %+v not in the relocation became %+v", m.UID, was, f)
					}
				}
			}
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestFailedRelocationKeepsOldLog (F2): a rewrite whose relocation records
// were only partly committed (the second one failed) leaves references
// into the old log. A snapshot taken then still holds them, so the old
// log is not removed; the next compaction relocates the rest, and only a
// snapshot after that lets the log go. Every value reads back throughout.
func TestFailedRelocationKeepsOldLog(t *testing.T) {
	defer func(b int) { relocateBudget = b }(relocateBudget)
	relocateBudget = 100
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(27))
	relocations, failAt := 0, 2
	fsys := errorfs.Wrap(s.Host("mx1").FS(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind != errorfs.OpSymlink {
			return nil
		}
		if r, err := decodeRecord("t", op.Path); err == nil && len(r.ops) == 1 && r.ops[0].kind == opRelocate {
			if relocations++; relocations == failAt {
				return errorfs.Errno(syscall.EIO)
			}
		}
		return nil
	}))
	a, err := Open(ctx, Options{FS: fsys, Dir: "mbox", Host: "mx1", FieldCompactRatio: -1, Rand: rand.New(rand.NewPCG(27, 1))})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]map[string]string{}
	for i := range 40 {
		tx := a.Begin()
		tx.Append(NewMessage{Fields: map[string][]byte{"f": fmt.Appendf(nil, "value %d", i)}})
		want[commit(t, tx).UIDs[0]] = map[string]string{"f": fmt.Sprintf("value %d", i)}
	}
	tx := a.Begin()
	for uid := uint32(1); uid <= 10; uid++ {
		tx.Expunge(uid)
		delete(want, uid)
	}
	commit(t, tx)
	if done, err := a.CompactFields(ctx); !done || !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("CompactFields with its second relocation failing = %v, %v", done, err)
	}
	checkValues(t, "mx1", a, want)
	tx = a.Begin()
	tx.SetFlags(11, Seen, 0)
	commit(t, tx) // acknowledged after the switch
	if done, err := a.Compact(ctx); err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	judge := s.Host("judge").FS()
	if done, err := a.CompactFields(ctx); err != nil || !done {
		t.Fatalf("CompactFields relocating the rest = %v, %v", done, err)
	}
	if logs, _, _ := hostLogs(t, judge, "mx1"); !slices.Contains(logs, "mx1") {
		t.Fatalf("log.mx1 was removed while the snapshot referenced it: %v", logs)
	}
	checkValues(t, "mx1", a, want)
	checkValues(t, "mx2 (from the snapshot)", openOn(t, s, "mx2", 2), want)
	if done, err := a.Compact(ctx); err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	if _, err := a.CompactFields(ctx); err != nil {
		t.Fatal(err)
	}
	if logs, _, _ := hostLogs(t, judge, "mx1"); len(logs) != 1 {
		t.Fatalf("after the relocation and a snapshot: logs %v, want one", logs)
	}
	checkValues(t, "mx1", a, want)
	checkValues(t, "mx3", openOn(t, s, "mx3", 3), want)
}

// TestFailedRewriteBacksOff (F4): an automatic rewrite that fails (here a
// value of the old log cannot be read) is not tried again by every
// commit, each of which would leave one more orphan epoch, but only after
// the next snapshot; the orphans are removed then, and the values that
// can be read read back.
func TestFailedRewriteBacksOff(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(28))
	broken := false
	fsys := errorfs.Wrap(s.Host("mx1").FS(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if broken && op.Kind == errorfs.OpReadAt && op.Path == "mbox/log.mx1" && op.Offset >= appendlog.DataStart {
			return errorfs.Errno(syscall.EIO)
		}
		return nil
	}))
	a, err := Open(ctx, Options{FS: fsys, Dir: "mbox", Host: "mx1", FieldCompactMinRecords: 10, Rand: rand.New(rand.NewPCG(28, 1))})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		tx := a.Begin()
		tx.Append(NewMessage{Fields: map[string][]byte{"f": []byte("value")}})
		commit(t, tx)
	}
	broken = true
	epochs := func() int {
		logs, _, _ := hostLogs(t, s.Host("judge").FS(), "mx1")
		return len(logs)
	}
	for uid := uint32(1); uid <= 8; uid++ {
		tx := a.Begin()
		tx.Expunge(uid)
		commit(t, tx) // from the 2nd on, the threshold is reached
	}
	if n := epochs(); n != 2 {
		t.Fatalf("%d logs after 7 commits over the threshold with a failing rewrite: want the old one and one orphan", n)
	}
	broken = false
	if done, err := a.Compact(ctx); err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	tx := a.Begin()
	tx.SetFlags(9, Seen, 0)
	commit(t, tx) // the base moved: tried again, and it works now
	if done, err := a.Compact(ctx); err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	tx = a.Begin()
	tx.SetFlags(10, Seen, 0)
	commit(t, tx) // removes the old log and the orphan
	if n := epochs(); n != 1 {
		t.Fatalf("%d logs in the end, want 1", n)
	}
	checkValues(t, "mx2", openOn(t, s, "mx2", 2), map[uint32]map[string]string{9: {"f": "value"}, 10: {"f": "value"}})
}

// TestRestartBeforeRemovalDoesNotCopyAgain (F4): a process that stopped
// between its rewrite and the removal leaves an old log nothing
// references; the next process removes it after a snapshot, and does not
// count it as garbage to rewrite (which would copy every live value
// again).
func TestRestartBeforeRemovalDoesNotCopyAgain(t *testing.T) {
	ctx := context.Background()
	s := nfssim.New(nfssim.DefaultConfig(29))
	opt := Options{FS: s.Host("mx1").FS(), Dir: "mbox", Host: "mx1", FieldCompactMinRecords: 10, FieldCompactRatio: -1}
	a, err := Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		tx := a.Begin()
		tx.Append(NewMessage{Fields: map[string][]byte{"f": []byte("value")}})
		commit(t, tx)
	}
	tx := a.Begin()
	for uid := uint32(1); uid <= 10; uid++ {
		tx.Expunge(uid)
	}
	commit(t, tx)
	if done, err := a.CompactFields(ctx); err != nil || !done {
		t.Fatalf("CompactFields = %v, %v", done, err)
	}
	a.Close()
	opt.FieldCompactRatio = 0 // the default from now on
	a, err = Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	judge := s.Host("judge").FS()
	tx = a.Begin()
	tx.Append(NewMessage{Fields: map[string][]byte{"f": []byte("value")}})
	commit(t, tx)
	if logs, _, _ := hostLogs(t, judge, "mx1"); len(logs) != 2 {
		t.Fatalf("logs %v after the first commit of the next process: want the old and the current", logs)
	}
	if done, err := a.Compact(ctx); err != nil || !done {
		t.Fatalf("Compact = %v, %v", done, err)
	}
	tx = a.Begin()
	tx.SetFlags(20, Seen, 0)
	commit(t, tx)
	if logs, _, _ := hostLogs(t, judge, "mx1"); len(logs) != 1 || logs[0] == "mx1" {
		t.Fatalf("logs %v after a snapshot: want only the current", logs)
	}
}
