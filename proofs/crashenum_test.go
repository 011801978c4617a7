package proofs

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/internal/explore"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// Flags of the crash-point enumeration. Their names carry the crashenum
// prefix so that other proofs in this package can define their own.
var (
	crashenumSeed = flag.Uint64("crashenum.seed", 1, "seed of the crash-point enumeration (simulation, scheduler, nonces)")
	crashenumPlan = flag.String("crashenum.plan", "", "replay one plan (none, crash-host@12:keep=0x5, drop-reply@3, drop-reply-nodrc@3, crash-server@7) instead of enumerating")
	crashenumDeep = flag.Bool("crashenum.deep", false, "also explore the 3-operation scenarios, as NFSINDEX_DEEP=1 does")
)

var enumCtx = context.Background()

// crashenumDeepEnv is the environment variable that switches the 3-operation
// scenarios on (CI sets it).
const crashenumDeepEnv = "NFSINDEX_DEEP"

// crashenumDeepMode reports whether the 3-operation scenarios run.
func crashenumDeepMode() bool { return *crashenumDeep || crashenumEnvDeep() }

// crashenumEnvDeep reads NFSINDEX_DEEP=1 from /proc/self/environ through
// vfs/osfs:
// internal/lint lets no package but vfs/osfs and cmd import os, test files
// included, so os.Getenv is not available here. Where /proc is missing the
// variable reads as unset; -crashenum.deep works everywhere.
func crashenumEnvDeep() bool {
	fsys, err := osfs.New("/proc/self")
	if err != nil {
		return false
	}
	defer fsys.Close()
	f, err := fsys.OpenFile("environ", vfs.ReadOnly, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	var env []byte
	buf := make([]byte, 64<<10)
	for off := int64(0); off < 1<<22; { // bounded: 4 MiB of environment
		n, err := f.ReadAt(buf, off)
		env = append(env, buf[:n]...)
		off += int64(n)
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return false
			}
			break
		}
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && k == crashenumDeepEnv {
			return v == "1"
		}
	}
	return false
}

// newRand returns a generator for a fixed seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// crashenumProfiles are the file-system models every scenario is explored
// under.
func crashenumProfiles() []explore.Profile {
	return []explore.Profile{explore.NFS(), explore.LocalDisk()}
}

// crashenumExplore explores every scenario under every profile, as subtests
// test/scenario/profile, logs the states explored per scenario and a
// summary line, and fails with the seed, the plan and the replay command
// on the first violation. Scenarios of 3 operations run only in deep mode.
func crashenumExplore(t *testing.T, scenarios []explore.Scenario) {
	t.Helper()
	var only *explore.Plan
	if *crashenumPlan != "" {
		p, err := explore.ParsePlan(*crashenumPlan)
		if err != nil {
			t.Fatal(err)
		}
		only = &p
	}
	seed := *crashenumSeed
	t.Logf("crash-point enumeration: seed %d (replay with -crashenum.seed=%d), deep=%v", seed, seed, crashenumDeepMode())
	test := t.Name()
	total, ran := 0, 0
	for _, s := range scenarios {
		t.Run(s.Name, func(t *testing.T) {
			if s.Ops >= 3 && !crashenumDeepMode() {
				t.Skipf("%d operations: runs with %s=1 or -crashenum.deep", s.Ops, crashenumDeepEnv)
			}
			for _, p := range crashenumProfiles() {
				t.Run(p.Name, func(t *testing.T) {
					if slices.Contains(s.DeepProfiles, p.Name) && !crashenumDeepMode() {
						t.Skipf("slow under %s: runs with %s=1 or -crashenum.deep", p.Name, crashenumDeepEnv)
					}
					replay := func(plan explore.Plan) string {
						return fmt.Sprintf("go test ./proofs -run '^%s$/^%s$/^%s$' -crashenum.seed=%d -crashenum.plan=%s -v",
							test, s.Name, p.Name, seed, plan)
					}
					res, err := explore.Explore(s, p, explore.Options{Seed: seed, Only: only, Replay: replay})
					if err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
					t.Logf("states explored: %v", res)
					total += res.States
					ran++
				})
			}
		})
	}
	t.Logf("summary: %s: %d states explored in %d scenario/profile pairs (seed %d, deep=%v)", test, total, ran, seed, crashenumDeepMode())
}
