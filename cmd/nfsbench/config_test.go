package main

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *config)
		err   string // substring of the usage error; "" for success
	}{
		{name: "Default", args: nil, check: func(t *testing.T, c *config) {
			sim, dir := c.modes()
			if !sim || !dir || c.hosts != 3 || !slices.Equal(c.workloads, workloadNames) || c.mix != [3]int{20, 50, 30} {
				t.Errorf("default: sim %v dir %v hosts %d workloads %v mix %v", sim, dir, c.hosts, c.workloads, c.mix)
			}
		}},
		{name: "SimOnly", args: []string{"-sim", "-hosts", "5"}, check: func(t *testing.T, c *config) {
			if sim, dir := c.modes(); !sim || dir || c.hosts != 5 {
				t.Errorf("sim %v dir %v hosts %d", sim, dir, c.hosts)
			}
		}},
		{name: "DirOnly", args: []string{"-dir", "/mnt/x"}, check: func(t *testing.T, c *config) {
			if sim, dir := c.modes(); sim || !dir || c.dir != "/mnt/x" {
				t.Errorf("sim %v dir %v", sim, dir)
			}
		}},
		{name: "Both", args: []string{"-sim", "-dir", "/mnt/x"}, check: func(t *testing.T, c *config) {
			if sim, dir := c.modes(); !sim || !dir {
				t.Errorf("sim %v dir %v", sim, dir)
			}
		}},
		{name: "Workloads", args: []string{"-workloads", "open, build,open"}, check: func(t *testing.T, c *config) {
			if !slices.Equal(c.workloads, []string{"open", "build"}) {
				t.Errorf("workloads %v", c.workloads)
			}
		}},
		{name: "Sizes", args: []string{"-messages", "10", "-batch", "5", "-flag-batch", "3", "-committers", "4", "-expunge", "0.25", "-think", "2ms", "-mix", "10/10/80", "-seed", "7", "-nfs-version", "4"},
			check: func(t *testing.T, c *config) {
				if c.messages != 10 || c.batch != 5 || c.flagBatch != 3 || c.committers != 4 || c.expunge != 0.25 || c.think != 2*time.Millisecond ||
					c.mix != [3]int{10, 10, 80} || c.seed != 7 || c.nfsVersion != 4 {
					t.Errorf("%+v", c)
				}
			}},
		{name: "MultiHost", args: []string{"-dir", "/mnt/x", "-host", "mx2", "-run-id", "r1", "-hosts", "4"}, check: func(t *testing.T, c *config) {
			if !slices.Equal(c.workloads, []string{"mixed"}) || c.host != "mx2" || c.runID != "r1" || c.hosts != 4 {
				t.Errorf("%+v", c)
			}
		}},
		{name: "UnknownWorkload", args: []string{"-workloads", "build,fly"}, err: `unknown workload "fly"`},
		{name: "UnknownFlag", args: []string{"-bogus"}, err: "flag provided but not defined"},
		{name: "Argument", args: []string{"extra"}, err: `unexpected argument "extra"`},
		{name: "ZeroMessages", args: []string{"-messages", "0"}, err: "-messages must be at least 1"},
		{name: "BadNumber", args: []string{"-hosts", "three"}, err: "invalid value"},
		{name: "BigBatch", args: []string{"-batch", "1000"}, err: "-batch 1000"},
		{name: "NoCommitters", args: []string{"-committers", "0"}, err: "-committers must be at least 1"},
		{name: "ManyCommitters", args: []string{"-committers", "5000"}, err: "-committers 5000: at most 1024"},
		{name: "ExpungeAll", args: []string{"-expunge", "1"}, err: "-expunge 1"},
		{name: "MixSum", args: []string{"-mix", "50/50/50"}, err: "add up to 150"},
		{name: "MixShape", args: []string{"-mix", "50/50"}, err: "three percentages"},
		{name: "Version", args: []string{"-nfs-version", "2"}, err: "-nfs-version 2"},
		{name: "HostWithoutDir", args: []string{"-host", "mx1", "-run-id", "r"}, err: "needs -dir"},
		{name: "HostWithoutRunID", args: []string{"-host", "mx1", "-dir", "/x"}, err: "needs -dir PATH"},
		{name: "HostSim", args: []string{"-host", "mx1", "-dir", "/x", "-run-id", "r", "-sim"}, err: "-host and -sim"},
		{name: "HostName", args: []string{"-host", "mx/1", "-dir", "/x", "-run-id", "r"}, err: `-host "mx/1"`},
		{name: "HostWorkloads", args: []string{"-host", "mx1", "-dir", "/x", "-run-id", "r", "-workloads", "build"}, err: "mixed workload only"},
		{name: "RunID", args: []string{"-run-id", "../x"}, err: `-run-id "../x"`},
		{name: "BaselinesSim", args: []string{"-sim", "-baselines", "go"}, err: "-baselines compares local workloads"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := parseFlags(tc.args, &out, false)
			if tc.err != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestHelpExplainsEveryFlag: -h prints the modes, every workload and a
// line for every flag.
func TestHelpExplainsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &out, false); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	help := out.String()
	for _, w := range workloadNames {
		if !strings.Contains(help, "\n  "+w+" ") {
			t.Errorf("-h does not explain workload %s", w)
		}
	}
	flags := []string{"dir", "run-id", "json", "sim", "hosts", "host", "workloads", "messages", "batch", "field-bytes",
		"flag-ops", "flag-batch", "flag-batches", "committers", "lookups", "scans", "expunge", "opens", "syncs", "mixed-ops", "mix",
		"think", "auto-compact", "seed", "nfs-version", "baselines", "keep", "q", "barrier-timeout", "mountstats"}
	for _, f := range flags {
		if !strings.Contains(help, "\n  -"+f+" ") && !strings.Contains(help, "\n  -"+f+"\n") && !strings.Contains(help, "\n  -"+f+"\t") {
			t.Errorf("-h has no line for -%s", f)
		}
	}
	for _, s := range []string{"nfsbench verify", "-sim", "Exit status"} {
		if !strings.Contains(help, s) {
			t.Errorf("-h does not mention %q", s)
		}
	}
	out.Reset()
	if _, err := parseFlags([]string{"-h"}, &out, true); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-run-id") {
		t.Errorf("verify -h: %v %q", err, out.String())
	}
	if _, err := parseFlags([]string{"-dir", "/x"}, &out, true); err == nil || !strings.Contains(err.Error(), "-run-id") {
		t.Errorf("verify without -run-id: %v", err)
	}
}
