// Command nfsbench measures the nfsindex engine and verifies it: on the
// NFS simulator (exact RPCs per operation, simulated time), on a local
// disk beside the raw pwrite+fdatasync floor and, with -baselines, bbolt
// and SQLite, and on real NFS mounts from one host or several at once,
// after which "nfsbench verify" checks that every acknowledged operation
// survived exactly once, in one order seen by every host.
//
// Run "nfsbench -h" for the modes, workloads and flags. The output is a
// table on stdout and, with -json FILE, a JSON document whose results
// carry workload, mode, hosts, ops, ops_per_s, latency_us {p50, p99,
// p999} and rpcs_per_op {total, one key per RPC procedure}.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	if len(args) > 0 && args[0] == "verify" {
		return exitCode(runVerify(ctx, args[1:], stdout, stderr), stderr)
	}
	cfg, err := parseFlags(args, stderr, false)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return exitCode(err, stderr)
	}
	return exitCode(runBench(ctx, cfg, stdout, stderr), stderr)
}

func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	var ie *inputError
	var ve *verifyError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "nfsbench: %v\nRun nfsbench -h for the flags.\n", err)
		return 2
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "nfsbench: %v\n", err)
		return 2
	case errors.As(err, &ve):
		fmt.Fprintf(stderr, "nfsbench: verification FAILED: %d violations (the report is on stdout)\n", ve.rep.Violations)
		return 1
	default:
		fmt.Fprintf(stderr, "nfsbench: %v\n", err)
		return 1
	}
}

func newSession(ctx context.Context, cfg *config, e env, prog *progress) *session {
	return &session{ctx: ctx, cfg: cfg, e: e, prog: prog, rng: rand.New(rand.NewPCG(cfg.seed, 0x6e667362))}
}

// runBench runs the benchmark modes the flags select and prints their
// tables.
func runBench(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	rep := &Report{Tool: "nfsbench", FormatVersion: 1, Started: time.Now().UTC().Format(time.RFC3339),
		Command: append([]string{"nfsbench"}, os.Args[1:]...), Machine: machineInfo(), Config: cfg.runConfig()}
	prog := newProgress(stderr, cfg.quiet)
	defer prog.close()
	simMode, dirMode := cfg.modes()
	jsonOut := stdout
	if cfg.jsonPath == "-" {
		stdout = stderr // the tables make way for the JSON document
	}
	fmt.Fprintf(stdout, "nfsbench: seed %d, %s\n", cfg.seed, rep.Machine)
	if simMode && dirMode {
		fmt.Fprintf(stdout, "default run: the simulator with %d hosts, then a temporary directory on local disk (see -h for -sim, -dir, -host)\n", cfg.hosts)
	}
	var errs []error
	if simMode {
		if err := runSim(ctx, cfg, rep, prog, stdout); err != nil {
			errs = append(errs, err)
		}
	}
	if dirMode && ctx.Err() == nil {
		if err := runDir(ctx, cfg, rep, prog, stdout, stderr); err != nil {
			errs = append(errs, err)
		}
	}
	rep.Ratios = computeRatios(rep.Results)
	if cfg.jsonPath != "" {
		if err := writeJSON(rep, cfg.jsonPath, jsonOut); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func runSim(ctx context.Context, cfg *config, rep *Report, prog *progress, stdout io.Writer) error {
	version := nfssim.V3
	if cfg.nfsVersion == 4 {
		version = nfssim.V4
	}
	e := newSimEnv(cfg.seed, version)
	defer e.s.Close()
	s := newSession(ctx, cfg, e, prog)
	wall := time.Now()
	err := s.run()
	rep.Results = append(rep.Results, s.results...)
	rep.Envs = append(rep.Envs, EnvInfo{Mode: "sim", RPCSource: e.rpcSource(),
		Durable: "every commit durable at the simulated server (SYMLINK, FILE_SYNC WRITE)"})
	lat := nfssim.DefaultLatency()
	printTable(stdout, fmt.Sprintf("== sim: nfssim, NFSv%s, Linux default mount, RPC %v round trip; ops/s and latencies in simulated time (lookup, scan: wall); exact RPC counts; wall %s",
		version, lat.RTT, fmtDuration(time.Since(wall))), s.results)
	return err
}

func runDir(ctx context.Context, cfg *config, rep *Report, prog *progress, stdout, stderr io.Writer) (err error) {
	base, temp := cfg.dir, false
	if base == "" {
		base, err = os.MkdirTemp("", "nfsbench-")
		if err != nil {
			return err
		}
		temp = true
		defer os.RemoveAll(base)
	} else if err := checkDir(base); err != nil {
		return err
	}
	id := cfg.runID
	if id == "" {
		id = time.Now().Format("20060102-150405") + "-" + strconv.Itoa(os.Getpid())
	}
	rd, err := prepareRunDir(base, id, cfg.host != "")
	if err != nil {
		return err
	}
	e, err := newDirEnv(rd, cfg.mountstats)
	if err != nil {
		return err
	}
	defer e.close()
	keep := cfg.keep || cfg.host != ""
	defer func() {
		if !keep && !temp {
			os.RemoveAll(rd)
		}
	}()
	s := newSession(ctx, cfg, e, prog)
	s.logDir, s.runID, s.floors = rd, id, true
	if cfg.host != "" {
		s.barrier = func() error {
			fmt.Fprintf(stderr, "nfsbench: %s waits for %d hosts at the barrier in %s\n", cfg.host, cfg.hosts, rd)
			_, err := barrier(ctx, rd, cfg.host, cfg.hosts, cfg.barrierTimeout, prog.status)
			return err
		}
	}
	wall := time.Now()
	var errs []error
	if err := s.run(); err != nil {
		errs = append(errs, err)
		var ve *verifyError
		if errors.As(err, &ve) {
			keep = true // the evidence
		}
	}
	results := s.results
	if cfg.baselines != "" && ctx.Err() == nil {
		bl, err := s.baselines(stderr)
		if err != nil {
			errs = append(errs, fmt.Errorf("baselines: %w", err))
		}
		results = append(results, bl...)
	}
	slices.SortStableFunc(results, func(a, b Result) int {
		if d := slices.Index(workloadNames, a.Workload) - slices.Index(workloadNames, b.Workload); d != 0 {
			return d
		}
		return slices.Index(systemOrder, a.System) - slices.Index(systemOrder, b.System)
	})
	rep.Results = append(rep.Results, results...)
	where := rd
	if temp {
		where = "a temporary directory " + rd
	}
	fsType := e.fsType
	if fsType == "" {
		fsType = "unknown file system"
	}
	durable := "every commit durable on return: record symlink + directory fsync + O_DSYNC publish"
	if e.nfs != nil {
		durable = "every commit durable on return: SYMLINK (synchronous at the server) + FILE_SYNC publish"
	}
	rep.Envs = append(rep.Envs, EnvInfo{Mode: e.mode(), Dir: rd, FSType: e.fsType, NFSOpts: e.nfsOpts, RPCSource: e.rpcSource(), Durable: durable})
	title := fmt.Sprintf("== %s: %s (%s); wall clock; RPCs %s; wall %s", e.mode(), where, fsType, e.rpcSource(), fmtDuration(time.Since(wall)))
	if e.nfsOpts != "" {
		title += "\n   mount options: " + e.nfsOpts
	}
	printTable(stdout, title, results)
	printRatios(stdout, computeRatios(results))
	if cfg.baselines == "" && cfg.host == "" {
		fmt.Fprintln(stdout, "\nbbolt and SQLite: add -baselines go (builds bench/baselines; its first build takes minutes) for their rows and ratios")
	}
	if cfg.host != "" {
		fmt.Fprintf(stdout, "\n%s is done. When every host has finished (or been killed), check the run from any host:\n  nfsbench verify -dir %s -run-id %s\n", cfg.host, base, id)
	} else if keep && !temp {
		fmt.Fprintf(stdout, "\nkept %s\n", rd)
	}
	return errors.Join(errs...)
}

// baselines runs bench/baselines in the run's directory.
func (s *session) baselines(stderr io.Writer) ([]Result, error) {
	bin := s.cfg.baselines
	if bin == "go" {
		tmp, err := os.MkdirTemp("", "nfsbench-baselines-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		s.prog.status("building bench/baselines (bbolt, modernc.org/sqlite); the first build takes minutes")
		bin, err = buildBaselines(s.ctx, tmp, stderr)
		if err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(s.logDir, "baselines")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s.prog.status("running bbolt and SQLite (bench/baselines)")
	res, _, err := runBaselines(s.ctx, s.cfg, bin, dir, s.e.mode(), stderr)
	s.prog.status("")
	return res, err
}

// newLog returns the log of a host of the mixed workload: a file in the
// run's directory on a real directory, memory under the simulator.
func (s *session) newLog(host string) (*hostLog, error) {
	if s.logDir == "" {
		return &hostLog{host: host}, nil
	}
	return createLog(s.logDir, host, s.runID)
}

// runVerify is "nfsbench verify".
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr, true)
	if err != nil {
		return err
	}
	if st, err := os.Stat(cfg.dir); err != nil || !st.IsDir() {
		return inputf("-dir %s: no such directory", cfg.dir)
	}
	rd := filepath.Join(cfg.dir, runDirName(cfg.runID))
	if _, err := os.Stat(rd); errors.Is(err, os.ErrNotExist) {
		return inputf("%s: no run %q in %s", rd, cfg.runID, cfg.dir)
	}
	if err := checkRunDir(rd); err != nil {
		return err
	}
	if err := checkIndexDir(filepath.Join(rd, mixedDir)); err != nil {
		return err
	}
	logs, err := readLogs(rd)
	if err != nil {
		return fmt.Errorf("reading the hosts' logs: %w", err)
	}
	if len(logs) == 0 {
		return inputf("%s holds no host logs (log.<host>.jsonl): nothing was acknowledged", rd)
	}
	fsys, err := osfs.New(rd)
	if err != nil {
		return err
	}
	defer fsys.Close()
	in, err := engine.Inspect(ctx, fsys, mixedDir)
	if err != nil {
		// The tail says a record is published that cannot be read: the
		// order itself is damaged.
		fmt.Fprintf(stdout, "verify: FAILED: the index's history cannot be read: %v\n", err)
		return &verifyError{rep: VerifyReport{Violations: 1, Hosts: len(logs),
			Problems: []string{"the index's history cannot be read: " + err.Error()}}}
	}
	r := verifyLogs(in, logs)
	fmt.Fprintln(stdout, r.String())
	if cfg.jsonPath != "" {
		doc := struct {
			Tool    string       `json:"tool"`
			Dir     string       `json:"dir"`
			RunID   string       `json:"run_id"`
			Machine Machine      `json:"machine"`
			Verify  VerifyReport `json:"verify"`
		}{"nfsbench verify", rd, cfg.runID, machineInfo(), r}
		if err := writeJSONValue(doc, cfg.jsonPath, stdout); err != nil {
			return err
		}
	}
	if !r.OK {
		return &verifyError{rep: r}
	}
	return nil
}
