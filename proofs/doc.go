// Package proofs holds the executable proofs of nfsindex: tests that drive
// the primitives and the engine through the deterministic NFS simulator
// (nfssim) under every fault of the threat model and check, against a
// simple sequential model, that the contract of brief §2 holds. Each test
// names the invariants of docs/design.md it proves (A1, L1, ...);
// internal/doccheck fails when a test the invariants table names is gone.
//
// # Exhaustive crash-point enumeration
//
// TestCrashEnumAtomicrec and TestCrashEnumAppendlog run small scenarios of
// 1-3 operations (atomicrec Updates; appendlog commits of one record, of a
// group, of chained records; a writer that crashes, restarts and recovers)
// with a reader on another host, through internal/explore: each scenario
// runs once without faults to number its fault points (every file-system
// call and every RPC), then once per point with one fault there: a crash of
// the writer with every subset of its dirty units (2^n; n is capped at 10,
// beyond which contiguous groups, single units and single gaps are tried),
// a lost reply retransmitted with the duplicate request cache on and off,
// and a crash of the server. Every scenario runs under two profiles: NFS
// with rsize = wsize = 4096 (writes split at page/wsize boundaries, pages
// as crash units, READs torn in 512-byte pieces) and the local-disk model
// (512-byte sectors as crash units). Since a crash keeps any subset of the
// dirty units, every prefix of every write-back order is covered too. The
// checker runs after recovery: every acknowledged write is there, nothing
// that was not acknowledged is returned as committed unless its operation
// may have happened, what readers returned was whole, never went back and
// is never lost later, the recovered writer can write again, and that
// write survives a crash of every host and of the server.
//
// Each subtest logs the states it explored ("states explored: ...") and
// each test a summary line; run with -v to see them:
//
//	go test ./proofs -run 'TestCrashEnum(Atomicrec|Appendlog)' -v
//
// The fast suite explores the 1- and 2-operation scenarios (and leaves the
// slowest profile of some to the deep mode). The 3-operation scenarios run
// in deep mode, which CI switches on:
//
//	NFSINDEX_DEEP=1 go test ./proofs -run 'TestCrashEnum' -v -timeout 60m
//	go test ./proofs -run 'TestCrashEnum' -crashenum.deep -v    # the same
//
// The seed (-crashenum.seed, default 1) fixes the scheduler's choices, the
// order of write-back and every nonce. A failure prints the seed, the
// fault plan, the fault point, the run's trace and the command that
// replays exactly that run, for example:
//
//	go test ./proofs -run '^TestCrashEnumAppendlog$/^group1$/^local$' -crashenum.seed=1 -crashenum.plan=crash-host@2:keep=0xb -v
//
// # Property tests
//
// TestRapidAtomicrec and TestRapidAppendlog (pgregory.net/rapid) draw a
// writer and 1-2 reader hosts (NFSv3 or v4.2, each at its own speed), a
// sequence of operations, up to three faults at random points, the DRC on
// or off and a latency jitter, and check the history against the same
// models. rapid prints the -rapid.seed (and writes a fail file under
// testdata/rapid) that replays a failure.
//
// # Bugs found
//
// A proof that finds a bug in a primitive pins it with a deterministic
// regression test that fails on the old code. Found so far, all fixed:
// atomicrec's Load and appendlog's Open adopted a dead writer's unstable
// write without making it stable (N10), so a server crash before the next
// commit lost it under a stable successor
// (TestAtomicrecLoadedCopySurvivesServerCrash,
// TestAppendlogRecoveredStateSurvivesServerCrash,
// TestAppendlogRecoveredLinkSurvivesServerCrash); the engine forked under
// back-to-back compactions (TestEngineBackToBackCompactions).
package proofs
