package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// small are sizes that keep a whole run in well under a second of the
// simulator and a few hundred fsyncs on a local disk.
var small = []string{"-messages", "400", "-batch", "50", "-flag-ops", "20", "-flag-batch", "8", "-flag-batches", "5",
	"-lookups", "200", "-scans", "2", "-opens", "2", "-syncs", "10", "-mixed-ops", "20", "-q"}

func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	code := run(context.Background(), args, &out, &errw)
	return code, out.String(), errw.String()
}

// TestJSONShape runs every workload in both modes of the default run and
// checks the fields that results are compared by across runs and versions.
func TestJSONShape(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	code, out, errs := runArgs(t, append(slices.Clone(small), "-sim", "-dir", dir, "-json", path)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"machine", "config", "environments", "results", "ratios", "started", "command"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("no %q in the JSON", k)
		}
	}
	machine := doc["machine"].(map[string]any)
	for _, k := range []string{"os", "arch", "cpus", "go_version", "hostname"} {
		if _, ok := machine[k]; !ok {
			t.Errorf("machine has no %q", k)
		}
	}
	if cfg := doc["config"].(map[string]any); cfg["messages"].(float64) != 400 || cfg["seed"].(float64) != 1 {
		t.Errorf("config %v", cfg)
	}
	seen := map[string]bool{}
	for _, x := range doc["results"].([]any) {
		r := x.(map[string]any)
		name := r["workload"].(string)
		mode := r["mode"].(string)
		seen[mode+"/"+r["system"].(string)+"/"+name] = true
		if !slices.Contains(workloadNames, name) {
			t.Errorf("workload %q is not one of the fixed names", name)
		}
		for _, k := range []string{"workload", "mode", "hosts", "ops", "ops_per_s", "latency_us", "rpcs_per_op", "bytes_written_per_op", "syncs_per_op"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s/%s has no %q", mode, name, k)
			}
		}
		if r["ops"].(float64) <= 0 || r["hosts"].(float64) < 1 {
			t.Errorf("%s/%s: ops %v hosts %v", mode, name, r["ops"], r["hosts"])
		}
		lat := r["latency_us"].(map[string]any)
		for _, k := range []string{"p50", "p99", "p999"} {
			if _, ok := lat[k].(float64); !ok {
				t.Errorf("%s/%s: latency_us.%s missing", mode, name, k)
			}
		}
		rpcs, _ := r["rpcs_per_op"].(map[string]any)
		switch mode {
		case "sim":
			if rpcs == nil {
				t.Errorf("sim/%s: rpcs_per_op is null", name)
				continue
			}
			total := rpcs["total"].(float64)
			var sum float64
			for k, v := range rpcs {
				if k != "total" {
					sum += v.(float64)
				}
			}
			if d := sum - total; d > 1e-9 || d < -1e-9 {
				t.Errorf("sim/%s: procedures add up to %v, total %v", name, sum, total)
			}
			if name == "flags-durable" && total != 2 {
				t.Errorf("sim/flags-durable: %v RPCs per op, want 2 (SYMLINK + WRITE)", total)
			}
			if name == "sync-idle" && total != 1 {
				t.Errorf("sim/sync-idle: %v RPCs per op, want 1", total)
			}
		case "local":
			if r["rpcs_per_op"] != nil || !strings.HasPrefix(r["rpc_source"].(string), "unavailable") {
				t.Errorf("local/%s: rpcs_per_op %v source %v", name, r["rpcs_per_op"], r["rpc_source"])
			}
			// 16 goroutines (the default -committers) on one Mailbox: groups
			// of 1 to 16, however the scheduler lets them form.
			if g, _ := r["avg_group_size"].(float64); name == "flags-concurrent" && r["system"] == "nfsindex" && (g < 1 || g > 16) {
				t.Errorf("local/flags-concurrent: average group %v, want 1 to 16", r["avg_group_size"])
			}
		}
	}
	for _, mode := range []string{"sim", "local"} {
		for _, w := range workloadNames {
			if !seen[mode+"/nfsindex/"+w] {
				t.Errorf("no %s result for %s", mode, w)
			}
		}
	}
	if !seen["local/raw-floor/flags-durable"] || !seen["local/raw-floor/flags-concurrent"] || seen["sim/raw-floor/flags-durable"] {
		t.Error("the raw floor belongs to the directory run only, beside each durable workload")
	}
	for _, s := range []string{"== sim:", "== local:", "flags-durable", "p99.9", "RPCs/op", "verify: OK", "vs raw-floor"} {
		if !strings.Contains(out, s) {
			t.Errorf("the table has no %q:\n%s", s, out)
		}
	}
	if errs != "" {
		t.Errorf("stderr is not a terminal, yet: %q", errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the run's directory was not removed: %v", ents)
	}
}

// mixedOnSim runs the mixed workload of 3 simulated hosts and returns the
// history and the logs, which verify.
func mixedOnSim(t *testing.T) (*session, []*hostLog) {
	t.Helper()
	cfg, err := parseFlags([]string{"-sim", "-workloads", "mixed", "-mixed-ops", "40"}, &bytes.Buffer{}, false)
	if err != nil {
		t.Fatal(err)
	}
	e := newSimEnv(7, 3)
	t.Cleanup(e.s.Close)
	s := newSession(context.Background(), cfg, e, nil)
	if err := s.run(); err != nil {
		t.Fatal(err)
	}
	if s.verify == nil || !s.verify.OK || s.verify.Commits == 0 || s.verify.Syncs == 0 || s.verify.UIDs == 0 {
		t.Fatalf("the honest run does not verify: %+v", s.verify)
	}
	return s, s.logs
}

// TestVerifyCatchesPlantedViolations plants each kind of violation into an
// honest run (history and logs of 3 simulated hosts) and checks that verify
// rejects it, naming it; the honest run passes.
func TestVerifyCatchesPlantedViolations(t *testing.T) {
	s, logs := mixedOnSim(t)
	in0, err := inspectMixed(s)
	if err != nil {
		t.Fatal(err)
	}
	// firstCommit returns the first commit with appended UIDs of log i.
	firstCommit := func(l *hostLog) int {
		for j, a := range l.acks {
			if a.op == "commit" && len(a.uids) > 0 {
				return j
			}
		}
		t.Fatal("no delivery in the log")
		return -1
	}
	tests := []struct {
		name  string
		plant func(in *inspection, logs []*hostLog)
		want  string
	}{
		{"Honest", func(*inspection, []*hostLog) {}, ""},
		{"FakeAcknowledgement", func(_ *inspection, logs []*hostLog) {
			a := logs[0].acks[firstCommit(logs[0])]
			a.key.N += 1 << 40
			a.uids = nil
			logs[0].acks = append(logs[0].acks, a)
		}, "LOST"},
		{"RecordLost", func(in *inspection, logs []*hostLog) {
			a := logs[1].acks[firstCommit(logs[1])]
			in.Entries = slices.DeleteFunc(in.Entries, func(e entry) bool { return e.Seq == a.seq })
		}, "LOST"},
		{"AppliedTwice", func(in *inspection, logs []*hostLog) {
			a := logs[2].acks[firstCommit(logs[2])]
			in.Entries[len(in.Entries)-1].Key = a.key
		}, "DUPLICATE"},
		{"WrongPlace", func(_ *inspection, logs []*hostLog) {
			j := firstCommit(logs[0])
			logs[0].acks[j].seq--
		}, "but the history has it at"},
		{"OtherOrder", func(_ *inspection, logs []*hostLog) {
			for j, a := range logs[1].acks {
				if a.op == "sync" {
					logs[1].acks[j].digest ^= 1
					return
				}
			}
		}, "ORDER differs"},
		{"UIDsDescend", func(_ *inspection, logs []*hostLog) {
			j := firstCommit(logs[0])
			logs[0].acks[j].uids = []uint32{1 << 30}
		}, "UIDs:"},
		{"HistoryCut", func(in *inspection, _ []*hostLog) {
			in.Entries = in.Entries[:len(in.Entries)/2]
		}, "history ends"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := cloneInspection(in0)
			ls := cloneLogs(logs)
			tc.plant(&in, ls)
			rep := verifyLogs(in, ls)
			if tc.want == "" {
				if !rep.OK {
					t.Fatalf("honest run rejected:\n%s", rep)
				}
				return
			}
			if rep.OK || rep.Violations == 0 || !strings.Contains(rep.String(), tc.want) || !strings.Contains(rep.String(), "FAILED") {
				t.Fatalf("planted %s, verify said:\n%s\nwant a failure naming %q", tc.name, rep, tc.want)
			}
		})
	}
}

// TestMultiHostRunThenVerify runs two hosts of one multi-host run as two
// invocations of the command on one directory: they meet at the barrier,
// log, and "nfsbench verify" passes. Then losses are planted on disk, in a
// log and in the index, and verify exits 1 with a report naming them.
func TestMultiHostRunThenVerify(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	codes := make([]int, 2)
	outs := make([]string, 2)
	for i, h := range []string{"alpha", "beta"} {
		wg.Go(func() {
			var o, e bytes.Buffer
			codes[i] = run(context.Background(), []string{"-dir", dir, "-host", h, "-run-id", "t1", "-hosts", "2",
				"-mixed-ops", "25", "-q", "-barrier-timeout", "1m"}, &o, &e)
			outs[i] = o.String() + e.String()
		})
	}
	wg.Wait()
	for i := range codes {
		if codes[i] != 0 {
			t.Fatalf("host %d: exit %d\n%s", i, codes[i], outs[i])
		}
		if !strings.Contains(outs[i], "nfsbench verify -dir "+dir+" -run-id t1") {
			t.Errorf("host %d does not say how to verify:\n%s", i, outs[i])
		}
	}
	code, out, errs := runArgs(t, "verify", "-dir", dir, "-run-id", "t1")
	if code != 0 || !strings.Contains(out, "verify: OK") || !strings.Contains(out, "of 2 hosts each") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	rd := filepath.Join(dir, "nfsbench-t1")

	// A third host with a name already used is refused.
	code, _, errs = runArgs(t, "-dir", dir, "-host", "alpha", "-run-id", "t1", "-hosts", "2", "-q")
	if code == 0 || !strings.Contains(errs, "already used") {
		t.Errorf("a reused host name: exit %d, %s", code, errs)
	}

	// Plant a loss in a log: an acknowledged commit the index never had.
	logPath := filepath.Join(rd, logName("alpha"))
	orig, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	fake := `{"op":"commit","kind":"deliver","owner":"123456789abcdef","n":1,"seq":2,"uids":[1]}` + "\n"
	end := bytes.LastIndex(orig[:len(orig)-1], []byte("\n")) + 1 // before the end line
	planted := append(append(slices.Clone(orig[:end]), fake...), orig[end:]...)
	if err := os.WriteFile(logPath, planted, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runArgs(t, "verify", "-dir", dir, "-run-id", "t1")
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "LOST") || !strings.Contains(out, "alpha line") ||
		!strings.Contains(errs, "verification FAILED") {
		t.Fatalf("planted a fake acknowledgement: exit %d\n%s%s", code, out, errs)
	}
	// A killed host leaves a torn last line: ignored and reported, not a
	// violation.
	if err := os.WriteFile(logPath, append(slices.Clone(orig[:end]), `{"op":"comm`...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runArgs(t, "verify", "-dir", dir, "-run-id", "t1")
	if code != 0 || !strings.Contains(out, "partial line") || !strings.Contains(out, "no end") {
		t.Fatalf("a torn log: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(logPath, orig, 0o644); err != nil {
		t.Fatal(err)
	}

	// Plant a loss in the index: remove an acknowledged record.
	logs, err := readLogs(rd)
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	for _, a := range logs[1].acks {
		if a.op == "commit" {
			seq = a.seq
			break
		}
	}
	rec := filepath.Join(rd, mixedDir, "t.1."+itoa(seq))
	if err := os.Remove(rec); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runArgs(t, "verify", "-dir", dir, "-run-id", "t1")
	if code != 1 || !strings.Contains(out+errs, "t.1."+itoa(seq)) {
		t.Fatalf("removed record %s: exit %d\n%s%s", rec, code, out, errs)
	}
}

// TestBadInput: clear errors and exit status 2, never a panic.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "nfsbench-foreign")
	if err := os.MkdirAll(filepath.Join(foreign, mixedDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "photo.jpg"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notIndex := filepath.Join(dir, "nfsbench-notindex", mixedDir)
	if err := os.MkdirAll(notIndex, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notIndex, "cur"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "nfsbench-empty", mixedDir)
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"MissingDir", []string{"-dir", filepath.Join(dir, "nope"), "-q"}, "no such directory"},
		{"NotADir", []string{"-dir", file, "-q"}, "not a directory"},
		{"JoinForeignRun", []string{"-dir", dir, "-host", "mx1", "-run-id", "foreign", "-q"}, "not an nfsbench run directory"},
		{"VerifyMissingDir", []string{"verify", "-dir", filepath.Join(dir, "nope"), "-run-id", "x"}, "no such directory"},
		{"VerifyNoRun", []string{"verify", "-dir", dir, "-run-id", "x"}, `no run "x"`},
		{"VerifyForeignRun", []string{"verify", "-dir", dir, "-run-id", "foreign"}, "photo.jpg"},
		{"VerifyNotAnIndex", []string{"verify", "-dir", dir, "-run-id", "notindex"}, "not an nfsindex index directory"},
		{"VerifyEmptyIndex", []string{"verify", "-dir", dir, "-run-id", "empty"}, "not an nfsindex index"},
		{"BadFlag", []string{"-hosts", "0"}, "-hosts must be at least 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runArgs(t, tc.args...)
			if code != 2 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q (stdout %q), want 2 and %q", code, errs, out, tc.want)
			}
		})
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runArgs(t, "-dir", ro, "-q")
		if code != 2 || !strings.Contains(errs, "not writable") {
			t.Errorf("read-only directory: exit %d, %q", code, errs)
		}
	}
}
