package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// opCounts are RPC calls per procedure, named as /proc/self/mountstats
// (and nfssim.RPC) name them.
type opCounts map[string]uint64

// String formats counts as nfssim.Counts.String does: "A=1 B=2" sorted by
// name, "none" when empty. Zero entries are left out.
func (c opCounts) String() string {
	var parts []string
	for k, v := range c {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func (c opCounts) Total() uint64 {
	var t uint64
	for _, v := range c {
		t += v
	}
	return t
}

// sub returns c minus before (per op; counters only grow).
func (c opCounts) sub(before opCounts) opCounts {
	d := opCounts{}
	for k, v := range c {
		if v > before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// parseCounts parses "A=1 B=2" (or "none").
func parseCounts(s string) opCounts {
	c := opCounts{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		c[k] = n
	}
	return c
}

// nfsEvents are the names of the "events:" counters (fs/nfs/iostat.h order).
var nfsEvents = []string{
	"inoderevalidate", "dentryrevalidate", "datainvalidate", "attrinvalidate",
	"vfsopen", "vfslookup", "vfsaccess", "vfsupdatepage", "vfsreadpage",
	"vfsreadpages", "vfswritepage", "vfswritepages", "vfsgetdents",
	"vfssetattr", "vfsflush", "vfsfsync", "vfslock", "vfsrelease",
	"congestionwait", "setattrtrunc", "extendwrite", "sillyrename",
	"shortread", "shortwrite", "delay", "pnfs_read", "pnfs_write",
}

// mountStats is one NFS mount's entry of /proc/self/mountstats.
type mountStats struct {
	Device, Mountpoint, FSType string
	Events                     []uint64
	Ops                        map[string][]uint64 // ops, trans, timeouts, bytes_sent, bytes_recv, queue, rtt, exec, errors
	OpOrder                    []string
}

func parseMountstats(data []byte) []*mountStats {
	var all []*mountStats
	var cur *mountStats
	inOps := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "device ") {
			f := strings.Fields(line)
			cur, inOps = nil, false
			// device SRC mounted on MNT with fstype TYPE ...
			if len(f) >= 8 && (f[7] == "nfs" || f[7] == "nfs4") {
				cur = &mountStats{Device: f[1], Mountpoint: f[4], FSType: f[7], Ops: map[string][]uint64{}}
				all = append(all, cur)
			}
			continue
		}
		if cur == nil {
			continue
		}
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "events:"):
			for _, s := range strings.Fields(t)[1:] {
				n, _ := strconv.ParseUint(s, 10, 64)
				cur.Events = append(cur.Events, n)
			}
		case strings.HasPrefix(t, "per-op statistics"):
			inOps = true
		case inOps && strings.Contains(t, ":"):
			name, rest, _ := strings.Cut(t, ":")
			var vals []uint64
			for _, s := range strings.Fields(rest) {
				n, _ := strconv.ParseUint(s, 10, 64)
				vals = append(vals, n)
			}
			cur.Ops[name] = vals
			cur.OpOrder = append(cur.OpOrder, name)
		}
	}
	return all
}

// countsOf returns the "ops" column of the mount at mnt (summed if the
// mount point shows up more than once, as a v4 referral would).
func countsOf(all []*mountStats, mnt string) opCounts {
	c := opCounts{}
	for _, m := range all {
		if m.Mountpoint != mnt {
			continue
		}
		for k, v := range m.Ops {
			if len(v) > 0 {
				c[k] += v[0]
			}
		}
	}
	return c
}

// readCounts reads /proc/self/mountstats now.
func readCounts(mnt string) (opCounts, error) {
	b, err := os.ReadFile("/proc/self/mountstats")
	if err != nil {
		return nil, err
	}
	return countsOf(parseMountstats(b), mnt), nil
}

// diffMountstats prints per-op deltas (after-before) of every NFS mount
// (or just mp), with bytes, rtt and errors.
func diffMountstats(before, after []*mountStats, mp string) string {
	var sb strings.Builder
	for _, a := range after {
		if mp != "" && a.Mountpoint != mp {
			continue
		}
		b := &mountStats{Ops: map[string][]uint64{}}
		for _, x := range before {
			if x.Mountpoint == a.Mountpoint && x.Device == a.Device {
				b = x
			}
		}
		sub := func(a, b []uint64, i int) uint64 {
			var x, y uint64
			if i < len(a) {
				x = a[i]
			}
			if i < len(b) {
				y = b[i]
			}
			return x - y
		}
		fmt.Fprintf(&sb, "mount %s on %s (%s)\n", a.Device, a.Mountpoint, a.FSType)
		fmt.Fprintf(&sb, "  %-22s %8s %8s %10s %10s %8s %8s %6s\n", "op", "ops", "trans", "bytes_sent", "bytes_recv", "rtt_ms", "exec_ms", "errors")
		var total, trans uint64
		for _, op := range a.OpOrder {
			av, bv := a.Ops[op], b.Ops[op]
			n := sub(av, bv, 0)
			if n == 0 {
				continue
			}
			total += n
			trans += sub(av, bv, 1)
			fmt.Fprintf(&sb, "  %-22s %8d %8d %10d %10d %8d %8d %6d\n", op, n, sub(av, bv, 1),
				sub(av, bv, 3), sub(av, bv, 4), sub(av, bv, 6), sub(av, bv, 7), sub(av, bv, 8))
		}
		fmt.Fprintf(&sb, "  %-22s %8d %8d\n", "TOTAL", total, trans)
		var evs []string
		for i := range a.Events {
			if d := sub(a.Events, b.Events, i); d != 0 {
				name := fmt.Sprintf("ev%d", i)
				if i < len(nfsEvents) {
					name = nfsEvents[i]
				}
				evs = append(evs, fmt.Sprintf("%s=%d", name, d))
			}
		}
		sort.Strings(evs)
		fmt.Fprintf(&sb, "  events: %s\n", strings.Join(evs, " "))
	}
	return sb.String()
}

func cmdMountstatsDiff(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: nfse2e mountstats-diff BEFORE AFTER [MOUNTPOINT]")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	a, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	mp := ""
	if len(args) > 2 {
		mp = args[2]
	}
	_, err = os.Stdout.WriteString(diffMountstats(parseMountstats(b), parseMountstats(a), mp))
	return err
}
