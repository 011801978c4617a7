package proofs

import (
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/readahead"
)

// TestReadaheadFetchRacingDropOnNFS replays, under 256 schedules, a scenario
// TestReadaheadMatchesUncachedOnNFS drew: three tasks of one host share a
// cache while the writer commits. In a few schedules one task's fetch of the
// header block is in flight (its READ answered before the writer's new
// header) while a second task's Revalidate drops the mutable blocks and
// moves the baseline; a third then reads the header through the cache. The
// cache's per-identity epoch must keep the late fetch out of the cache, or
// the third task reads a header older than the one it read directly before.
//
// The random test meets this race in roughly one run in two at its default
// number of checks; this test meets it every time, as long as nfssim's
// timing is unchanged (4 of the 256 schedules hit the race when the epoch
// check is removed from Reader.readRound). readahead's own
// TestFetchRacingRevalidateIsNotCached covers the same rule on a fake file.
func TestReadaheadFetchRacingDropOnNFS(t *testing.T) {
	sc := raScenario{granularity: time.Nanosecond, writebackProb: 0.3, wsize: 4096, initial: 56,
		writer: []raWriterOp{{kind: "commit", records: 8}, {kind: "commit", records: 1}},
		readers: []raReaderHost{
			{version: nfssim.V3, rsize: 1 << 20, actimeo: time.Minute, noac: true,
				opts: readahead.Options{BlockSize: 64, MemoryBytes: 3776, MaxReadAheadBlocks: 7},
				tasks: [][]raReaderOp{
					{{kind: "read", revalidate: true, claim: 1, pos: 2, length: 2}},
					{{kind: "scan", revalidate: true, claim: 1, pos: 0, length: 600}},
					{{kind: "scan", revalidate: true, claim: 1, pos: 33, length: 16}, {kind: "refresh", revalidate: true, claim: 0, pos: 5, length: 5}},
				}},
			{version: nfssim.V4, rsize: 4096, actimeo: time.Minute,
				opts: readahead.Options{BlockSize: 512, MemoryBytes: 1536, MaxReadAheadBlocks: 2},
				tasks: [][]raReaderOp{
					{{kind: "refresh", revalidate: true, claim: 0, pos: 304, length: 600}},
					{{kind: "read", claim: 1, pos: 47, length: 4}},
				}},
		}}
	var cov raCoverage
	for seed := range uint64(256) {
		sc.seed = seed
		if err := raRun(sc, &cov); err != nil {
			t.Fatalf("simulation seed %d: %v", seed, err)
		}
	}
	t.Logf("256 schedules: %d reads compared, %d header checks, %d revalidations (%d changed)", cov.compared, cov.sandwiches, cov.revalidations, cov.changed)
}
