package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Report is the JSON document -json writes.
type Report struct {
	Tool          string    `json:"tool"`
	FormatVersion int       `json:"format_version"`
	Started       string    `json:"started"`
	Command       []string  `json:"command"`
	Machine       Machine   `json:"machine"`
	Config        RunConfig `json:"config"`
	// Envs describe where each mode ran.
	Envs    []EnvInfo `json:"environments"`
	Results []Result  `json:"results"`
	// Ratios compare nfsindex with the raw floor and the baselines on the
	// same workload in the same run.
	Ratios []Ratio `json:"ratios,omitempty"`
}

// Machine is what the run ran on.
type Machine struct {
	Hostname    string `json:"hostname"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Kernel      string `json:"kernel,omitempty"`
	CPUModel    string `json:"cpu_model,omitempty"`
	CPUs        int    `json:"cpus"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	GoVersion   string `json:"go_version"`
}

// RunConfig is the configuration of the run: every size and knob.
type RunConfig struct {
	Modes       []string `json:"modes"`
	Dir         string   `json:"dir,omitempty"`
	RunID       string   `json:"run_id,omitempty"`
	Host        string   `json:"host,omitempty"`
	Hosts       int      `json:"hosts"`
	Workloads   []string `json:"workloads"`
	Messages    int      `json:"messages"`
	Batch       int      `json:"batch"`
	FieldBytes  int      `json:"field_bytes"`
	FlagOps     int      `json:"flag_ops"`
	FlagBatch   int      `json:"flag_batch"`
	FlagBatches int      `json:"flag_batches"`
	Committers  int      `json:"committers"`
	Lookups     int      `json:"lookups"`
	Scans       int      `json:"scans"`
	Expunge     float64  `json:"expunge"`
	Opens       int      `json:"opens"`
	Syncs       int      `json:"syncs"`
	MixedOps    int      `json:"mixed_ops"`
	Mix         [3]int   `json:"mix_deliver_flag_sync"`
	ThinkUS     int64    `json:"think_us"`
	AutoCompact bool     `json:"auto_compact"`
	Seed        uint64   `json:"seed"`
	NFSVersion  int      `json:"sim_nfs_version"`
	Baselines   string   `json:"baselines,omitempty"`
}

// EnvInfo describes one mode's environment.
type EnvInfo struct {
	Mode      string `json:"mode"`
	Dir       string `json:"dir,omitempty"`
	FSType    string `json:"fs_type,omitempty"`
	NFSOpts   string `json:"nfs_opts,omitempty"`
	RPCSource string `json:"rpc_source"`
	Durable   string `json:"durability"`
}

// Ratio is nfsindex against another system on one workload.
type Ratio struct {
	Workload string `json:"workload"`
	Mode     string `json:"mode"`
	Versus   string `json:"versus"`
	// Speed is nfsindex's ops/s over the other's: above 1, nfsindex is
	// faster. TimePerOp is its inverse, the form of the brief's floor
	// target ("within 1.5x of the floor").
	Speed     float64 `json:"speed"`
	TimePerOp float64 `json:"time_per_op"`
}

func (c *config) runConfig() RunConfig {
	sim, dir := c.modes()
	var modes []string
	if sim {
		modes = append(modes, "sim")
	}
	if dir {
		modes = append(modes, "dir")
	}
	return RunConfig{Modes: modes, Dir: c.dir, RunID: c.runID, Host: c.host, Hosts: c.hosts, Workloads: c.workloads,
		Messages: c.messages, Batch: c.batch, FieldBytes: c.fieldBytes, FlagOps: c.flagOps, FlagBatch: c.flagBatch,
		FlagBatches: c.flagBatches, Committers: c.committers, Lookups: c.lookups, Scans: c.scans, Expunge: c.expunge, Opens: c.opens,
		Syncs: c.syncs, MixedOps: c.mixedOps, Mix: c.mix, ThinkUS: c.think.Microseconds(), AutoCompact: c.autoCompact,
		Seed: c.seed, NFSVersion: c.nfsVersion, Baselines: c.baselines}
}

// machineInfo reads what Linux tells about the machine; elsewhere it
// leaves those fields empty.
func machineInfo() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		f := strings.Fields(v)
		if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			m.MemoryBytes = n * 1024
		}
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc
// file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (m Machine) String() string {
	s := fmt.Sprintf("%s/%s, %d CPUs", m.OS, m.Arch, m.CPUs)
	if m.CPUModel != "" {
		s += " (" + m.CPUModel + ")"
	}
	switch {
	case m.MemoryBytes >= 4<<30:
		s += fmt.Sprintf(", %.0f GiB", float64(m.MemoryBytes)/(1<<30))
	case m.MemoryBytes > 0:
		s += fmt.Sprintf(", %.0f MiB", float64(m.MemoryBytes)/(1<<20))
	}
	if m.Kernel != "" {
		s += ", Linux " + m.Kernel
	}
	return s + ", " + m.GoVersion
}

// writeJSON writes the report to path ("-": w).
func writeJSON(rep *Report, path string, w io.Writer) error { return writeJSONValue(rep, path, w) }

func writeJSONValue(v any, path string, w io.Writer) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err := w.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("-json: %w", err)
	}
	return nil
}

// computeRatios pairs every nfsindex result with the other systems'
// results on the same workload and mode.
func computeRatios(results []Result) []Ratio {
	var out []Ratio
	for _, r := range results {
		if r.System != "nfsindex" || r.OpsPerS == 0 {
			continue
		}
		for _, o := range results {
			if o.System == "nfsindex" || o.Workload != r.Workload || o.Mode != r.Mode || o.OpsPerS == 0 {
				continue
			}
			// Compare the work per item: a baseline may batch differently.
			mine := r.OpsPerS * max(r.ItemsPerOp, 1)
			theirs := o.OpsPerS * max(o.ItemsPerOp, 1)
			out = append(out, Ratio{Workload: r.Workload, Mode: r.Mode, Versus: o.System,
				Speed: round3(mine / theirs), TimePerOp: round3(theirs / mine)})
		}
	}
	return out
}

func round3(v float64) float64 {
	p, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	return p
}

// printTable writes the results of one mode as a table.
func printTable(w io.Writer, title string, results []Result) {
	fmt.Fprintf(w, "\n%s\n", title)
	header := []string{"workload", "system", "hosts", "ops", "items/op", "ops/s", "p50", "p99", "p99.9", "bytes/op", "syncs/op", "RPCs/op"}
	rows := [][]string{header}
	for _, r := range results {
		syncs := "?"
		if r.SyncsPerOp != nil {
			syncs = fmtNum(*r.SyncsPerOp)
		}
		rows = append(rows, []string{
			r.Workload, r.System, strconv.Itoa(r.Hosts), strconv.Itoa(r.Ops), fmtNum(r.ItemsPerOp), fmtNum(r.OpsPerS),
			fmtUS(r.LatencyUS.P50), fmtUS(r.LatencyUS.P99), fmtUS(r.LatencyUS.P999),
			fmtBytes(r.BytesPerOp), syncs, fmtRPCs(r.RPCsPerOp),
		})
	}
	widths := make([]int, len(header))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			switch {
			case i == len(row)-1:
				b.WriteString(c)
			case i < 2:
				b.WriteString(c + pad + "  ")
			default:
				b.WriteString(pad + c + "  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	var notes []string
	for _, r := range results {
		for _, n := range r.Notes {
			notes = append(notes, fmt.Sprintf("  %s (%s): %s", r.Workload, r.System, n))
		}
		if r.Verify != nil {
			notes = append(notes, "  "+r.Workload+": "+strings.ReplaceAll(r.Verify.String(), "\n", "\n  "))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "notes:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

// printRatios writes the comparisons with the floor and the baselines.
func printRatios(w io.Writer, ratios []Ratio) {
	if len(ratios) == 0 {
		return
	}
	by := map[string]map[string]Ratio{}
	var workloads []string
	versus := map[string]bool{}
	for _, r := range ratios {
		if by[r.Workload] == nil {
			by[r.Workload] = map[string]Ratio{}
			workloads = append(workloads, r.Workload)
		}
		by[r.Workload][r.Versus] = r
		versus[r.Versus] = true
	}
	sort.SliceStable(workloads, func(i, j int) bool {
		return slices.Index(workloadNames, workloads[i]) < slices.Index(workloadNames, workloads[j])
	})
	cols := []string{}
	for _, v := range []string{"raw-floor", "bbolt", "sqlite"} {
		if versus[v] {
			cols = append(cols, v)
		}
	}
	fmt.Fprintf(w, "\nratios, same workload and durability in this run (nfsindex ops/s over theirs: above 1 nfsindex is faster;\n"+
		"against the raw floor, time per op over the floor's: the brief's target is at most 1.5):\n")
	fmt.Fprintf(w, "  %-16s", "workload")
	for _, c := range cols {
		fmt.Fprintf(w, "  %-24s", "vs "+c)
	}
	fmt.Fprintln(w)
	for _, wl := range workloads {
		fmt.Fprintf(w, "  %-16s", wl)
		for _, c := range cols {
			r, ok := by[wl][c]
			cell := "-"
			switch {
			case !ok:
			case c == "raw-floor":
				cell = fmt.Sprintf("%.2fx the floor's time", r.TimePerOp)
			default:
				cell = fmt.Sprintf("%.2fx as fast", r.Speed)
			}
			fmt.Fprintf(w, "  %-24s", cell)
		}
		fmt.Fprintln(w)
	}
}

// fmtNum formats a count or rate with three significant digits.
func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// fmtUS formats microseconds.
func fmtUS(us float64) string {
	switch {
	case us < 1:
		return strconv.FormatFloat(us*1000, 'f', 0, 64) + "ns"
	case us < 10:
		return strconv.FormatFloat(us, 'f', 1, 64) + "µs"
	case us < 1000:
		return strconv.FormatFloat(us, 'f', 0, 64) + "µs"
	case us < 1e6:
		return strconv.FormatFloat(us/1000, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(us/1e6, 'f', 2, 64) + "s"
	}
}

func fmtBytes(b float64) string {
	switch {
	case b < 1024:
		return strconv.FormatFloat(b, 'f', 0, 64) + " B"
	case b < 1<<20:
		return strconv.FormatFloat(b/1024, 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) + " MiB"
	}
}

// fmtRPCs formats RPCs per op as "2.00 = SYMLINK 1.00 + WRITE 1.00", the
// procedures by count, or "n/a" when they could not be counted.
func fmtRPCs(m map[string]float64) string {
	if m == nil {
		return "n/a"
	}
	type kv struct {
		k string
		v float64
	}
	var parts []kv
	for k, v := range m {
		if k != "total" && v > 0 {
			parts = append(parts, kv{k, v})
		}
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].v != parts[j].v {
			return parts[i].v > parts[j].v
		}
		return parts[i].k < parts[j].k
	})
	s := fmtNum(m["total"])
	for i, p := range parts {
		if i == 0 {
			s += " = "
		} else {
			s += " + "
		}
		s += p.k + " " + fmtNum(p.v)
	}
	return s
}

func fmtDuration(d time.Duration) string { return fmtUS(float64(d) / float64(time.Microsecond)) }
