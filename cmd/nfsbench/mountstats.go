package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// mountStats is one mount of /proc/self/mountstats. Only NFS mounts carry
// per-operation statistics; every other mount is listed with its device,
// mount point and file system type so that a path can be matched to the
// mount that holds it.
type mountStats struct {
	Device     string
	MountPoint string
	FSType     string
	// Opts is the "opts:" line of an NFS mount (vers=3,rsize=...).
	Opts string
	// Ops are the calls per RPC procedure of the "per-op statistics"
	// section: the first number of each line, which counts every call
	// the client made (retransmissions are counted once).
	Ops rpcCounts
}

// isNFS reports whether the mount is an NFS mount (nfs or nfs4).
func (m *mountStats) isNFS() bool { return m.FSType == "nfs" || m.FSType == "nfs4" }

// version returns the vers= mount option ("3", "4.2"), or "" if absent.
func (m *mountStats) version() string {
	for _, o := range strings.Split(m.Opts, ",") {
		if v, ok := strings.CutPrefix(o, "vers="); ok {
			return v
		}
	}
	return ""
}

// errMountstats is returned when mountstats text cannot be understood.
var errMountstats = errors.New("nfsbench: unreadable mountstats")

// parseMountstats parses the text of /proc/self/mountstats (statvers 1.0
// and 1.1, NFSv3 and v4.x). A line it does not recognise inside a mount's
// block is skipped; a "device" line that is malformed, or a per-op line
// whose count is not a number, is an error: counts read from a misparsed
// file would measure something else.
func parseMountstats(r io.Reader) ([]*mountStats, error) {
	var mounts []*mountStats
	var cur *mountStats
	inOps := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if strings.HasPrefix(line, "device ") {
			m, err := parseDeviceLine(line)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", errMountstats, lineNo, err)
			}
			mounts = append(mounts, m)
			cur, inOps = m, false
			continue
		}
		if cur == nil {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("%w: line %d: text before the first device line", errMountstats, lineNo)
		}
		field := strings.TrimSpace(line)
		switch {
		case field == "":
			inOps = false
		case strings.HasPrefix(field, "opts:"):
			cur.Opts = strings.TrimSpace(strings.TrimPrefix(field, "opts:"))
		case field == "per-op statistics":
			inOps = true
			cur.Ops = rpcCounts{}
		case inOps:
			name, rest, ok := strings.Cut(field, ":")
			if !ok {
				inOps = false
				continue
			}
			nums := strings.Fields(rest)
			if len(nums) == 0 {
				return nil, fmt.Errorf("%w: line %d: %s has no counts", errMountstats, lineNo, name)
			}
			n, err := strconv.ParseUint(nums[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %s: %v", errMountstats, lineNo, name, err)
			}
			cur.Ops[strings.TrimSpace(name)] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", errMountstats, err)
	}
	return mounts, nil
}

// parseDeviceLine parses "device D mounted on M with fstype T [statvers=V]".
func parseDeviceLine(line string) (*mountStats, error) {
	f := strings.Fields(line)
	// device D mounted on M with fstype T ...
	if len(f) < 8 || f[0] != "device" || f[2] != "mounted" || f[3] != "on" || f[5] != "with" || f[6] != "fstype" {
		return nil, fmt.Errorf("malformed device line %q", line)
	}
	return &mountStats{Device: unescapeOctal(f[1]), MountPoint: unescapeOctal(f[4]), FSType: f[7]}, nil
}

// unescapeOctal undoes the kernel's escaping of space, tab, newline and
// backslash in names (\040, \011, \012, \134).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountFor returns the mount that holds the absolute, symlink-free path p:
// the one with the longest mount point that is p or a parent of it. The
// last such line wins when several mounts share a mount point (the one
// mounted on top).
func mountFor(mounts []*mountStats, p string) *mountStats {
	var best *mountStats
	for _, m := range mounts {
		mp := m.MountPoint
		if p == mp || mp == "/" || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/") {
			if best == nil || len(mp) >= len(best.MountPoint) {
				best = m
			}
		}
	}
	return best
}

// rpcCounts are calls per RPC procedure, named as mountstats and nfssim
// name them.
type rpcCounts map[string]uint64

// sub returns c minus an earlier snapshot, leaving out procedures that did
// not change.
func (c rpcCounts) sub(before rpcCounts) rpcCounts {
	d := rpcCounts{}
	for k, v := range c {
		if v > before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// add adds d to c in place.
func (c rpcCounts) add(d rpcCounts) {
	for k, v := range d {
		c[k] += v
	}
}

func (c rpcCounts) total() uint64 {
	var t uint64
	for _, v := range c {
		t += v
	}
	return t
}

// String formats the non-zero counts as "A=1 B=2", sorted by name.
func (c rpcCounts) String() string {
	var parts []string
	for k, v := range c {
		if v > 0 {
			parts = append(parts, k+"="+strconv.FormatUint(v, 10))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// findMount returns the mount that holds dir according to the mountstats
// file, or nil if none does, and an error when the file cannot be read or
// parsed.
func findMount(mountstatsPath, dir string) (*mountStats, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	mounts, err := readMountstats(mountstatsPath)
	if err != nil {
		return nil, err
	}
	return mountFor(mounts, abs), nil
}

// readMountstats reads and parses a mountstats file.
func readMountstats(path string) ([]*mountStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMountstats, err)
	}
	defer f.Close()
	return parseMountstats(f)
}

// mountCounter reads the per-op counts of one NFS mount, found again by
// its mount point at every read (mountstats lists mounts in mount order,
// which may change between reads).
type mountCounter struct {
	path       string // /proc/self/mountstats
	mountPoint string
	device     string
}

// counts returns the mount's per-op counts now.
func (c *mountCounter) counts() (rpcCounts, error) {
	mounts, err := readMountstats(c.path)
	if err != nil {
		return nil, err
	}
	var found *mountStats
	for _, m := range mounts {
		if m.MountPoint == c.mountPoint && m.Device == c.device {
			found = m
		}
	}
	if found == nil || found.Ops == nil {
		return nil, fmt.Errorf("%w: mount %s (%s) vanished from %s", errMountstats, c.mountPoint, c.device, c.path)
	}
	return found.Ops, nil
}
