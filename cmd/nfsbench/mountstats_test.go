package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readSample(t *testing.T, name string) []*mountStats {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := parseMountstats(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ms
}

// TestMountstatsRecordedSamples parses mountstats recorded on a real Linux
// 6.1 client (shared/nfslab: vistest rpc, v3 and v4.2, before and after)
// and checks the per-op deltas the lab reported for that run.
func TestMountstatsRecordedSamples(t *testing.T) {
	tests := []struct {
		name    string
		fstype  string
		version string
		want    rpcCounts // after minus before
	}{
		{"mountstats-v3", "nfs", "3", rpcCounts{
			"GETATTR": 7, "SETATTR": 1, "LOOKUP": 5, "ACCESS": 6, "WRITE": 4, "CREATE": 4,
			"MKDIR": 1, "REMOVE": 3, "RMDIR": 2, "RENAME": 1, "READDIRPLUS": 2,
		}},
		{"mountstats-v42", "nfs4", "4.2", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := readSample(t, tc.name+".before")
			after := readSample(t, tc.name+".after")
			if len(before) != 8 || len(after) != 8 {
				t.Fatalf("%d and %d mounts, want 8", len(before), len(after))
			}
			mb, ma := mountFor(before, "/mnt/nfs/dir"), mountFor(after, "/mnt/nfs")
			if mb == nil || ma == nil || ma.MountPoint != "/mnt/nfs" || !ma.isNFS() {
				t.Fatalf("mount of /mnt/nfs: %+v", ma)
			}
			if ma.FSType != tc.fstype || ma.version() != tc.version {
				t.Errorf("fstype %s version %s, want %s %s", ma.FSType, ma.version(), tc.fstype, tc.version)
			}
			d := ma.Ops.sub(mb.Ops)
			if tc.want != nil && d.String() != tc.want.String() {
				t.Errorf("delta %s\nwant  %s", d, tc.want)
			}
			if d.total() == 0 {
				t.Error("no RPCs between before and after")
			}
			if _, ok := ma.Ops["NULL"]; !ok {
				t.Error("NULL line not parsed")
			}
			// Mounts other than NFS are found but have no statistics.
			if m := mountFor(after, "/tmp/x"); m == nil || m.isNFS() || m.FSType != "tmpfs" || m.Ops != nil {
				t.Errorf("mount of /tmp/x: %+v", m)
			}
			if m := mountFor(after, "/lab2"); m == nil || m.MountPoint != "/" {
				t.Errorf("/lab2 must fall back to the root mount, got %+v", m)
			}
		})
	}
	// v4.2: the ops the v4 client names differently.
	after := mountFor(readSample(t, "mountstats-v42.after"), "/mnt/nfs")
	for op, n := range map[string]uint64{"OPEN": 4, "OPEN_NOATTR": 3, "CLOSE": 7, "ACCESS": 12, "EXCHANGE_ID": 2, "READ_PLUS": 0} {
		if got, ok := after.Ops[op]; !ok || got != n {
			t.Errorf("v4.2 %s = %d (present %v), want %d", op, got, ok, n)
		}
	}
}

func TestMountstatsEscapedNames(t *testing.T) {
	text := "device srv:/export\\040a mounted on /mnt/my\\040nfs with fstype nfs statvers=1.1\n" +
		"\topts:\trw,vers=3\n\tper-op statistics\n\t     GETATTR: 3 3 0 1 2 3 4 5 0\n"
	ms, err := parseMountstats(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	m := mountFor(ms, "/mnt/my nfs/x")
	if m == nil || m.MountPoint != "/mnt/my nfs" || m.Device != "srv:/export a" || m.Ops["GETATTR"] != 3 {
		t.Fatalf("got %+v", m)
	}
	if mountFor(ms, "/mnt/my nfsx") != nil {
		t.Error("/mnt/my nfsx is not under /mnt/my nfs")
	}
}

func TestMountstatsMalformed(t *testing.T) {
	for name, text := range map[string]string{
		"BadDevice": "device only three\n",
		"Preamble":  "garbage\ndevice a mounted on / with fstype ext4\n",
		"BadCount":  "device s:/e mounted on /m with fstype nfs\n\tper-op statistics\n\t GETATTR: x 1 2\n",
		"NoCount":   "device s:/e mounted on /m with fstype nfs\n\tper-op statistics\n\t GETATTR:\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseMountstats(strings.NewReader(text)); !errors.Is(err, errMountstats) {
				t.Fatalf("err = %v, want errMountstats", err)
			}
		})
	}
}

// writeMountstats writes a fake mountstats that puts dir's file system
// root on NFS (with ops) or on ext4.
func writeMountstats(t *testing.T, nfs, withOps bool) string {
	t.Helper()
	text := "device /dev/vda mounted on / with fstype ext4\n"
	if nfs {
		text = "device srv:/export mounted on / with fstype nfs statvers=1.1\n\topts:\trw,vers=3,rsize=1048576\n"
		if withOps {
			text += "\tper-op statistics\n\t        NULL: 1 1 0 44 24 1 0 2 0\n\t     GETATTR: 7 7 0 700 784 0 5 7 0\n\n"
		}
	}
	p := filepath.Join(t.TempDir(), "mountstats")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDirEnvRPCSource: a directory on NFS counts RPCs from mountstats; one
// that is not reports why they are unavailable; an NFS mount whose
// statistics are missing or unreadable is an error, not "unavailable".
func TestDirEnvRPCSource(t *testing.T) {
	dir := t.TempDir()
	e, err := newDirEnv(dir, writeMountstats(t, true, true))
	if err != nil {
		t.Fatal(err)
	}
	c, ok, err := e.rpcs("mx1")
	if e.mode() != "nfs" || !e.namespaceDurable() || !ok || err != nil || c["GETATTR"] != 7 {
		t.Errorf("NFS: mode %s, counts %v %v %v", e.mode(), c, ok, err)
	}
	e.close()

	e, err = newDirEnv(dir, writeMountstats(t, false, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.rpcs("mx1"); ok || e.mode() != "local" || !strings.Contains(e.rpcSource(), "not NFS") {
		t.Errorf("ext4: mode %s, ok %v, source %q", e.mode(), ok, e.rpcSource())
	}
	e.close()

	if _, err := newDirEnv(dir, writeMountstats(t, true, false)); !errors.Is(err, errMountstats) {
		t.Errorf("NFS mount without per-op statistics: %v, want errMountstats", err)
	}
	// An unreadable mountstats on a directory that is not on NFS only
	// makes the counts unavailable.
	e, err = newDirEnv(dir, filepath.Join(dir, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.rpcSource(), "unavailable") {
		t.Errorf("source %q", e.rpcSource())
	}
	e.close()
}
