package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nfsindex/nfsindex/appendlog"
)

// workloadNames are the workloads in the order of the table and the JSON.
// They are part of nfsbench's output format: results compare across runs
// and versions by these names.
var workloadNames = []string{
	"build", "flags-durable", "flags-batched", "flags-concurrent", "lookup", "scan",
	"expunge-compact", "open", "sync-idle", "sync-remote", "mixed",
}

// config is a parsed command line.
type config struct {
	sim   bool   // -sim
	dir   string // -dir
	hosts int
	host  string
	runID string

	workloads []string

	messages    int
	batch       int
	fieldBytes  int
	flagOps     int
	flagBatch   int
	flagBatches int
	committers  int
	lookups     int
	scans       int
	expunge     float64
	opens       int
	syncs       int
	mixedOps    int
	mix         [3]int // percent deliver, flag change, sync
	think       time.Duration
	autoCompact bool
	// syncedPublish keeps the publish WRITE synced on a local disk
	// (engine.Options.SingleKernel off), for comparison.
	syncedPublish bool

	seed       uint64
	nfsVersion int

	jsonPath       string
	baselines      string
	keep           bool
	quiet          bool
	barrierTimeout time.Duration
	mountstats     string
}

// usageError is a command line that cannot run: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

const usageHead = `nfsbench measures the nfsindex engine on the NFS simulator, on a local disk
or on a real NFS mount, from one host or several, and verifies that every
acknowledged operation survived.

Usage:
  nfsbench [flags]                   the default: the simulator with 3 hosts,
                                     then a temporary directory on local disk
  nfsbench -sim [-hosts N] [flags]   the simulator only (RPCs per operation,
                                     simulated time)
  nfsbench -dir PATH [flags]         a real directory: local disk or NFS (RPCs
                                     from /proc/self/mountstats when on NFS)
  nfsbench -dir PATH -host NAME -run-id ID -hosts N
                                     one host of a multi-host run: start it on
                                     each of N machines with the same PATH (one
                                     NFS export) and ID; hosts meet at a barrier
                                     of files in PATH, run the mixed workload
                                     and log every acknowledged operation
  nfsbench verify -dir PATH -run-id ID
                                     check a multi-host run (from any host,
                                     afterwards, or after killing hosts): every
                                     acknowledged operation is in the index
                                     exactly once, UIDs ascend, every host saw
                                     the same order; exit status 1 if not

Workloads (-workloads, comma-separated; the table and JSON use these names):
  build            append -messages messages, -batch per durable commit
  flags-durable    -flag-ops commits of one flag change each
  flags-batched    -flag-batches commits of -flag-batch flag changes each
  flags-concurrent -flag-ops commits of one flag change each, by -committers
                   committers at once on one Mailbox (group commit): goroutines
                   calling Tx.Commit on a directory; on the simulator, whose
                   tasks may not wait for one another, Mailbox.CommitGroup of
                   -committers transactions at a time
  lookup           -lookups lookups by UID (from memory)
  scan             -scans full scans of every message's flags
  expunge-compact  expunge -expunge of the messages in commits of -batch, then
                   compact (Mailbox.Compact)
  open             -opens cold opens of the (compacted) mailbox by a new host
  sync-idle        -syncs Syncs with nothing new
  sync-remote      -syncs Syncs each after one flag change by another host
  mixed            -hosts hosts at once, -mixed-ops each: deliveries, flag
                   changes and Syncs in the proportions -mix; logged and
                   verified like a multi-host run

The table has ops/s, latency p50/p99/p999, RPCs per operation by procedure,
bytes written and durability barriers (syncs) per operation. On a real
directory each durable workload is followed by the raw floor: pwrite plus
fdatasync of the same bytes per operation, in the same directory.

Exit status: 0 success, 1 a benchmark or verification failed, 2 bad usage.

Flags:
`

// parseFlags parses the arguments after the program name (and after
// "verify" for the verify subcommand, with verify true). Help goes to out.
func parseFlags(args []string, out io.Writer, verify bool) (*config, error) {
	c := &config{}
	name := "nfsbench"
	if verify {
		name = "nfsbench verify"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		if verify {
			fmt.Fprint(out, "Usage: nfsbench verify -dir PATH -run-id ID [-json FILE]\n\n"+
				"Checks the run in PATH/nfsbench-ID: every operation a host logged as\n"+
				"acknowledged is in the index's history exactly once, at the sequence\n"+
				"number it was told, with the state digest the host saw; UIDs ascend;\n"+
				"every Sync a host logged saw the history's state. Exit status 1 if not.\n\nFlags:\n")
		} else {
			fmt.Fprint(out, usageHead)
		}
		fs.PrintDefaults()
	}
	workloads := "all"
	mix := "20/50/30"
	fs.StringVar(&c.dir, "dir", "", "run on this existing, writable `directory` (local disk or an NFS mount); nfsbench works in PATH/nfsbench-<run-id>/")
	fs.StringVar(&c.runID, "run-id", "", "`name` of the run's directory PATH/nfsbench-ID; hosts of one multi-host run share it (default: a new name per run)")
	fs.StringVar(&c.jsonPath, "json", "", "also write the results, the machine and the configuration as JSON to `file` (\"-\": stdout, and the tables go to stderr)")
	if !verify {
		fs.BoolVar(&c.sim, "sim", false, "run on the NFS simulator (nfssim): exact RPCs per operation, simulated time; with -dir, both")
		fs.IntVar(&c.hosts, "hosts", 3, "`number` of hosts: of the mixed workload, and the hosts a multi-host run (-host) waits for at its barrier")
		fs.StringVar(&c.host, "host", "", "this host's `name` in a multi-host run on a shared directory (needs -dir and -run-id; runs the mixed workload)")
		fs.StringVar(&workloads, "workloads", workloads, "comma-separated `list` of workloads, or \"all\"")
		fs.IntVar(&c.messages, "messages", 100000, "`messages` in the mailbox of build, lookup, scan, expunge-compact and open")
		fs.IntVar(&c.batch, "batch", 200, "`messages` per commit in build and expunge-compact (a record holds at most ~3000 bytes)")
		fs.IntVar(&c.fieldBytes, "field-bytes", 0, "`bytes` of a cached field stored with each delivered message (0: none); goes to the host's append-only log")
		fs.IntVar(&c.flagOps, "flag-ops", 2000, "`commits` of one flag change in flags-durable")
		fs.IntVar(&c.flagBatch, "flag-batch", 64, "flag `changes` per commit in flags-batched")
		fs.IntVar(&c.flagBatches, "flag-batches", 200, "`commits` in flags-batched")
		fs.IntVar(&c.committers, "committers", 16, "`committers` at once on one Mailbox in flags-concurrent: goroutines calling Tx.Commit (on a directory), transactions per Mailbox.CommitGroup (under -sim)")
		fs.IntVar(&c.lookups, "lookups", 500000, "`lookups` by UID in lookup")
		fs.IntVar(&c.scans, "scans", 20, "full `scans` in scan")
		fs.Float64Var(&c.expunge, "expunge", 0.1, "`fraction` of the messages expunge-compact expunges")
		fs.IntVar(&c.opens, "opens", 10, "cold `opens` in open")
		fs.IntVar(&c.syncs, "syncs", 2000, "`Syncs` in sync-idle and in sync-remote")
		fs.IntVar(&c.mixedOps, "mixed-ops", 500, "`operations` per host in mixed")
		fs.StringVar(&mix, "mix", mix, "`percentages` deliver/flag/sync of the mixed workload's operations")
		fs.DurationVar(&c.think, "think", 0, "think `time` between a host's operations in mixed (simulated time under -sim)")
		fs.BoolVar(&c.autoCompact, "auto-compact", false, "let the engine compact automatically during mixed (records folded into a snapshot can then be verified only by their keys)")
		fs.Uint64Var(&c.seed, "seed", 1, "`seed` of the simulator and of every random choice (replay a run with the same seed)")
		fs.IntVar(&c.nfsVersion, "nfs-version", 3, "NFS `version` the simulated hosts mount with: 3 or 4 (4.2)")
		fs.StringVar(&c.baselines, "baselines", "", "also run bbolt and SQLite (WAL, synchronous=FULL) on the local workloads and print ratios: \"go\" builds bench/baselines with the go tool (the first build takes minutes), or the `path` of a built binary")
		fs.BoolVar(&c.syncedPublish, "synced-publish", false, "on a local disk, do not set engine.Options.SingleKernel: sync every publish WRITE as on NFS (the engine's cost before SingleKernel, for comparison)")
		fs.BoolVar(&c.keep, "keep", false, "keep the run's directory (always kept with -host)")
		fs.BoolVar(&c.quiet, "q", false, "no progress on stderr (progress is shown only when stderr is a terminal)")
		fs.DurationVar(&c.barrierTimeout, "barrier-timeout", 10*time.Minute, "how long a host of a multi-host run waits for the others at the start barrier (a `duration`)")
	}
	fs.StringVar(&c.mountstats, "mountstats", "/proc/self/mountstats", "`path` of the NFS client statistics RPC counts are read from")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (flags come before nothing else; see -h)", fs.Arg(0))
	}
	if verify {
		if c.dir == "" || c.runID == "" {
			return nil, usagef("verify needs -dir PATH and -run-id ID: the directory and id the hosts ran with")
		}
		return c, validRunID(c.runID)
	}
	if err := c.check(workloads, mix); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates the flags and fills the derived fields.
func (c *config) check(workloads, mix string) error {
	if workloads == "all" || workloads == "" {
		c.workloads = slices.Clone(workloadNames)
		if c.host != "" {
			c.workloads = []string{"mixed"}
		}
	} else {
		for _, w := range strings.Split(workloads, ",") {
			w = strings.TrimSpace(w)
			if !slices.Contains(workloadNames, w) {
				return usagef("-workloads: unknown workload %q (known: %s)", w, strings.Join(workloadNames, ", "))
			}
			if !slices.Contains(c.workloads, w) {
				c.workloads = append(c.workloads, w)
			}
		}
	}
	positive := []struct {
		name string
		v    int
	}{
		{"-hosts", c.hosts}, {"-messages", c.messages}, {"-batch", c.batch}, {"-flag-ops", c.flagOps},
		{"-flag-batch", c.flagBatch}, {"-flag-batches", c.flagBatches}, {"-committers", c.committers}, {"-lookups", c.lookups},
		{"-scans", c.scans}, {"-opens", c.opens}, {"-syncs", c.syncs}, {"-mixed-ops", c.mixedOps},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return usagef("%s must be at least 1, not %d", p.name, p.v)
		}
	}
	if c.hosts > 64 {
		return usagef("-hosts %d: at most 64", c.hosts)
	}
	if c.fieldBytes < 0 || c.fieldBytes > 1<<20 {
		return usagef("-field-bytes %d: between 0 and 1048576", c.fieldBytes)
	}
	if c.batch > 250 {
		return usagef("-batch %d: at most 250 (one commit is one record of at most 3000 bytes)", c.batch)
	}
	if c.flagBatch > 250 {
		return usagef("-flag-batch %d: at most 250 (one commit is one record of at most 3000 bytes)", c.flagBatch)
	}
	if c.committers > maxCommitters {
		return usagef("-committers %d: at most %d", c.committers, maxCommitters)
	}
	if c.flagBatch > c.messages {
		return usagef("-flag-batch %d is more than the mailbox's %d messages", c.flagBatch, c.messages)
	}
	if !(c.expunge > 0 && c.expunge < 1) {
		return usagef("-expunge %v: a fraction strictly between 0 and 1", c.expunge)
	}
	if c.think < 0 {
		return usagef("-think %v: negative", c.think)
	}
	if c.nfsVersion != 3 && c.nfsVersion != 4 {
		return usagef("-nfs-version %d: 3 or 4", c.nfsVersion)
	}
	parts := strings.Split(mix, "/")
	if len(parts) != 3 {
		return usagef("-mix %q: three percentages deliver/flag/sync, such as 20/50/30", mix)
	}
	sum := 0
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 0 {
			return usagef("-mix %q: %q is not a percentage", mix, p)
		}
		c.mix[i] = v
		sum += v
	}
	if sum != 100 {
		return usagef("-mix %q: the percentages add up to %d, not 100", mix, sum)
	}
	if c.runID != "" {
		if err := validRunID(c.runID); err != nil {
			return err
		}
	}
	if c.host != "" {
		if c.dir == "" || c.runID == "" {
			return usagef("-host %s: a multi-host run needs -dir PATH (the shared NFS directory) and -run-id ID (the same on every host)", c.host)
		}
		if c.sim {
			return usagef("-host and -sim: a multi-host run is on a real directory; -sim -hosts N simulates N hosts in one process")
		}
		if err := appendlog.ValidHost(c.host); err != nil {
			return usagef("-host %q: letters, digits, '.', '-' and '_' only, not starting with '.'", c.host)
		}
		if !slices.Equal(c.workloads, []string{"mixed"}) {
			return usagef("-host: a multi-host run runs the mixed workload only (-workloads mixed), not %s", strings.Join(c.workloads, ","))
		}
	}
	if c.baselines != "" && c.dir == "" && c.sim {
		return usagef("-baselines compares local workloads: it needs a directory (-dir, or the default run), not -sim alone")
	}
	return nil
}

// validRunID accepts the names a run directory can carry.
func validRunID(id string) error {
	if err := appendlog.ValidHost(id); err != nil || len(id) > 64 {
		return usagef("-run-id %q: up to 64 letters, digits, '.', '-' and '_', not starting with '.'", id)
	}
	return nil
}

// modes returns what to run on: the simulator, a directory, or both.
func (c *config) modes() (sim, dir bool) {
	if !c.sim && c.dir == "" {
		return true, true // the default: the simulator, then a temporary directory
	}
	return c.sim, c.dir != ""
}

// has reports whether workload w was selected.
func (c *config) has(w string) bool { return slices.Contains(c.workloads, w) }
