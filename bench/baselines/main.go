// Command baselines runs nfsbench's local workloads on bbolt and on SQLite
// (modernc.org/sqlite, WAL, synchronous=FULL) at the same durability as
// the nfsindex engine: every commit is durable when it returns. It lives
// in its own module so that the engine's go.mod keeps only its own
// dependencies.
//
// nfsbench runs it with -baselines and puts its rows beside the engine's,
// with ratios; it also runs alone:
//
//	cd bench/baselines && go run . -dir /tmp
//
// The data model is the engine's, in each store's own terms: one record
// per message (UID, flags, MODSEQ, cached field bytes) keyed by UID, and a
// header (UIDNEXT, HIGHESTMODSEQ, message count) that every commit
// updates, as the engine's total order gives every commit a new MODSEQ.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result has the shape of nfsbench's results (cmd/nfsbench, measure.go).
type Result struct {
	System      string             `json:"system"`
	Workload    string             `json:"workload"`
	Mode        string             `json:"mode"`
	Hosts       int                `json:"hosts"`
	Ops         int                `json:"ops"`
	ItemsPerOp  float64            `json:"items_per_op"`
	OpsPerS     float64            `json:"ops_per_s"`
	Seconds     float64            `json:"seconds"`
	Clock       string             `json:"clock"`
	WallSeconds float64            `json:"wall_seconds"`
	LatencyUS   Latency            `json:"latency_us"`
	RPCsPerOp   map[string]float64 `json:"rpcs_per_op"`
	RPCSource   string             `json:"rpc_source"`
	BytesPerOp  float64            `json:"bytes_written_per_op"`
	// SyncsPerOp is unknown for the baselines (they call fsync inside the
	// library): null.
	SyncsPerOp *float64 `json:"syncs_per_op"`
	Notes      []string `json:"notes,omitempty"`
}

// Latency holds percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

// store is one baseline's implementation of the workloads' operations.
type store interface {
	name() string
	// create makes an empty mailbox.
	create(path string) error
	// appendMsgs appends n messages in one durable transaction.
	appendMsgs(n int, field []byte) error
	// setFlags changes the flags of uids in one durable transaction.
	setFlags(uids []uint32, add, remove uint16) error
	// lookup reads one message by UID.
	lookup(uid uint32) (bool, error)
	// scan reads every message's flags and returns how many it read.
	scan() (int, error)
	// expunge removes uids in one durable transaction.
	expunge(uids []uint32) error
	// compact reclaims the space of expunged messages; compactHow says
	// how.
	compact() error
	compactHow() string
	// reopen opens the closed mailbox and reads its header (UIDNEXT,
	// HIGHESTMODSEQ, count): what a server needs before it serves.
	reopen() (int, error)
	close() error
}

type config struct {
	dir                             string
	workloads                       []string
	messages, batch, fieldBytes     int
	flagOps, flagBatch, flagBatches int
	lookups, scans, opens           int
	expunge                         float64
	seed                            uint64
	jsonPath                        string
	systems                         []string
	mode                            string
}

var allWorkloads = []string{"build", "flags-durable", "flags-batched", "lookup", "scan", "expunge-compact", "open"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "baselines: %v\n", err)
		return 2
	}
	var results []Result
	for _, sys := range c.systems {
		var s store
		switch sys {
		case "bbolt":
			s = &boltStore{}
		case "sqlite":
			s = &sqliteStore{}
		}
		rs, err := runStore(c, s)
		results = append(results, rs...)
		if err != nil {
			fmt.Fprintf(stderr, "baselines: %s: %v\n", sys, err)
			return 1
		}
	}
	if c.jsonPath != "" {
		doc := map[string]any{"tool": "nfsbench baselines", "go_version": runtime.Version(), "results": results}
		b, _ := json.MarshalIndent(doc, "", "  ")
		b = append(b, '\n')
		if c.jsonPath == "-" {
			stdout.Write(b)
			return 0
		}
		if err := os.WriteFile(c.jsonPath, b, 0o644); err != nil {
			fmt.Fprintf(stderr, "baselines: %v\n", err)
			return 1
		}
	}
	printTable(stdout, results)
	return 0
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("baselines", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: baselines -dir PATH [flags]\n\n"+
			"Runs nfsbench's local workloads on bbolt and SQLite (WAL, synchronous=FULL),\n"+
			"every commit durable on return, in a new directory under PATH. nfsbench\n"+
			"-baselines runs it with the engine's sizes and prints ratios.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	workloads, systems := "all", "bbolt,sqlite"
	fs.StringVar(&c.dir, "dir", "", "existing `directory` to work in (required)")
	fs.StringVar(&workloads, "workloads", workloads, "comma-separated `list` of "+strings.Join(allWorkloads, ", ")+", or all")
	fs.StringVar(&systems, "systems", systems, "comma-separated `list` of bbolt, sqlite")
	fs.IntVar(&c.messages, "messages", 100000, "`messages` in the mailbox")
	fs.IntVar(&c.batch, "batch", 200, "`messages` per commit in build and expunge-compact")
	fs.IntVar(&c.fieldBytes, "field-bytes", 0, "`bytes` of a cached field stored with each message")
	fs.IntVar(&c.flagOps, "flag-ops", 2000, "`commits` of one flag change in flags-durable")
	fs.IntVar(&c.flagBatch, "flag-batch", 64, "flag `changes` per commit in flags-batched")
	fs.IntVar(&c.flagBatches, "flag-batches", 200, "`commits` in flags-batched")
	fs.IntVar(&c.lookups, "lookups", 500000, "`lookups` by UID")
	fs.IntVar(&c.scans, "scans", 20, "full `scans`")
	fs.Float64Var(&c.expunge, "expunge", 0.1, "`fraction` of the messages expunge-compact expunges")
	fs.IntVar(&c.opens, "opens", 10, "`opens` in open")
	fs.Uint64Var(&c.seed, "seed", 1, "`seed` of the random choices")
	fs.StringVar(&c.jsonPath, "json", "", "write the results as JSON to `file` (\"-\": stdout, instead of the table)")
	fs.StringVar(&c.mode, "mode", "local", "`mode` to put in the results (nfsbench passes local or nfs)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.dir == "" {
		return nil, errors.New("-dir PATH is required")
	}
	if st, err := os.Stat(c.dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("-dir %s: no such directory", c.dir)
	}
	if workloads == "all" {
		c.workloads = allWorkloads
	} else {
		for _, w := range strings.Split(workloads, ",") {
			if !slices.Contains(allWorkloads, w) {
				return nil, fmt.Errorf("-workloads: unknown workload %q", w)
			}
			c.workloads = append(c.workloads, w)
		}
	}
	for _, s := range strings.Split(systems, ",") {
		if s != "bbolt" && s != "sqlite" {
			return nil, fmt.Errorf("-systems: unknown system %q", s)
		}
		c.systems = append(c.systems, s)
	}
	for _, v := range []int{c.messages, c.batch, c.flagOps, c.flagBatch, c.flagBatches, c.lookups, c.scans, c.opens} {
		if v <= 0 {
			return nil, errors.New("sizes must be at least 1")
		}
	}
	if !(c.expunge > 0 && c.expunge < 1) {
		return nil, errors.New("-expunge: a fraction strictly between 0 and 1")
	}
	return c, nil
}

// meter times operations and counts the bytes the process handed to
// write(2) and pwrite(2) (wchar of /proc/self/io).
type meter struct {
	lats  []time.Duration
	bytes uint64
	ok    bool
}

func (m *meter) op(fn func() error) error {
	w0, ok0 := wchar()
	t0 := time.Now()
	err := fn()
	m.lats = append(m.lats, time.Since(t0))
	w1, ok1 := wchar()
	if ok0 && ok1 {
		m.bytes += w1 - w0
		m.ok = true
	}
	return err
}

// wchar returns the bytes this process has passed to write system calls.
func wchar() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func (m *meter) result(sys, workload, mode string, items float64) Result {
	r := Result{System: sys, Workload: workload, Mode: mode, Hosts: 1, Ops: len(m.lats), ItemsPerOp: items,
		Clock: "wall", RPCSource: "not counted (a baseline)"}
	var sum time.Duration
	for _, l := range m.lats {
		sum += l
	}
	r.Seconds, r.WallSeconds = sum.Seconds(), sum.Seconds()
	if sum > 0 {
		r.OpsPerS = float64(r.Ops) / sum.Seconds()
	}
	slices.Sort(m.lats)
	at := func(p float64) float64 {
		if len(m.lats) == 0 {
			return 0
		}
		i := max(0, min(int(math.Ceil(p*float64(len(m.lats))))-1, len(m.lats)-1))
		return math.Round(float64(m.lats[i])/float64(time.Microsecond)*10) / 10
	}
	r.LatencyUS = Latency{P50: at(0.5), P99: at(0.99), P999: at(0.999)}
	if m.ok && r.Ops > 0 {
		r.BytesPerOp = float64(m.bytes) / float64(r.Ops)
	}
	return r
}

// runStore runs the selected workloads on one store, in nfsbench's order.
func runStore(c *config, s store) ([]Result, error) {
	dir, err := os.MkdirTemp(c.dir, "baseline-"+s.name()+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := s.create(filepath.Join(dir, "mailbox")); err != nil {
		return nil, err
	}
	defer s.close()
	rng := rand.New(rand.NewPCG(c.seed, 0x6e667362))
	field := make([]byte, c.fieldBytes)
	for i := range field {
		field[i] = byte('a' + i%26)
	}
	has := func(w string) bool { return slices.Contains(c.workloads, w) }
	var out []Result
	add := func(r Result, notes ...string) {
		r.Notes = append(r.Notes, notes...)
		out = append(out, r)
	}
	// build (timed when selected: every other workload needs the mailbox)
	m := &meter{}
	for left := c.messages; left > 0; left -= min(left, c.batch) {
		k := min(left, c.batch)
		if err := m.op(func() error { return s.appendMsgs(k, field) }); err != nil {
			return out, fmt.Errorf("build: %w", err)
		}
	}
	if has("build") {
		add(m.result(s.name(), "build", c.mode, float64(c.batch)))
	}
	uids := make([]uint32, c.messages)
	for i := range uids {
		uids[i] = uint32(i + 1)
	}
	flag := func() (uint16, uint16) {
		f := uint16(1) // \Seen
		if rng.IntN(2) == 0 {
			f = 4 // \Flagged
		}
		if rng.IntN(2) == 0 {
			return f, 0
		}
		return 0, f
	}
	if has("flags-durable") {
		m := &meter{}
		for range c.flagOps {
			uid := uids[rng.IntN(len(uids))]
			a, r := flag()
			if err := m.op(func() error { return s.setFlags([]uint32{uid}, a, r) }); err != nil {
				return out, fmt.Errorf("flags-durable: %w", err)
			}
		}
		add(m.result(s.name(), "flags-durable", c.mode, 1))
	}
	if has("flags-batched") {
		m := &meter{}
		k := min(c.flagBatch, len(uids))
		for range c.flagBatches {
			start := rng.IntN(len(uids))
			batch := make([]uint32, k)
			for j := range batch {
				batch[j] = uids[(start+j)%len(uids)]
			}
			slices.Sort(batch)
			a, r := flag()
			if err := m.op(func() error { return s.setFlags(batch, a, r) }); err != nil {
				return out, fmt.Errorf("flags-batched: %w", err)
			}
		}
		add(m.result(s.name(), "flags-batched", c.mode, float64(k)), fmt.Sprintf("%d flag changes per transaction", k))
	}
	if has("lookup") {
		m := &meter{}
		for range c.lookups {
			uid := uids[rng.IntN(len(uids))]
			var found bool
			if err := m.op(func() error {
				var err error
				found, err = s.lookup(uid)
				return err
			}); err != nil || !found {
				return out, fmt.Errorf("lookup %d: %v (found %v)", uid, err, found)
			}
		}
		add(m.result(s.name(), "lookup", c.mode, 1), "one read transaction per lookup")
	}
	if has("scan") {
		m := &meter{}
		for range c.scans {
			if err := m.op(func() error {
				n, err := s.scan()
				if err == nil && n != c.messages {
					err = fmt.Errorf("scanned %d messages, want %d", n, c.messages)
				}
				return err
			}); err != nil {
				return out, fmt.Errorf("scan: %w", err)
			}
		}
		add(m.result(s.name(), "scan", c.mode, float64(c.messages)))
	}
	if has("open") {
		m := &meter{}
		for range c.opens {
			if err := s.close(); err != nil {
				return out, fmt.Errorf("open: close: %w", err)
			}
			if err := m.op(func() error {
				n, err := s.reopen()
				if err == nil && n != c.messages {
					err = fmt.Errorf("opened %d messages, want %d", n, c.messages)
				}
				return err
			}); err != nil {
				return out, fmt.Errorf("open: %w", err)
			}
		}
		add(m.result(s.name(), "open", c.mode, float64(c.messages)), "open and read the header (UIDNEXT, HIGHESTMODSEQ, count); nothing loaded into memory")
	}
	if has("expunge-compact") {
		k := int(float64(len(uids)) * c.expunge)
		sh := slices.Clone(uids)
		rng.Shuffle(len(sh), func(i, j int) { sh[i], sh[j] = sh[j], sh[i] })
		gone := sh[:k]
		slices.Sort(gone)
		m := &meter{}
		for i := 0; i < len(gone); i += c.batch {
			part := gone[i:min(i+c.batch, len(gone))]
			if err := m.op(func() error { return s.expunge(part) }); err != nil {
				return out, fmt.Errorf("expunge: %w", err)
			}
		}
		t0 := time.Now()
		if err := s.compact(); err != nil {
			return out, fmt.Errorf("compact: %w", err)
		}
		add(m.result(s.name(), "expunge-compact", c.mode, float64(c.batch)),
			fmt.Sprintf("expunged %d of %d messages, %d per transaction", k, len(uids), c.batch),
			fmt.Sprintf("compaction (%s): %.2fms", s.compactHow(), float64(time.Since(t0).Microseconds())/1000))
	}
	return out, nil
}

func printTable(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-16s %-7s %8s %9s %10s %10s %10s %10s %12s\n", "workload", "system", "ops", "items/op", "ops/s", "p50(µs)", "p99(µs)", "p99.9(µs)", "bytes/op")
	for _, r := range results {
		fmt.Fprintf(w, "%-16s %-7s %8d %9.0f %10.0f %10.1f %10.1f %10.1f %12.0f\n", r.Workload, r.System, r.Ops, r.ItemsPerOp,
			r.OpsPerS, r.LatencyUS.P50, r.LatencyUS.P99, r.LatencyUS.P999, r.BytesPerOp)
	}
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s (%s): %s\n", r.Workload, r.System, n)
		}
	}
}
