// Package nfssim is a deterministic simulator of one NFS server and of
// client hosts keyed by host name. Each host's FS implements vfs.FS with
// the caches and behaviours of the Linux NFS client, so code written
// against the seam runs unchanged on it, and a proof can show which NFS
// behaviour a protocol survives (docs/design.md, "The simulator").
//
// What it models, each switchable and with Linux's defaults as the
// default knobs (Mount, Server, Config), is listed in
// ../shared/nfs-semantics.md by anomaly id N1..N22; every id has a test
// TestNk_... that shows it happening and fails when Config.Disable
// switches it off.
//
//   - The server: inodes with file ids and generations, stable and
//     unstable data, a write verifier, its own (skewed, quantized) clock,
//     a bounded duplicate request cache.
//   - Each host: attribute cache with Linux's timeout doubling, positive
//     and negative name caches, directory listings, a page cache with
//     dirty ranges, close-to-open, write-back in an order the program does
//     not choose split at page and wsize boundaries, unstable WRITE plus
//     COMMIT, page extension of small writes, O_APPEND at the cached size,
//     ESTALE, silly rename, v4 OPEN by name and delegations; StatFresh as
//     statx with AT_STATX_FORCE_SYNC (one GETATTR past the attribute
//     cache, the name still resolved through the name cache).
//   - Faults: a crash of a host (its dirty data reaching the server in any
//     chosen subset of units), a crash of the server, a lost reply and its
//     retransmission, a paused host, a slow host, late write errors, soft
//     mounts.
//
// Determinism. All randomness comes from Config.Seed. Time is simulated:
// every RPC costs Latency and nothing reads the wall clock. Work of
// several hosts runs as tasks (Sim.Go) under Sim.Run, which lets exactly
// one task run at a time and decides at every file system call and every
// RPC which task goes next, so a run is a function of its seed. Outside
// Run, calls made from one goroutine are just as deterministic.
//
// Fault points. Config.Fault is asked at every call and every RPC (a
// Point, numbered in order) and may crash the calling host with a chosen
// subset of its dirty units (Fault.Keep), crash the server, lose the reply
// or pause the host. A proof runs a scenario once to count the points and
// then once per point and per subset: an exhaustive crash-point
// enumeration.
//
// Counting. Host.RPCs returns exact counts per procedure, named as in
// /proc/self/mountstats; TestCalibrationLabRPCCounts compares them with a
// real Linux client.
package nfssim
