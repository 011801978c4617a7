package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// stepEnv is where a calibration step runs: a vfs.FS (osfs over the real
// mount, or an nfssim host), plus the one thing vfs.FS lacks, a byte-range
// lock (fcntl F_SETLK on the real client, nfssim's LockLocal).
type stepEnv struct {
	fs   vfs.FS
	lock func(name string) error // open O_RDWR, lock, unlock, close
}

// calStep is one step of ../shared/nfslab/examples/vistest "rpc", the
// same sequence nfssim's TestCalibrationLabRPCCounts replays (the step
// names match its labSteps, so the expectation table in expect.go lines
// up).
type calStep struct {
	name string
	do   func(e stepEnv) error
}

func writeAll(fsys vfs.FS, name string, data []byte, flag vfs.Flag) error {
	f, err := fsys.OpenFile(name, vfs.WriteOnly|vfs.Create|flag, 0o644)
	if err != nil {
		return err
	}
	if flag.Has(vfs.Append) {
		_, err = f.Write(data)
	} else {
		_, err = f.WriteAt(data, 0)
	}
	return errors.Join(err, f.Close())
}

func readAll(fsys vfs.FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func calSteps() []calStep {
	data := make([]byte, 4096)
	return []calStep{
		{"create+write 4KiB+close", func(e stepEnv) error { return writeAll(e.fs, "d/index", data, vfs.Truncate) }},
		{"stat (attrs cached)", func(e stepEnv) error { _, err := e.fs.Stat("d/index"); return err }},
		{"open+read+close (close-to-open)", func(e stepEnv) error { _, err := readAll(e.fs, "d/index"); return err }},
		{"open O_RDWR + pwrite 64B + fsync + close", func(e stepEnv) error {
			f, err := e.fs.OpenFile("d/index", vfs.ReadWrite, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteAt(data[:64], 100)
			return errors.Join(err, f.Sync(), f.Close())
		}},
		{"write tmp + fsync + rename over index", func(e stepEnv) error {
			f, err := e.fs.OpenFile("d/index.tmp", vfs.WriteOnly|vfs.Create|vfs.Truncate, 0o644)
			if err != nil {
				return err
			}
			_, err = f.Write(data)
			if err := errors.Join(err, f.Sync(), f.Close()); err != nil {
				return err
			}
			return e.fs.Rename("d/index.tmp", "d/index")
		}},
		{"O_APPEND write 64B + close (log)", func(e stepEnv) error { return writeAll(e.fs, "d/log", data[:64], vfs.Append) }},
		{"stat of missing name", func(e stepEnv) error { _, _ = e.fs.Stat("d/nope"); return nil }},
		{"stat of missing name again", func(e stepEnv) error { _, _ = e.fs.Stat("d/nope"); return nil }},
		{"lock-file create (O_CREAT|O_EXCL)", func(e stepEnv) error {
			f, err := e.fs.OpenFile("d/lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}},
		{"unlink lock-file", func(e stepEnv) error { return e.fs.Remove("d/lock") }},
		{"readdir (2 entries)", func(e stepEnv) error { _, err := e.fs.ReadDir("d"); return err }},
		{"fcntl F_SETLK write lock+unlock", func(e stepEnv) error { return e.lock("d/index") }},
		{"100x stat (attr cache)", func(e stepEnv) error {
			for range 100 {
				if _, err := e.fs.Stat("d/index"); err != nil {
					return err
				}
			}
			return nil
		}},
		// StatFresh (statx AT_STATX_FORCE_SYNC), not in vistest: the
		// attributes of d/index are cached by the steps above.
		{"statfresh (attrs cached)", func(e stepEnv) error { _, err := e.fs.StatFresh("d/index"); return err }},
		{"10x statfresh", func(e stepEnv) error {
			for range 10 {
				if _, err := e.fs.StatFresh("d/index"); err != nil {
					return err
				}
			}
			return nil
		}},
		{"stat after statfresh", func(e stepEnv) error { _, err := e.fs.Stat("d/index"); return err }},
		{"statfresh of the directory", func(e stepEnv) error { _, err := e.fs.StatFresh("d"); return err }},
		{"statfresh of missing name", func(e stepEnv) error { return wantMissing(e.fs.StatFresh("d/nope2")) }},
		{"statfresh of missing name again (negative entry)", func(e stepEnv) error { return wantMissing(e.fs.StatFresh("d/nope2")) }},
	}
}

// wantMissing turns StatFresh's answer for a name that must be missing
// into the step's error: nil for ENOENT.
func wantMissing(_ vfs.FileInfo, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		return errors.New("found a name that does not exist")
	}
	return err
}

// rpcResult is what calib-rpc writes (calib-rpc.json) and sim-rpc prints.
type rpcResult struct {
	Side    string    `json:"side"` // "real" or "nfssim"
	Opts    string    `json:"opts"`
	Version string    `json:"version"` // "3" or "4.2"
	Kernel  string    `json:"kernel,omitempty"`
	Steps   []stepRPC `json:"steps"`
	Total   string    `json:"total"` // whole sequence, from the job's mountstats
}

type stepRPC struct {
	Name string `json:"name"`
	RPCs string `json:"rpcs"`
	Err  string `json:"err,omitempty"`
}

// versionOf returns "3" or "4.2" (the mount's vers=, 4.2 by default).
func versionOf(opts string) string {
	for _, o := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(o, "vers="); ok {
			if v == "3" {
				return "3"
			}
			return v
		}
		if v, ok := strings.CutPrefix(o, "nfsvers="); ok {
			return v
		}
	}
	return "4.2"
}

func kernelRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// guestCalibRPC runs the steps on osfs over the real mount, counting each
// step's RPCs from /proc/self/mountstats.
func guestCalibRPC(args []string) error {
	ge := getGuestEnv()
	root := filepath.Join(ge.Mnt, "calib-rpc-"+ge.Host)
	os.RemoveAll(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	fsys, err := osfs.New(root)
	if err != nil {
		return err
	}
	defer fsys.Close()
	if err := fsys.Mkdir("d", 0o755); err != nil {
		return err
	}
	env := stepEnv{fs: fsys, lock: func(name string) error {
		f, err := os.OpenFile(filepath.Join(root, name), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		lk := syscall.Flock_t{Type: syscall.F_WRLCK}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		lk.Type = syscall.F_UNLCK
		return syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
	}}
	res := rpcResult{Side: "real", Opts: ge.Opts, Version: versionOf(ge.Opts), Kernel: kernelRelease()}
	start, err := readCounts(ge.Mnt)
	if err != nil {
		return err
	}
	for _, st := range calSteps() {
		before, _ := readCounts(ge.Mnt)
		err := st.do(env)
		after, _ := readCounts(ge.Mnt)
		s := stepRPC{Name: st.name, RPCs: after.sub(before).String()}
		if err != nil {
			s.Err = err.Error()
		}
		fmt.Printf("%-42s %s %s\n", st.name, s.RPCs, s.Err)
		res.Steps = append(res.Steps, s)
	}
	end, _ := readCounts(ge.Mnt)
	res.Total = end.sub(start).String()
	return writeJSON(filepath.Join(ge.Out, "calib-rpc.json"), res)
}

// simRPC runs the same steps on nfssim with the mount options opts.
func simRPC(opts string) (rpcResult, error) {
	m, err := optsToMount(opts)
	if err != nil {
		return rpcResult{}, err
	}
	s := nfssim.New(nfssim.DefaultConfig(1))
	defer s.Close()
	h, err := s.AddHost("host1", m)
	if err != nil {
		return rpcResult{}, err
	}
	if err := h.FS().Mkdir("d", 0o755); err != nil {
		return rpcResult{}, err
	}
	env := stepEnv{fs: h.FS(), lock: func(name string) error {
		f, err := h.FS().OpenFile(name, vfs.ReadWrite, 0)
		if err != nil {
			return err
		}
		unlock, err := h.LockLocal(name)
		if err != nil {
			f.Close()
			return err
		}
		unlock()
		return f.Close()
	}}
	res := rpcResult{Side: "nfssim", Opts: opts, Version: m.Version.String()}
	start := h.RPCs()
	for _, st := range calSteps() {
		before := h.RPCs()
		err := st.do(env)
		s := stepRPC{Name: st.name, RPCs: h.RPCs().Sub(before).String()}
		if err != nil {
			s.Err = err.Error()
		}
		res.Steps = append(res.Steps, s)
	}
	res.Total = h.RPCs().Sub(start).String()
	return res, nil
}

func cmdSimRPC(args []string) error {
	fs := flag.NewFlagSet("sim-rpc", flag.ExitOnError)
	opts := fs.String("opts", "vers=3", "mount options to model")
	fs.Parse(args)
	res, err := simRPC(*opts)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(b))
	return nil
}

// optsToMount maps Linux mount options to nfssim's Mount knobs.
func optsToMount(opts string) (nfssim.Mount, error) {
	m := nfssim.DefaultMount()
	secs := func(v string) (time.Duration, error) {
		n, err := strconv.Atoi(v)
		return time.Duration(n) * time.Second, err
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		var err error
		switch k {
		case "", "addr", "port", "proto", "mountaddr", "mountproto", "mountport", "mountvers", "nolock", "clientaddr", "hard", "tcp":
		case "vers", "nfsvers":
			switch v {
			case "3":
				m.Version = nfssim.V3
			case "4.1", "4.2":
				m.Version = nfssim.V4
			default:
				return m, fmt.Errorf("nfssim models vers=3 and 4.1/4.2, not %s", v)
			}
		case "actimeo":
			var d time.Duration
			if d, err = secs(v); d == 0 {
				// nfssim has no "all four timeouts zero" short of noac;
				// nfssim's own lab test models actimeo=0 the same way.
				m.ActimeO, m.NoAC = 0, true
			} else {
				m.ActimeO = d
			}
		case "acregmin":
			m.AcRegMin, err = secs(v)
		case "acregmax":
			m.AcRegMax, err = secs(v)
		case "acdirmin":
			m.AcDirMin, err = secs(v)
		case "acdirmax":
			m.AcDirMax, err = secs(v)
		case "noac":
			m.NoAC = true
		case "nocto":
			m.NoCTO = true
		case "cto":
			m.NoCTO = false
		case "rsize":
			m.RSize, err = strconv.Atoi(v)
		case "wsize":
			m.WSize, err = strconv.Atoi(v)
		case "soft":
			m.Soft = true
		case "lookupcache":
			switch v {
			case "all":
				m.LookupCache = nfssim.LookupAll
			default:
				return m, fmt.Errorf("lookupcache=%s: not mapped", v)
			}
		default:
			return m, fmt.Errorf("mount option %q has no nfssim knob", o)
		}
		if err != nil {
			return m, fmt.Errorf("mount option %q: %v", o, err)
		}
	}
	if m.NoCTO && m.ActimeO == 60*time.Second && m.RSize == 4096 {
		// the worst-case set: also what WorstMount assumes beyond options
		w := nfssim.WorstMount()
		w.Version = m.Version
		m = w
	}
	return m, nil
}

// reportRPC prints, per step, the real client's RPCs next to nfssim's for
// every calib-rpc.json found under the given run directories.
func reportRPC(args []string) error {
	files, err := findFiles(args, "calib-rpc.json")
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no calib-rpc.json under %v", args)
	}
	ndiff, nbad := 0, 0
	for _, f := range files {
		var real rpcResult
		if err := readJSON(f, &real); err != nil {
			return err
		}
		sim, err := simRPC(stripServerOpts(real.Opts))
		if err != nil {
			return err
		}
		exp := map[string]labExpect{}
		if o := stripServerOpts(real.Opts); o == "vers=3" || o == "vers=4.2" {
			// nfssim's test pins the default mount options only
			exp = expectations(real.Version)
		}
		fmt.Printf("\n### RPCs per step, vers=%s (mount: %s; kernel %s)\n\n", real.Version, stripServerOpts(real.Opts), real.Kernel)
		fmt.Println("| step | real client | nfssim (same steps) | real − nfssim |")
		fmt.Println("|---|---|---|---|")
		var notes []string
		for i, st := range real.Steps {
			var ss stepRPC
			if i < len(sim.Steps) {
				ss = sim.Steps[i]
			}
			d := countsDiff(parseCounts(st.RPCs), parseCounts(ss.RPCs))
			mark := d
			if d == "" {
				mark = "="
			} else {
				ndiff++
			}
			r := st.RPCs
			if st.Err != "" {
				r += " (error: " + st.Err + ")"
			}
			fmt.Printf("| %s | %s | %s | %s |\n", st.Name, r, ss.RPCs, mark)
			if e, ok := exp[st.Name]; ok {
				if e.sim != ss.RPCs {
					nbad++
					notes = append(notes, fmt.Sprintf("- %s: this replay on nfssim gave %s but TestCalibrationLabRPCCounts pins %s (the replay is not the test's sequence: fix nfse2e)", st.Name, ss.RPCs, e.sim))
				}
				if e.lab != st.RPCs {
					notes = append(notes, fmt.Sprintf("- %s: nfslab recorded %s (nfssim test's \"real\" column), now %s", st.Name, e.lab, st.RPCs))
				}
				if d != "" && e.why != "" {
					notes = append(notes, fmt.Sprintf("- %s: nfssim's test explains: %s", st.Name, e.why))
				}
			}
		}
		fmt.Printf("| whole sequence | %s | %s | %s |\n", real.Total, sim.Total, countsDiff(parseCounts(real.Total), parseCounts(sim.Total)))
		if len(notes) > 0 {
			fmt.Printf("\nnotes (vers=%s):\n%s\n", real.Version, strings.Join(notes, "\n"))
		}
	}
	fmt.Printf("\nRPC calibration: %d step(s) differ between the real client and nfssim; %d replay mismatch(es) with nfssim's own test\n", ndiff, nbad)
	if nbad > 0 {
		return fmt.Errorf("the nfssim replay diverges from TestCalibrationLabRPCCounts")
	}
	return nil
}

// countsDiff shows real minus sim per op, e.g. "ACCESS +1, LOOKUP -1".
func countsDiff(real, sim opCounts) string {
	keys := map[string]bool{}
	for k := range real {
		keys[k] = true
	}
	for k := range sim {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		if d := int64(real[k]) - int64(sim[k]); d != 0 {
			parts = append(parts, fmt.Sprintf("%s %+d", k, d))
		}
	}
	return strings.Join(parts, ", ")
}

// stripServerOpts keeps the options a user chose, without the ones e2e/run
// adds to reach the server.
func stripServerOpts(opts string) string {
	var keep []string
	for _, o := range strings.Split(opts, ",") {
		k, _, _ := strings.Cut(o, "=")
		switch k {
		case "addr", "port", "proto", "mountaddr", "mountproto", "mountport", "mountvers", "nolock", "clientaddr":
			continue
		}
		keep = append(keep, o)
	}
	return strings.Join(keep, ",")
}

// findFiles returns the files called name under the given directories.
func findFiles(dirs []string, name string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !de.IsDir() && de.Name() == name {
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
