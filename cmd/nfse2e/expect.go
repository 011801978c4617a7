package main

// labExpect is one row of nfssim's TestCalibrationLabRPCCounts
// (nfssim/calibration_test.go, labSteps): what nfslab's Linux 6.1 client
// sent for the step ("lab", recorded once in ../shared/nfslab/README.md),
// what nfssim sends ("sim"), and the test's reason where they differ.
// nfse2e replays the same steps on nfssim live; this copy lets report-rpc
// check that the replay is the test's sequence, and show whether today's
// real client still sends what nfslab recorded.
type labExpect struct {
	lab, sim, why string
}

const v4Access = "ACCESS on the directory walked through is not modelled"

// labTable: step -> {v3 lab, v3 sim, why}, {v4.2 lab, v4.2 sim, why}.
var labTable = []struct {
	name     string
	v3, sim3 string
	v42      string
	sim42    string
	why      string
}{
	{"create+write 4KiB+close", "ACCESS=2 CREATE=1 LOOKUP=1 WRITE=1", "ACCESS=1 CREATE=1 LOOKUP=1 WRITE=1",
		"ACCESS=2 CLOSE=1 OPEN=1 WRITE=1", "ACCESS=1 CLOSE=1 OPEN=1 WRITE=1",
		"ACCESS for directories walked through is not modelled (a permission cache; no effect on data or names)"},
	{"stat (attrs cached)", "none", "", "ACCESS=1 LOOKUP=1", "none",
		"v4.2 revalidates the name created by OPEN once more; nfssim trusts it (kinder by 2 RPCs, not in visibility)"},
	{"open+read+close (close-to-open)", "ACCESS=1 GETATTR=1", "", "CLOSE=1 OPEN_NOATTR=1", "", ""},
	{"open O_RDWR + pwrite 64B + fsync + close", "GETATTR=1 WRITE=1", "", "CLOSE=1 OPEN_NOATTR=1 WRITE=1", "", ""},
	{"write tmp + fsync + rename over index", "CREATE=1 LOOKUP=1 RENAME=1 WRITE=1", "",
		"ACCESS=1 CLOSE=1 LOOKUP=2 OPEN=1 RENAME=1 WRITE=1", "CLOSE=1 OPEN=1 RENAME=1 WRITE=1",
		"v4.2 LOOKUPs of the rename's names are not modelled (nfssim uses its name cache)"},
	{"O_APPEND write 64B + close (log)", "CREATE=1 LOOKUP=1 WRITE=1", "", "ACCESS=1 CLOSE=1 OPEN=1 WRITE=1", "CLOSE=1 OPEN=1 WRITE=1",
		"see the first row"},
	{"stat of missing name", "LOOKUP=1", "", "ACCESS=1 LOOKUP=1", "LOOKUP=1", v4Access},
	{"stat of missing name again", "none", "", "none", "", ""},
	{"lock-file create (O_CREAT|O_EXCL)", "CREATE=1 SETATTR=1", "", "CLOSE=1 OPEN=1 SETATTR=1", "", ""},
	{"unlink lock-file", "REMOVE=1", "", "ACCESS=1 LOOKUP=1 REMOVE=1", "REMOVE=1",
		v4Access + "; the v4.2 client also LOOKUPs the name it removes, nfssim uses its name cache"},
	{"readdir (2 entries)", "GETATTR=1 READDIRPLUS=1", "", "ACCESS=1 GETATTR=1 READDIR=1", "GETATTR=1 READDIR=1", v4Access},
	{"fcntl F_SETLK write lock+unlock", "ACCESS=1 GETATTR=1", "", "CLOSE=1 FREE_STATEID=1 LOCK=1 LOCKU=1 OPEN_NOATTR=1",
		"CLOSE=1 OPEN_NOATTR=1", "v4 byte-range locks are not modelled: the engine never locks (N19)"},
	{"100x stat (attr cache)", "GETATTR=1", "", "none", "GETATTR=1", "the v4.2 client kept the attributes its LOCK/CLOSE replies carried"},
	// StatFresh, not in vistest: "lab" here is what e2e/run statfresh
	// measured (Linux 6.1.0-56, nfs-ganesha 4.3, 2026-11-23).
	{"statfresh (attrs cached)", "GETATTR=1", "", "GETATTR=1", "", ""},
	{"10x statfresh", "GETATTR=10", "", "GETATTR=10", "", ""},
	{"stat after statfresh", "none", "", "none", "", ""},
	{"statfresh of the directory", "GETATTR=1", "", "GETATTR=1", "", ""},
	{"statfresh of missing name", "LOOKUP=1", "", "LOOKUP=1", "", ""},
	{"statfresh of missing name again (negative entry)", "none", "", "none", "", ""},
}

// expectations returns the table for vers ("3" or "4.2") keyed by step.
func expectations(vers string) map[string]labExpect {
	out := map[string]labExpect{}
	for _, r := range labTable {
		e := labExpect{lab: r.v3, sim: r.sim3}
		if vers != "3" {
			e = labExpect{lab: r.v42, sim: r.sim42}
		}
		if e.sim == "" {
			e.sim = e.lab
		}
		if e.sim != e.lab {
			e.why = r.why
		}
		out[r.name] = e
	}
	return out
}
