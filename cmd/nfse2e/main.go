// Command nfse2e is the Go half of the end-to-end harness in e2e/ (see
// e2e/README.md): one static binary that is both the helper inside the
// qemu guests (their /init calls "nfse2e job") and the host-side tools
// that replay the same scripted sequences on nfssim and compare.
//
// Guest side (run inside a guest by e2e/run, cwd = the NFS mount):
//
//	nfse2e job                      mount, run the job's command, collect mountstats
//	nfse2e calib-rpc                vistest's "rpc" steps on osfs over the mount: JSON
//	nfse2e calib-vis [-n N]         visibility patterns, host1 writes, host2 polls: JSON
//	nfse2e work [flags]             engine workload; logs acknowledged commits
//	nfse2e engrpc [flags]           the engine's RPCs per operation: JSON
//
// Host side:
//
//	nfse2e strip-modsig FILE...     drop module signatures (initramfs build)
//	nfse2e report-rpc RUNDIR...     real vs nfssim RPC counts per step
//	nfse2e report-vis RUNDIR...     real vs nfssim visibility lags
//	nfse2e report-engrpc RUNDIR...  real vs nfssim engine RPC costs
//	nfse2e verify EXPORT RUNDIR     check the engine workload's logs against the export
//	nfse2e mountstats-diff BEFORE AFTER [MNT]
//
// It lives under cmd/ because internal/lint allows only vfs/osfs and cmd/
// to call the operating system and read the clock.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "job":
		os.Exit(job())
	case "strip-modsig":
		for _, f := range args {
			if err = stripModsig(f); err != nil {
				break
			}
		}
	case "mountstats-diff":
		err = cmdMountstatsDiff(args)
	case "calib-rpc":
		err = guestCalibRPC(args)
	case "calib-vis":
		err = guestCalibVis(args)
	case "work":
		err = guestWork(args)
	case "engrpc":
		err = guestEngRPC(args)
	case "report-rpc":
		err = reportRPC(args)
	case "report-vis":
		err = reportVis(args)
	case "report-engrpc":
		err = reportEngRPC(args)
	case "verify":
		err = verify(args)
	case "sim-work":
		err = cmdSimWork(args)
	case "sim-rpc":
		err = cmdSimRPC(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nfse2e %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: nfse2e job | calib-rpc | calib-vis | work | engrpc (in a guest)
       nfse2e strip-modsig | report-rpc | report-vis | report-engrpc | verify | sim-rpc | mountstats-diff (on the host)`)
	os.Exit(2)
}

// guestEnv is what e2e/run's guest job gives the command.
type guestEnv struct {
	Host   string // host1..hostN (the engine's Host name too)
	Index  int    // 1..N
	Hosts  int
	Mnt    string // the NFS mount
	Out    string // this guest's output directory (9p, on the host)
	Shared string // directory shared by the run's guests (9p, not NFS)
	Opts   string // the mount options
	Inc    int    // incarnation: 1, or 2.. after a kill and restart
}

func getGuestEnv() guestEnv {
	e := guestEnv{Host: os.Getenv("E2E_HOST"), Mnt: os.Getenv("E2E_MNT"), Out: os.Getenv("E2E_OUT"),
		Shared: os.Getenv("E2E_SHARED"), Opts: os.Getenv("E2E_OPTS")}
	fmt.Sscan(os.Getenv("E2E_INDEX"), &e.Index)
	fmt.Sscan(os.Getenv("E2E_HOSTS"), &e.Hosts)
	fmt.Sscan(os.Getenv("E2E_INC"), &e.Inc)
	if e.Host == "" {
		e.Host = "host1"
	}
	if e.Mnt == "" {
		e.Mnt = "/mnt/nfs"
	}
	if e.Out == "" {
		e.Out = "."
	}
	if e.Shared == "" {
		e.Shared = os.TempDir()
	}
	if e.Index == 0 {
		e.Index = 1
	}
	if e.Hosts == 0 {
		e.Hosts = 1
	}
	if e.Inc == 0 {
		e.Inc = 1
	}
	return e
}
