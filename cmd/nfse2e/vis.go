package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// visPattern is one pattern of vistest "vis" (and of nfssim's
// TestCalibrationLabVisibility): a writer changes something, a reader on
// another host polls until it sees it. The same code runs on osfs over the
// real mounts of two guests and on two nfssim hosts.
type visPattern struct {
	name, desc string
	setup      func(w vfs.FS) error
	write      func(w vfs.FS, seq int) error
	// reader returns the poll; note records an error a poll met that is
	// not the outcome it waits for (reported by errno class).
	reader func(r vfs.FS, note func(error)) (poll func(seq int) bool, done func())
}

func visPayload(seq int) []byte {
	b := fmt.Appendf(nil, "seq=%08d", seq)
	return append(b, bytes.Repeat([]byte(" "), 64-len(b))...)
}

func visSeq(b []byte) int {
	if len(b) < 12 || !bytes.HasPrefix(b, []byte("seq=")) {
		return -1
	}
	n, err := strconv.Atoi(string(b[4:12]))
	if err != nil {
		return -1
	}
	return n
}

func visPatterns() []visPattern {
	read64 := func(r vfs.FS, name string) []byte {
		f, err := r.OpenFile(name, vfs.ReadOnly, 0)
		if err != nil {
			return nil
		}
		defer f.Close()
		b := make([]byte, 64)
		n, _ := f.ReadAt(b, 0)
		return b[:n]
	}
	keepOpen := func(r vfs.FS, name string, check func(f vfs.File, seq int) bool) (func(int) bool, func()) {
		var f vfs.File
		return func(seq int) bool {
				if f == nil {
					var err error
					if f, err = r.OpenFile(name, vfs.ReadOnly, 0); err != nil {
						f = nil
						return false
					}
				}
				return check(f, seq)
			}, func() {
				if f != nil {
					f.Close()
				}
			}
	}
	return []visPattern{
		{name: "overwrite-reopen", desc: "O_TRUNC+write+close; reader open+read+close",
			setup: func(w vfs.FS) error { return writeAll(w, "f1", visPayload(0), vfs.Truncate) },
			write: func(w vfs.FS, seq int) error { return writeAll(w, "f1", visPayload(seq), vfs.Truncate) },
			reader: func(r vfs.FS, _ func(error)) (func(int) bool, func()) {
				return func(seq int) bool { return visSeq(read64(r, "f1")) >= seq }, func() {}
			}},
		{name: "overwrite-openfd", desc: "pwrite+close; reader keeps its fd, pread",
			setup: func(w vfs.FS) error { return writeAll(w, "f2", visPayload(0), vfs.Truncate) },
			write: func(w vfs.FS, seq int) error { return writeAll(w, "f2", visPayload(seq), 0) },
			reader: func(r vfs.FS, _ func(error)) (func(int) bool, func()) {
				return keepOpen(r, "f2", func(f vfs.File, seq int) bool {
					b := make([]byte, 64)
					n, _ := f.ReadAt(b, 0)
					return visSeq(b[:n]) >= seq
				})
			}},
		{name: "rename-replace", desc: "write tmp, rename over; reader open+read+close",
			setup: func(w vfs.FS) error {
				if err := writeAll(w, "f3.tmp", visPayload(0), vfs.Truncate); err != nil {
					return err
				}
				return w.Rename("f3.tmp", "f3")
			},
			write: func(w vfs.FS, seq int) error {
				if err := writeAll(w, "f3.tmp", visPayload(seq), vfs.Truncate); err != nil {
					return err
				}
				return w.Rename("f3.tmp", "f3")
			},
			reader: func(r vfs.FS, _ func(error)) (func(int) bool, func()) {
				return func(seq int) bool { return visSeq(read64(r, "f3")) >= seq }, func() {}
			}},
		{name: "create-new", desc: "create new.N; reader stat(new.N) (negative lookup cache)",
			setup: func(w vfs.FS) error { return nil },
			write: func(w vfs.FS, seq int) error {
				return writeAll(w, fmt.Sprintf("new.%d", seq), visPayload(seq), vfs.Excl)
			},
			reader: func(r vfs.FS, _ func(error)) (func(int) bool, func()) {
				return func(seq int) bool {
					_, err := r.Stat(fmt.Sprintf("new.%d", seq))
					return err == nil
				}, func() {}
			}},
		{name: "append-tail", desc: "O_APPEND 64 B+close; reader keeps its fd, fstat size",
			setup: func(w vfs.FS) error { return writeAll(w, "log", visPayload(0), vfs.Truncate) },
			write: func(w vfs.FS, seq int) error { return writeAll(w, "log", visPayload(seq), vfs.Append) },
			reader: func(r vfs.FS, _ func(error)) (func(int) bool, func()) {
				return keepOpen(r, "log", func(f vfs.File, seq int) bool {
					st, err := f.Stat()
					return err == nil && st.Size >= int64(64*(seq+1))
				})
			}},
		// StatFresh (statx AT_STATX_FORCE_SYNC), not in vistest: the
		// reader never opens the file, so only the forced GETATTR can
		// show the change before the attribute cache expires.
		{name: "append-statfresh", desc: "O_APPEND 64 B+close; reader StatFresh size (no open)",
			setup: func(w vfs.FS) error { return writeAll(w, "log2", visPayload(0), vfs.Truncate) },
			write: func(w vfs.FS, seq int) error { return writeAll(w, "log2", visPayload(seq), vfs.Append) },
			reader: func(r vfs.FS, note func(error)) (func(int) bool, func()) {
				return func(seq int) bool {
					st, err := r.StatFresh("log2")
					note(err)
					return err == nil && st.Size >= int64(64*(seq+1))
				}, func() {}
			}},
		{name: "replace-statfresh", desc: "write tmp (64+N B), rename over; reader StatFresh size",
			setup: func(w vfs.FS) error { return replaceFile(w, "f4", 0) },
			write: func(w vfs.FS, seq int) error { return replaceFile(w, "f4", seq) },
			reader: func(r vfs.FS, note func(error)) (func(int) bool, func()) {
				return func(seq int) bool {
					st, err := r.StatFresh("f4")
					note(err)
					return err == nil && st.Size >= int64(64+seq)
				}, func() {}
			}},
		{name: "remove-statfresh", desc: "create gone.N+1, remove gone.N; reader StatFresh(gone.N) until ENOENT",
			setup: func(w vfs.FS) error { return writeAll(w, "gone.1", visPayload(1), vfs.Truncate) },
			write: func(w vfs.FS, seq int) error {
				if err := writeAll(w, fmt.Sprintf("gone.%d", seq+1), visPayload(seq+1), vfs.Truncate); err != nil {
					return err
				}
				return w.Remove(fmt.Sprintf("gone.%d", seq))
			},
			reader: func(r vfs.FS, note func(error)) (func(int) bool, func()) {
				_, _ = r.StatFresh("gone.1") // resolve it before it is removed
				return func(seq int) bool {
					_, err := r.StatFresh(fmt.Sprintf("gone.%d", seq))
					if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, vfs.ErrStale) {
						return true
					}
					note(err) // ESTALE would be the VFS retry failing
					return false
				}, func() {}
			}},
		{name: "create-statfresh-dir", desc: "create new2.N; reader StatFresh(.) then StatFresh(new2.N) (the directory's GETATTR drops the negative entry)",
			setup: func(w vfs.FS) error { return nil },
			write: func(w vfs.FS, seq int) error {
				return writeAll(w, fmt.Sprintf("new2.%d", seq), visPayload(seq), vfs.Excl)
			},
			reader: func(r vfs.FS, note func(error)) (func(int) bool, func()) {
				return func(seq int) bool {
					_, err := r.StatFresh(".")
					note(err)
					_, err = r.StatFresh(fmt.Sprintf("new2.%d", seq))
					if err != nil && !errors.Is(err, fs.ErrNotExist) {
						note(err)
					}
					return err == nil
				}, func() {}
			}},
	}
}

// replaceFile writes name.tmp with 64+extra bytes and renames it over
// name.
func replaceFile(w vfs.FS, name string, extra int) error {
	data := append(visPayload(extra), bytes.Repeat([]byte("+"), extra)...)
	if err := writeAll(w, name+".tmp", data, vfs.Truncate); err != nil {
		return err
	}
	return w.Rename(name+".tmp", name)
}

// errTally counts errors by errno name (ESTALE, ENOENT, ...).
type errTally map[string]int

func (t errTally) note(err error) {
	if err == nil {
		return
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			t[name]++
			return
		}
	}
	t[err.Error()]++
}

func (t errTally) String() string {
	if len(t) == 0 {
		return "none"
	}
	var parts []string
	for k, n := range t {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// visResult is what calib-vis writes (vis.json, by the reader).
type visResult struct {
	Side     string               `json:"side"`
	Opts     string               `json:"opts"`
	Patterns map[string][]float64 `json:"lags_ms"`     // per pattern, the lags of the iterations seen (< 0 within the clock error)
	Lost     map[string]int       `json:"not_visible"` // per pattern, iterations never seen within -max
	Polls    map[string][]int     `json:"polls"`       // reader polls per iteration
	RPCs     map[string]string    `json:"reader_rpcs"` // reader's RPCs over the pattern
	// Errors are the errors the reader's polls met besides the outcome
	// they wait for, per pattern, by errno class.
	Errors map[string]errTally `json:"reader_errors,omitempty"`
}

func signalFile(shared, name string) error {
	return os.WriteFile(filepath.Join(shared, name), []byte("1"), 0o644)
}

// waitFile waits for the side-channel file name; false after max, or at
// once when a guest of the run failed (its job wrote ABORT).
func waitFile(shared, name string, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(shared, name)); err == nil {
			return true
		}
		if _, err := os.Stat(filepath.Join(shared, "ABORT")); err == nil {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

// guestCalibVis: host1 writes, host2 polls every -poll, both on osfs over
// their own mount; the lag is reader's "seen" minus writer's "write+close
// returned", on host-synced guest clocks (a few ms of error).
func guestCalibVis(args []string) error {
	fl := flag.NewFlagSet("calib-vis", flag.ExitOnError)
	n := fl.Int("n", 2, "iterations per pattern")
	max := fl.Duration("max", 65*time.Second, "give up on one iteration after this")
	poll := fl.Duration("poll", time.Millisecond, "reader poll interval")
	only := fl.String("only", "", "comma-separated pattern names")
	fl.Parse(args)
	ge := getGuestEnv()
	dir := filepath.Join(ge.Mnt, "calib-vis")
	writer := ge.Index == 1
	if writer {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		signalFile(ge.Shared, "dir-ready")
	} else if !waitFile(ge.Shared, "dir-ready", 120*time.Second) {
		return fmt.Errorf("the writer never got ready")
	}
	fsys, err := osfs.New(dir)
	if err != nil {
		return err
	}
	defer fsys.Close()
	res := visResult{Side: "real", Opts: stripServerOpts(ge.Opts), Patterns: map[string][]float64{},
		Polls: map[string][]int{}, RPCs: map[string]string{}, Lost: map[string]int{}, Errors: map[string]errTally{}}
	for _, p := range visPatterns() {
		if *only != "" && !strings.Contains(","+*only+",", ","+p.name+",") {
			continue
		}
		if writer {
			if err := p.setup(fsys); err != nil {
				return err
			}
			signalFile(ge.Shared, p.name+".setup")
			waitFile(ge.Shared, p.name+".reader-ready", 120*time.Second)
			for seq := 1; seq <= *n; seq++ {
				time.Sleep(300 * time.Millisecond) // let the reader's caches settle, as vistest does
				if err := p.write(fsys, seq); err != nil {
					return err
				}
				done := time.Now()
				os.WriteFile(filepath.Join(ge.Shared, fmt.Sprintf("%s.w%d", p.name, seq)), []byte(strconv.FormatInt(done.UnixNano(), 10)), 0o644)
				waitFile(ge.Shared, fmt.Sprintf("%s.ack%d", p.name, seq), *max+15*time.Second)
			}
			fmt.Printf("writer pattern=%s done\n", p.name)
			continue
		}
		waitFile(ge.Shared, p.name+".setup", 300*time.Second)
		before, _ := readCounts(ge.Mnt)
		tally := errTally{}
		pollFn, closeFn := p.reader(fsys, tally.note)
		pollFn(0) // warm the caches with the old state
		signalFile(ge.Shared, p.name+".reader-ready")
		for seq := 1; seq <= *n; seq++ {
			start := time.Now()
			polls, seen, seenAt := 0, false, time.Time{}
			for time.Since(start) < *max+10*time.Second {
				polls++
				if pollFn(seq) {
					seen, seenAt = true, time.Now()
					break
				}
				time.Sleep(*poll)
			}
			wf := filepath.Join(ge.Shared, fmt.Sprintf("%s.w%d", p.name, seq))
			var wt int64
			for range 2000 { // the side channel may lag a little
				if b, err := os.ReadFile(wf); err == nil && len(b) > 0 {
					wt, _ = strconv.ParseInt(string(b), 10, 64)
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if seen {
				lag := float64(seenAt.UnixNano()-wt) / 1e6
				fmt.Printf("reader pattern=%s seq=%d lag_ms=%.1f polls=%d\n", p.name, seq, lag, polls)
				res.Patterns[p.name] = append(res.Patterns[p.name], lag)
			} else {
				fmt.Printf("reader pattern=%s seq=%d NOT VISIBLE after %v\n", p.name, seq, time.Since(start).Round(time.Millisecond))
				res.Lost[p.name]++
			}
			res.Polls[p.name] = append(res.Polls[p.name], polls)
			signalFile(ge.Shared, fmt.Sprintf("%s.ack%d", p.name, seq))
		}
		closeFn()
		after, _ := readCounts(ge.Mnt)
		res.RPCs[p.name] = after.sub(before).String()
		if len(tally) > 0 {
			res.Errors[p.name] = tally
		}
	}
	if writer {
		return nil
	}
	return writeJSON(filepath.Join(ge.Out, "vis.json"), res)
}

// simVisResult is what simVis observed of a pattern on nfssim.
type simVisResult struct {
	lags  []float64 // ms, of the iterations seen
	lost  int       // iterations never seen within 65 s
	rpcs  string    // the reader's RPCs over the pattern
	polls int       // the reader's polls, the warm-up one included
	errs  errTally  // errors the polls met besides the outcome
}

// simVis runs a pattern n times on two nfssim hosts with the mount m, the
// reader polling every millisecond of simulated time (as nfssim's
// TestCalibrationLabVisibility does).
func simVis(p visPattern, m nfssim.Mount, n int) (simVisResult, error) {
	var res simVisResult
	s := nfssim.New(nfssim.DefaultConfig(1))
	defer s.Close()
	w, err := s.AddHost("host1", m)
	if err != nil {
		return res, err
	}
	r, err := s.AddHost("host2", m)
	if err != nil {
		return res, err
	}
	if err := p.setup(w.FS()); err != nil {
		return res, err
	}
	before := r.RPCs()
	res.errs = errTally{}
	poll, done := p.reader(r.FS(), res.errs.note)
	defer done()
	poll(0)
	res.polls++
	for seq := 1; seq <= n; seq++ {
		start := s.Now()
		var written time.Duration = -1
		for {
			if written < 0 && s.Now()-start >= 300*time.Millisecond {
				if err := p.write(w.FS(), seq); err != nil {
					return res, err
				}
				written = s.Now()
			}
			seen := poll(seq)
			res.polls++
			if seen && written < 0 {
				return res, fmt.Errorf("%s seq %d: seen before it was written", p.name, seq)
			}
			if seen {
				res.lags = append(res.lags, float64(s.Now()-written)/1e6)
				break
			}
			if written >= 0 && s.Now()-written > 65*time.Second {
				res.lost++
				break
			}
			s.Advance(time.Millisecond)
		}
	}
	res.rpcs = r.RPCs().Sub(before).String()
	return res, nil
}

// perPoll is "OP=x.xx ..." for counts over polls.
func perPoll(c opCounts, polls int) string {
	if polls == 0 {
		return "-"
	}
	var names []string
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s=%.2f", k, float64(c[k])/float64(polls)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func lagSummary(l []float64, lost int) string {
	seen := append([]float64(nil), l...)
	sort.Float64s(seen)
	s := "-"
	if len(seen) > 0 {
		s = fmt.Sprintf("%.1f / %.1f / %.1f", seen[0], seen[len(seen)/2], seen[len(seen)-1])
	}
	if lost > 0 {
		s += fmt.Sprintf(" (%d never seen in 65 s)", lost)
	}
	return s
}

// visNoise: below it a lag is "immediate". The guests step their clocks to
// the host's within a few ms, but under TCG on a shared 2-core machine one
// poll (open+read+close) can be descheduled for tens of ms; every cache
// effect measured here is a second or more.
const visNoise = 100.0

// reportVis prints real vs nfssim lags for every vis.json found.
func reportVis(args []string) error {
	files, err := findFiles(args, "vis.json")
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no vis.json under %v", args)
	}
	ndiff := 0
	for _, f := range files {
		var real visResult
		if err := readJSON(f, &real); err != nil {
			return err
		}
		m, err := optsToMount(real.Opts)
		if err != nil {
			return err
		}
		fmt.Printf("\n### Visibility lags, %s (host1 writes, host2 polls every 1 ms; min / median / max ms)\n\n", real.Opts)
		fmt.Println("| pattern | real client | nfssim | verdict | reader RPCs real / nfssim |")
		fmt.Println("|---|---|---|---|---|")
		var notes []string
		for _, p := range visPatterns() {
			rl, ok := real.Patterns[p.name]
			rlost := real.Lost[p.name]
			if !ok && rlost == 0 {
				continue
			}
			sim, err := simVis(p, m, len(rl)+rlost)
			if err != nil {
				return err
			}
			verdict := visVerdict(rl, rlost, sim.lags, sim.lost)
			if verdict != "same" {
				ndiff++
			}
			fmt.Printf("| %s | %s | %s | %s | %s / %s |\n", p.name, lagSummary(rl, rlost), lagSummary(sim.lags, sim.lost), verdict, real.RPCs[p.name], sim.rpcs)
			if !strings.Contains(p.name, "statfresh") && len(real.Errors[p.name])+len(sim.errs) == 0 {
				continue
			}
			rpolls := 1 // the warm-up poll
			for _, n := range real.Polls[p.name] {
				rpolls += n
			}
			notes = append(notes, fmt.Sprintf("- %s: reader RPCs per poll (setup and warm-up included): real %s over %d polls, nfssim %s over %d; errors besides the outcome: real %v, nfssim %v",
				p.name, perPoll(parseCounts(real.RPCs[p.name]), rpolls), rpolls, perPoll(parseCounts(sim.rpcs), sim.polls), sim.polls, real.Errors[p.name], sim.errs))
		}
		if len(notes) > 0 {
			fmt.Printf("\n%s\n", strings.Join(notes, "\n"))
		}
	}
	fmt.Printf("\nvisibility calibration: %d pattern(s) differ beyond the %.0f ms noise floor\n", ndiff, visNoise)
	return nil
}

// visVerdict compares the lags: "same" within the noise floor (and 10%),
// "nfssim KINDER" when the real client hid a change longer than nfssim
// ever does (nfssim must never be kinder), "nfssim harsher" otherwise.
func visVerdict(real []float64, rlost int, sim []float64, slost int) string {
	mx := func(l []float64, lost int) float64 {
		m := 0.0
		if lost > 0 {
			return 65000
		}
		for _, x := range l {
			m = max(m, x)
		}
		return m
	}
	mn := func(l []float64) float64 {
		m := 65000.0
		for _, x := range l {
			m = min(m, x)
		}
		return m
	}
	rmax, smax := mx(real, rlost), mx(sim, slost)
	tol := func(a float64) float64 { return visNoise + 0.1*a }
	switch {
	case rmax > smax+tol(smax):
		return fmt.Sprintf("nfssim KINDER (real max %.0f ms > nfssim max %.0f ms)", rmax, smax)
	case smax > rmax+tol(rmax) && mn(sim) > mn(real)+tol(mn(real)):
		return "nfssim harsher (hides longer)"
	case smax > rmax+tol(rmax):
		return "nfssim harsher at the max"
	}
	return "same"
}
