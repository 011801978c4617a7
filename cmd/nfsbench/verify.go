package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nfsindex/nfsindex/engine"
)

// logLine is one line of a host's log of acknowledged operations
// (log.<host>.jsonl in the run's directory), one JSON object per line,
// written with one write(2) after the operation returned: a host killed
// mid-run leaves every line it wrote, and at most a torn last line.
//
//	{"op":"start","host":"mx1","run":"r1"}
//	{"op":"commit","kind":"deliver","owner":"9f..","n":3,"seq":17,"uids":[12],"digest":"a1.."}
//	{"op":"sync","seq":19,"digest":"c4.."}
//	{"op":"end","ops":300}
//
// owner and digest are hexadecimal (64-bit values do not survive every
// JSON reader as numbers). digest is the state digest the host held right
// after the operation (engine.Mailbox.Digest); it is left out when the
// host had already applied more than its own commit.
type logLine struct {
	Op     string   `json:"op"`
	Host   string   `json:"host,omitempty"`
	Run    string   `json:"run,omitempty"`
	Kind   string   `json:"kind,omitempty"`
	Owner  string   `json:"owner,omitempty"`
	N      uint64   `json:"n,omitempty"`
	Seq    uint64   `json:"seq,omitempty"`
	UIDs   []uint32 `json:"uids,omitempty"`
	Digest string   `json:"digest,omitempty"`
	Ops    int      `json:"ops,omitempty"`
}

// ack is one acknowledged operation of a host.
type ack struct {
	line      int // in the host's log, from 1
	op        string
	kind      string
	key       engine.Key
	seq       uint64
	uids      []uint32
	digest    uint64
	hasDigest bool
}

// hostLog is a host's log: kept in memory, and appended to a file when the
// run is on a real directory.
type hostLog struct {
	host  string
	acks  []ack
	ended bool // the host finished and wrote its end line
	torn  bool // the file ends in a partial line
	f     *os.File
	lines int
}

func (l *hostLog) write(ln logLine) error {
	l.lines++
	if l.f == nil {
		return nil
	}
	b, err := json.Marshal(ln)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("log of %s: %w", l.host, err)
	}
	return nil
}

// commit logs an acknowledged commit.
func (l *hostLog) commit(mb *engine.Mailbox, kind string, key engine.Key, res engine.Result) error {
	a := ack{line: l.lines + 1, op: "commit", kind: kind, key: key, seq: res.Seq, uids: res.UIDs}
	if applied, dig := mb.Digest(); applied == res.Seq {
		a.digest, a.hasDigest = dig, true
	}
	l.acks = append(l.acks, a)
	return l.write(a.line_())
}

// sync logs a Sync and the state it reached.
func (l *hostLog) sync(mb *engine.Mailbox) error {
	applied, dig := mb.Digest()
	a := ack{line: l.lines + 1, op: "sync", seq: applied, digest: dig, hasDigest: true}
	l.acks = append(l.acks, a)
	return l.write(a.line_())
}

func (a ack) line_() logLine {
	ln := logLine{Op: a.op, Kind: a.kind, Seq: a.seq, UIDs: a.uids}
	if a.op == "commit" {
		ln.Owner, ln.N = strconv.FormatUint(a.key.Owner, 16), a.key.N
	}
	if a.hasDigest {
		ln.Digest = strconv.FormatUint(a.digest, 16)
	}
	return ln
}

// close writes the end line (if the host finished) and makes the file
// durable.
func (l *hostLog) close(finished bool) error {
	if finished {
		l.ended = true
		if err := l.write(logLine{Op: "end", Ops: len(l.acks)}); err != nil {
			return err
		}
	}
	if l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// logName is the file name of a host's log in the run's directory.
func logName(host string) string { return "log." + host + ".jsonl" }

// createLog creates host's log file in dir; the name must be new, so two
// hosts of one run cannot share a name.
func createLog(dir, host, run string) (*hostLog, error) {
	p := filepath.Join(dir, logName(host))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%s exists: host name %s was already used in run %s (each host needs its own -host)", p, host, run)
	}
	if err != nil {
		return nil, err
	}
	l := &hostLog{host: host, f: f}
	if err := l.write(logLine{Op: "start", Host: host, Run: run}); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// parseLog reads a host's log. A last line without its newline is a write
// the host was killed in: it is dropped and reported (torn). Anything else
// that does not parse is an error.
func parseLog(host string, data []byte) (*hostLog, error) {
	l := &hostLog{host: host}
	lines := bytes.Split(data, []byte("\n"))
	if last := lines[len(lines)-1]; len(last) > 0 {
		l.torn = true
	}
	lines = lines[:len(lines)-1]
	for i, raw := range lines {
		var ln logLine
		if err := json.Unmarshal(raw, &ln); err != nil {
			return nil, fmt.Errorf("log of %s, line %d: %v", host, i+1, err)
		}
		a := ack{line: i + 1, op: ln.Op, kind: ln.Kind, seq: ln.Seq, uids: ln.UIDs}
		switch ln.Op {
		case "start":
			if ln.Host != host {
				return nil, fmt.Errorf("log of %s, line %d: written by host %q", host, i+1, ln.Host)
			}
			continue
		case "end":
			l.ended = true
			continue
		case "commit":
			owner, err := strconv.ParseUint(ln.Owner, 16, 64)
			if err != nil || owner == 0 || ln.N == 0 || ln.Seq == 0 {
				return nil, fmt.Errorf("log of %s, line %d: a commit needs owner, n and seq", host, i+1)
			}
			a.key = engine.Key{Owner: owner, N: ln.N}
		case "sync":
		default:
			return nil, fmt.Errorf("log of %s, line %d: unknown op %q", host, i+1, ln.Op)
		}
		if ln.Digest != "" {
			d, err := strconv.ParseUint(ln.Digest, 16, 64)
			if err != nil {
				return nil, fmt.Errorf("log of %s, line %d: digest %q", host, i+1, ln.Digest)
			}
			a.digest, a.hasDigest = d, true
		}
		l.acks = append(l.acks, a)
	}
	return l, nil
}

// readLogs reads every host log in dir.
func readLogs(dir string) ([]*hostLog, error) {
	names, err := filepath.Glob(filepath.Join(dir, "log.*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var logs []*hostLog
	for _, p := range names {
		host := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "log."), ".jsonl")
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		l, err := parseLog(host, data)
		if err != nil {
			return nil, err
		}
		logs = append(logs, l)
	}
	return logs, nil
}

// VerifyReport is what verify found.
type VerifyReport struct {
	OK      bool `json:"ok"`
	Hosts   int  `json:"hosts"`
	Commits int  `json:"acknowledged_commits"`
	Syncs   int  `json:"syncs"`
	UIDs    int  `json:"uids"`
	// Records is the number of records in the history after the newest
	// snapshot, which holds everything up to Base.
	Records int    `json:"history_records"`
	Base    uint64 `json:"snapshot_base"`
	// Folded commits were folded into the snapshot: found by their keys
	// (FoldedByKey) or too old for the keys the index remembers
	// (Unverifiable; only with -auto-compact).
	FoldedByKey  int `json:"folded_found_by_key"`
	Unverifiable int `json:"unverifiable"`
	// Unfinished lists hosts whose log has no end line (killed, or still
	// running), Torn those whose last line was cut.
	Unfinished []string `json:"unfinished_hosts,omitempty"`
	Torn       []string `json:"torn_logs,omitempty"`
	// Problems are the violations, the first maxProblems of Violations.
	Problems   []string `json:"problems,omitempty"`
	Violations int      `json:"violations"`
}

const maxProblems = 40

func (r *VerifyReport) problem(format string, args ...any) {
	r.Violations++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// keyWindow is how many idempotency keys the index remembers per owner
// (engine.Inspection.Keys).
const keyWindow = 256

// verifyLogs checks the hosts' logs against the published order in:
//
//   - every acknowledged commit is in the history exactly once (by its
//     idempotency key), at the sequence number its Commit returned, with
//     as many appends as UIDs it was given;
//   - the state digest a host held after each of its commits and Syncs is
//     the history's digest at that sequence number: every host applied
//     the same order;
//   - UIDs ascend along the order, and each host's sequence numbers never
//     go back.
func verifyLogs(in engine.Inspection, logs []*hostLog) VerifyReport {
	r := VerifyReport{Hosts: len(logs), Records: len(in.Entries), Base: in.Base}
	bySeq := map[uint64]engine.Entry{}
	keySeqs := map[engine.Key][]uint64{}
	want := in.Base + 1
	for _, e := range in.Entries {
		if e.Seq != want {
			r.problem("history: seq %d where %d was due: a hole or a duplicate in the order", e.Seq, want)
		}
		want = e.Seq + 1
		bySeq[e.Seq] = e
		if e.Key != (engine.Key{}) {
			keySeqs[e.Key] = append(keySeqs[e.Key], e.Seq)
		}
	}
	last := in.Base
	if n := len(in.Entries); n > 0 {
		last = in.Entries[n-1].Seq
	}
	digestAt := func(seq uint64) (uint64, bool) {
		if seq == in.Base && in.Base > 0 {
			return in.BaseDigest, true
		}
		e, ok := bySeq[seq]
		return e.Digest, ok
	}
	type uidRun struct {
		seq  uint64
		host string
		uids []uint32
	}
	var runs []uidRun
	for _, l := range logs {
		if !l.ended {
			r.Unfinished = append(r.Unfinished, l.host)
		}
		if l.torn {
			r.Torn = append(r.Torn, l.host)
		}
		var prevSeq, prevCommit uint64
		for _, a := range l.acks {
			where := fmt.Sprintf("%s line %d", l.host, a.line)
			if a.seq < prevSeq {
				r.problem("%s: %s at seq %d after this host had reached seq %d: its order went back", where, a.op, a.seq, prevSeq)
			}
			prevSeq = max(prevSeq, a.seq)
			if a.seq > last {
				r.problem("%s: %s at seq %d, but the history ends at %d: LOST (an acknowledged state is not in the index)", where, a.op, a.seq, last)
				continue
			}
			switch a.op {
			case "sync":
				r.Syncs++
			case "commit":
				r.Commits++
				if a.seq <= prevCommit {
					r.problem("%s: commit at seq %d after this host's commit at %d", where, a.seq, prevCommit)
				}
				prevCommit = a.seq
				if len(a.uids) > 0 {
					runs = append(runs, uidRun{seq: a.seq, host: l.host, uids: a.uids})
					r.UIDs += len(a.uids)
				}
				seqs := keySeqs[a.key]
				switch {
				case len(seqs) > 1:
					r.problem("%s: commit %s (key %x/%d) is in the history %d times, at seqs %v: DUPLICATE", where, a.kind, a.key.Owner, a.key.N, len(seqs), seqs)
					continue
				case len(seqs) == 0 && a.seq <= in.Base:
					keys := in.Keys[a.key.Owner]
					switch {
					case slices.Contains(keys, a.key.N):
						r.FoldedByKey++
					case len(keys) >= keyWindow && keys[0] > a.key.N:
						r.Unverifiable++
					default:
						r.problem("%s: commit %s (key %x/%d) acknowledged at seq %d is not in the snapshot's keys: LOST", where, a.kind, a.key.Owner, a.key.N, a.seq)
					}
					continue
				case len(seqs) == 0:
					r.problem("%s: commit %s (key %x/%d) acknowledged at seq %d is not in the history: LOST", where, a.kind, a.key.Owner, a.key.N, a.seq)
					continue
				case seqs[0] != a.seq:
					r.problem("%s: commit %s (key %x/%d) was acknowledged at seq %d but the history has it at %d", where, a.kind, a.key.Owner, a.key.N, a.seq, seqs[0])
					continue
				}
				if e := bySeq[a.seq]; e.Appends != len(a.uids) {
					r.problem("%s: commit at seq %d was given %d UIDs, the history's record appends %d messages", where, a.seq, len(a.uids), e.Appends)
				}
			}
			if !a.hasDigest {
				continue
			}
			if d, ok := digestAt(a.seq); !ok {
				if a.seq > in.Base || in.Base == 0 {
					r.problem("%s: %s at seq %d has no record in the history", where, a.op, a.seq)
				}
			} else if d != a.digest {
				r.problem("%s: after seq %d this host held state %x, the history gives %x: ORDER differs (the host applied another sequence)", where, a.seq, a.digest, d)
			}
		}
	}
	slices.SortFunc(runs, func(a, b uidRun) int {
		if a.seq != b.seq {
			if a.seq < b.seq {
				return -1
			}
			return 1
		}
		return strings.Compare(a.host, b.host)
	})
	var prevUID uint32
	var prevSeq uint64
	for _, u := range runs {
		for _, uid := range u.uids {
			if uid <= prevUID {
				r.problem("UIDs: %s's commit at seq %d got UID %d, not above UID %d given at seq %d", u.host, u.seq, uid, prevUID, prevSeq)
			}
			prevUID, prevSeq = uid, u.seq
		}
	}
	r.OK = r.Violations == 0
	return r
}

// String is the report for people.
func (r VerifyReport) String() string {
	var b strings.Builder
	if r.OK {
		fmt.Fprintf(&b, "verify: OK: %d acknowledged commits of %s each found exactly once, at the sequence number it was told "+
			"and with the state digest its host saw; %d Syncs saw the history's state; %d UIDs ascend; history: %d records after the snapshot at %d",
			r.Commits, plural(r.Hosts, "host"), r.Syncs, r.UIDs, r.Records, r.Base)
	} else {
		fmt.Fprintf(&b, "verify: FAILED: %d violations (%d acknowledged commits, %d Syncs of %s; history: %d records after the snapshot at %d)",
			r.Violations, r.Commits, r.Syncs, plural(r.Hosts, "host"), r.Records, r.Base)
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "\n  %s", p)
		}
		if r.Violations > len(r.Problems) {
			fmt.Fprintf(&b, "\n  ... and %d more", r.Violations-len(r.Problems))
		}
	}
	if r.FoldedByKey > 0 || r.Unverifiable > 0 {
		fmt.Fprintf(&b, "\n  %d commits folded into the snapshot were found by key; %d were too old to check", r.FoldedByKey, r.Unverifiable)
	}
	if len(r.Unfinished) > 0 {
		fmt.Fprintf(&b, "\n  hosts whose log has no end (killed or still running): %s", strings.Join(r.Unfinished, ", "))
	}
	if len(r.Torn) > 0 {
		fmt.Fprintf(&b, "\n  logs ending in a partial line (ignored): %s", strings.Join(r.Torn, ", "))
	}
	return b.String()
}

// verifyError is a failed verification: exit status 1.
type verifyError struct{ rep VerifyReport }

func (e *verifyError) Error() string { return e.rep.String() }
