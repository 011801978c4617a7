package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/vfs/osfs"
	"golang.org/x/sys/unix"
)

// verify checks the engine workload's logs (work-*.jsonl under RUNDIR)
// against the mailbox in EXPORT/<dir>, read on the host:
//
//   - every acknowledged commit is in the final state exactly once
//     (Inspection.Keys; and in Inspection.Entries at the acknowledged seq
//     when it was not folded into a snapshot); a commit whose outcome
//     Mailbox.Committed resolved is there exactly when it said so; one
//     whose outcome is unknown (its guest was killed) at most once;
//   - one order: no two acknowledged commits share a seq, and every
//     (seq, digest) any guest observed (after its commits, syncs, opens)
//     agrees with every other guest's and with the published records';
//   - UIDs ascend along the order;
//   - the final state holds every acknowledged message with its cached
//     field, and every acknowledged flag.
func verify(args []string) error {
	fl := flag.NewFlagSet("verify", flag.ExitOnError)
	dir := fl.String("dir", "mbox", "mailbox directory in the export")
	fl.Parse(args)
	if fl.NArg() < 2 {
		return fmt.Errorf("usage: nfse2e verify [-dir mbox] EXPORT RUNDIR...")
	}
	export := fl.Arg(0)
	ctx := context.Background()
	var evs []workEvent
	logs, err := findGlob(fl.Args()[1:], "work-*.jsonl")
	if err != nil {
		return err
	}
	for _, f := range logs {
		e, err := readWorkLog(f)
		if err != nil {
			return err
		}
		evs = append(evs, e...)
	}
	if len(evs) == 0 {
		return fmt.Errorf("no workload logs under %v", fl.Args()[1:])
	}
	fsys, err := osfs.New(export)
	if err != nil {
		return err
	}
	defer fsys.Close()
	insp, err := engine.Inspect(ctx, fsys, *dir)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	var fails []string
	fail := func(format string, a ...any) { fails = append(fails, fmt.Sprintf(format, a...)) }

	type key struct{ o, n uint64 }
	keyCount := map[key]int{}
	for o, ns := range insp.Keys {
		for _, n := range ns {
			keyCount[key{o, n}]++
		}
	}
	for k, c := range keyCount {
		if c > 1 {
			fail("key %x/%d is in the final state %d times", k.o, k.n, c)
		}
	}
	entryOf := map[key]engine.Entry{}
	var prevSeq uint64 = insp.Base
	for _, e := range insp.Entries {
		if e.Seq <= prevSeq {
			fail("published records out of order: seq %d after %d", e.Seq, prevSeq)
		}
		prevSeq = e.Seq
		k := key{e.Key.Owner, e.Key.N}
		if _, dup := entryOf[k]; dup && e.Key != (engine.Key{}) {
			fail("key %x/%d published twice (seq %d)", k.o, k.n, e.Seq)
		}
		entryOf[k] = e
	}
	ownerKeys := map[uint64]int{}
	for o, ns := range insp.Keys {
		ownerKeys[o] = len(ns)
	}

	// observations of (seq -> digest), by whom
	type obs struct {
		digest uint64
		who    string
	}
	seen := map[uint64][]obs{}
	note := func(seq, dig uint64, who string) {
		if seq == 0 {
			return
		}
		seen[seq] = append(seen[seq], obs{dig, who})
	}
	for _, e := range insp.Entries {
		note(e.Seq, e.Digest, "published record")
	}
	if insp.Base > 0 {
		note(insp.Base, insp.BaseDigest, "snapshot")
	}
	var lat []float64 // acknowledged commits' latencies
	acked := map[key]workEvent{}
	tried := map[key]workEvent{}
	resolved := map[key]bool{}
	var acks []workEvent
	stats := map[string]int{}
	hosts := map[string]bool{}
	for _, e := range evs {
		who := fmt.Sprintf("%s/%d", e.Host, e.Inc)
		hosts[who] = true
		stats[e.Ev]++
		switch e.Ev {
		case "try":
			tried[key{e.Owner, e.N}] = e
		case "ack":
			acked[key{e.Owner, e.N}] = e
			acks = append(acks, e)
			lat = append(lat, e.Ms)
			note(e.DSeq, e.Digest, who+" after commit")
		case "resolved":
			resolved[key{e.Owner, e.N}] = e.OK
		case "sync", "final", "open", "compact":
			if e.Err == "" {
				note(e.DSeq, e.Digest, who+" "+e.Ev)
			}
			if e.Ev == "compact" && e.OK {
				stats["compacted"]++
			}
		}
	}
	for k, e := range acked {
		if c := keyCount[k]; c != 1 {
			if ownerKeys[k.o] >= 256 {
				fail("acknowledged %s commit %x/%d (seq %d by %s/%d) not checkable: owner has %d keys (window 256)", e.Kind, k.o, k.n, e.Seq, e.Host, e.Inc, ownerKeys[k.o])
			} else {
				fail("acknowledged %s commit %x/%d (seq %d by %s/%d) is in the final state %d times", e.Kind, k.o, k.n, e.Seq, e.Host, e.Inc, c)
			}
		}
		if e.Seq > insp.Base {
			if pe, ok := entryOf[k]; !ok {
				fail("acknowledged commit %x/%d seq %d is not among the published records after the snapshot (base %d)", k.o, k.n, e.Seq, insp.Base)
			} else if pe.Seq != e.Seq {
				fail("acknowledged commit %x/%d: acknowledged seq %d, published at %d", k.o, k.n, e.Seq, pe.Seq)
			}
		}
	}
	unknown := 0
	for k, e := range tried {
		if _, ok := acked[k]; ok {
			continue
		}
		c := keyCount[k]
		if ok, r := resolved[k]; r {
			want := 0
			if ok {
				want = 1
			}
			if c != want {
				fail("commit %x/%d resolved committed=%v by Committed, but in the final state %d times", k.o, k.n, ok, c)
			}
			continue
		}
		unknown++
		if c > 1 {
			fail("unacknowledged commit %x/%d (%s/%d) is in the final state %d times", k.o, k.n, e.Host, e.Inc, c)
		}
	}
	// one order
	agree, multi := 0, 0
	for seq, list := range seen {
		whos := map[string]bool{}
		for _, o := range list {
			whos[o.who] = true
			if o.digest != list[0].digest {
				fail("seq %d: digest %x (%s) != %x (%s)", seq, o.digest, o.who, list[0].digest, list[0].who)
			}
		}
		agree++
		if len(whos) > 1 {
			multi++
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].Seq < acks[j].Seq })
	var maxUID uint32
	for i, a := range acks {
		if i > 0 && a.Seq == acks[i-1].Seq {
			fail("two acknowledged commits at seq %d (%s/%d and %s/%d)", a.Seq, a.Host, a.Inc, acks[i-1].Host, acks[i-1].Inc)
		}
		for _, u := range a.UIDs {
			if u <= maxUID {
				fail("UID %d at seq %d does not ascend (an earlier commit gave %d)", u, a.Seq, maxUID)
			}
			maxUID = u
		}
	}
	if insp.Header.HighestModSeq < lastSeq(acks) {
		fail("HighestModSeq %d below the last acknowledged seq %d", insp.Header.HighestModSeq, lastSeq(acks))
	}
	if insp.Header.UIDNext <= maxUID {
		fail("UIDNext %d not above the last acknowledged UID %d", insp.Header.UIDNext, maxUID)
	}

	// final state: open a copy of the mailbox (Open may write) and look
	// for every acknowledged message, field and flag
	msgs, fieldOK, err := finalState(ctx, export, *dir, acks)
	if err != nil {
		fail("final state: %v", err)
	} else {
		for _, a := range acks {
			switch a.Kind {
			case "append":
				for j, u := range a.UIDs {
					if _, ok := msgs[u]; !ok {
						fail("acknowledged UID %d (seq %d) missing from the final state", u, a.Seq)
					} else if j < len(a.Files) && fieldOK[u] != a.Files[j] {
						fail("UID %d: field file = %q, acknowledged %q", u, fieldOK[u], a.Files[j])
					}
				}
			case "flags":
				if m, ok := msgs[a.UID]; !ok {
					fail("flags of UID %d acknowledged at seq %d, message missing", a.UID, a.Seq)
				} else if m.Flags&engine.Flags(a.Flags) == 0 {
					fail("flag %d of UID %d acknowledged at seq %d, not set in the final state (flags %d)", a.Flags, a.UID, a.Seq, m.Flags)
				}
			}
		}
	}
	var hl []string
	for h := range hosts {
		hl = append(hl, h)
	}
	sort.Strings(hl)
	fmt.Printf("verify: guests %s; %d acknowledged commits, %d failed+resolved, %d unknown (killed in flight); %d syncs, %d compactions done\n",
		strings.Join(hl, " "), len(acks), len(resolved), unknown, stats["sync"], stats["compacted"])
	fmt.Printf("verify: final state seq %d (snapshot base %d, %d records after it), %d messages, UIDNext %d; %d seqs observed, %d by more than one guest or by the server's records, all digests agree=%v\n",
		insp.Header.HighestModSeq, insp.Base, len(insp.Entries), insp.Messages, insp.Header.UIDNext, agree, multi, len(fails) == 0)
	if len(lat) > 0 {
		sort.Float64s(lat)
		fmt.Printf("verify: commit latency ms (TCG guests): median %.1f, p90 %.1f, max %.1f\n", lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1])
	}
	if len(fails) > 0 {
		for _, f := range fails {
			fmt.Println("VERIFY FAIL:", f)
		}
		return fmt.Errorf("%d check(s) failed", len(fails))
	}
	fmt.Println("verify: OK: every acknowledged commit exactly once, one order, UIDs ascend, acknowledged messages/fields/flags present")
	return nil
}

func lastSeq(a []workEvent) uint64 {
	if len(a) == 0 {
		return 0
	}
	return a[len(a)-1].Seq
}

func finalState(ctx context.Context, export, dir string, acks []workEvent) (map[uint32]engine.Message, map[uint32]string, error) {
	tmp, err := os.MkdirTemp("", "nfse2e-verify-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(filepath.Join(export, dir), filepath.Join(tmp, dir)); err != nil {
		return nil, nil, err
	}
	fsys, err := osfs.New(tmp)
	if err != nil {
		return nil, nil, err
	}
	defer fsys.Close()
	m, err := engine.Open(ctx, engine.Options{FS: fsys, Dir: dir, Host: "verifier", Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	msgs := map[uint32]engine.Message{}
	fields := map[uint32]string{}
	var ferr error
	m.View().All(func(_ int, msg engine.Message) bool {
		msgs[msg.UID] = msg
		if ref, ok := msg.Field("file"); ok {
			v, err := m.FieldValue(ctx, ref)
			if err != nil && ferr == nil {
				ferr = fmt.Errorf("UID %d field: %w", msg.UID, err)
			}
			fields[msg.UID] = string(v)
		}
		return true
	})
	return msgs, fields, ferr
}

// copyTree copies a directory of regular files and symlinks.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(t, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, t)
		default:
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.Create(t)
			if err != nil {
				return err
			}
			if err := copySparse(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
	})
}

// copySparse copies in's data extents only and sets out's size: a dead
// generation's tail is a sparse file whose size is past 2^40 (the engine's
// dead mark), which a plain copy would fill with a terabyte of zeros.
func copySparse(out, in *os.File) error {
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	for off := int64(0); off < size; {
		data, err := in.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return err
		}
		hole, err := in.Seek(data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(size)
}

func findGlob(dirs []string, pattern string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ok, _ := filepath.Match(pattern, de.Name()); ok && !de.IsDir() {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

func readWorkLog(path string) ([]workEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []workEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e workEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// a line torn by the guest's death: ignore it (an ack that was
			// not written whole was not reported to anyone)
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
