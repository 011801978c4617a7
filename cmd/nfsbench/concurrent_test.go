package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFlagsConcurrentSim runs flags-concurrent on the simulator and checks
// its figures: a group of G single flag changes costs G SYMLINKs and one
// shared publish WRITE on NFSv3, so 1 + 1/G RPCs and 1/G syncs per commit,
// and the average group the workload tells from the syncs is G. Were group
// commit broken (each transaction of a group published on its own), every
// commit would cost SYMLINK + WRITE = 2 RPCs and one sync, its group 1.
func TestFlagsConcurrentSim(t *testing.T) {
	tests := []struct {
		committers, ops int
		groups          int // CommitGroup calls: ops / committers, rounded up
	}{
		{committers: 8, ops: 64, groups: 8},
		{committers: 16, ops: 20, groups: 2}, // a last, smaller group
		{committers: 1, ops: 10, groups: 10}, // no sharing: what a broken group commit would cost
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("G%d", tc.committers), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.json")
			code, out, errs := runArgs(t, "-sim", "-workloads", "flags-concurrent", "-messages", "400", "-batch", "50",
				"-flag-ops", strconv.Itoa(tc.ops), "-committers", strconv.Itoa(tc.committers), "-q", "-json", path)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errs)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Results []Result `json:"results"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Results) != 1 {
				t.Fatalf("%d results, want 1: %+v", len(doc.Results), doc.Results)
			}
			r := doc.Results[0]
			if r.Workload != "flags-concurrent" || r.Mode != "sim" || r.System != "nfsindex" || r.Hosts != 1 ||
				r.Ops != tc.ops || r.ItemsPerOp != 1 {
				t.Fatalf("row %s/%s/%s hosts %d ops %d items %v, want flags-concurrent/sim/nfsindex, 1 host, %d ops of 1 change",
					r.Workload, r.Mode, r.System, r.Hosts, r.Ops, r.ItemsPerOp, tc.ops)
			}
			near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
			perCommit := float64(tc.groups) / float64(tc.ops) // one publish WRITE, one sync per group
			want := map[string]float64{"total": 1 + perCommit, "SYMLINK": 1, "WRITE": perCommit}
			for k, v := range r.RPCsPerOp {
				if !near(v, want[k]) {
					t.Errorf("RPCs per commit: %s %v, want %v (all: %v)", k, v, want[k], r.RPCsPerOp)
				}
			}
			for k, v := range want {
				if _, ok := r.RPCsPerOp[k]; !ok && v != 0 {
					t.Errorf("RPCs per commit: no %s (all: %v)", k, r.RPCsPerOp)
				}
			}
			if r.SyncsPerOp == nil {
				t.Errorf("syncs per commit: none, want %v", perCommit)
			} else if !near(*r.SyncsPerOp, perCommit) {
				t.Errorf("syncs per commit %v, want %v", *r.SyncsPerOp, perCommit)
			}
			if wantGroup := float64(tc.ops) / float64(tc.groups); !near(r.AvgGroup, wantGroup) {
				t.Errorf("average group %v, want %v", r.AvgGroup, wantGroup)
			}
			if tc.committers == 8 && r.RPCsPerOp["total"] > 1.2 {
				t.Errorf("%v RPCs per commit in groups of 8: group commit shares nothing (2 would be one publish each)", r.RPCsPerOp["total"])
			}
			// Simulated time: each commit waits for its whole group, whose
			// RPCs run one after the other, and the groups one after the
			// other make up the run.
			lat := r.LatencyUS
			if lat.P50 <= 0 || lat.P50 > lat.P99 || lat.P99 > lat.P999 || r.OpsPerS <= 0 || r.Seconds <= 0 {
				t.Errorf("latency %+v, %v ops/s over %v s", lat, r.OpsPerS, r.Seconds)
			}
			if full := tc.ops / tc.committers; tc.ops%tc.committers == 0 && math.Abs(r.Seconds/(float64(full)*lat.P50/1e6)-1) > 0.01 {
				t.Errorf("%v s for %d groups of latency %v µs", r.Seconds, full, lat.P50)
			}
			note := "average group " + fmtNum(r.AvgGroup) + " commits"
			if !strings.Contains(out, note) || !strings.Contains(out, "CommitGroup of "+strconv.Itoa(tc.committers)+" transactions") {
				t.Errorf("the table's notes do not say %q:\n%s", note, out)
			}
		})
	}
}
