// Package explore is a bounded exhaustive crash-point enumerator over
// nfssim: it runs a small scenario once without faults to number its fault
// points (nfssim.Point), and then once per point and per fault with that
// fault injected, and checks every outcome (docs/design.md, "Proofs").
//
// The faults tried at every armed point k of the fault-free run are:
//
//   - CrashHost: if point k belongs to one of the scenario's writer hosts,
//     that host crashes before k executes, and every subset of its dirty
//     units (nfssim.Fault.Keep) reaches the server first. Because a crash
//     keeps an arbitrary subset, every prefix of every write-back order is
//     covered too (N7). When a point has more than Options.MaxKeepBits
//     dirty units (default 10) the subsets are capped: see keepMasks.
//   - DropReply (RPC points): the RPC executes, its reply is lost and it
//     is retransmitted, with the server's duplicate request cache on.
//   - DropReplyNoDRC: the same with Server.DRCSize = 0, so a
//     non-idempotent retransmission executes twice (N14).
//   - CrashServer: the server crashes and restarts before k executes:
//     unstable writes and the DRC are lost, the verifier changes (N10).
//
// Tears come from the Profile: NFS() mounts with rsize = wsize = 4096, so
// writes split at page/wsize boundaries and crash units are pages, and
// READs are served in 512-byte pieces at different steps (N8); LocalDisk()
// is nfssim's local-disk model with 512-byte crash units (torn sectors).
//
// Determinism: a run is a function of (scenario, profile, seed, plan). The
// enumerator checks that the point a plan names is the same point (host,
// kind, call, path) as in the fault-free run, so a scenario that is not
// deterministic is reported, not silently under-explored. A failure is a
// *Failure that carries the seed and the plan, and a replay command.
package explore
