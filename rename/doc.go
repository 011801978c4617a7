// Package rename replaces a whole file atomically, for compaction and
// snapshots, on a file system that several hosts share over NFS and any of
// which may crash or pause at any instant (docs/design.md, "rename"). It is
// the seed's "rewriting the index into index.lock and renaming it over the
// index file", made safe against stale claimants, lost replies, stale name
// caches and skewed clocks, without any host ever waiting for another.
//
// # Files
//
// Next to the version file <name>, the package uses:
//
//	<name>.lock/              the lock: a directory; empty (or absent) = free
//	<name>.lock/<id>          the file of the claim holding the lock
//	<name>.claim.<id>/<id>    a claim being prepared (private to its claimant)
//	<name>.probe.<id>         a short-lived probe of the server's clock
//
// <id> is the claim's random 64-bit id in 16 hex digits. A version file is
// a header page (magic, format version, state, generation, claim id, host,
// payload size, payload xxhash64, header xxhash64; format.go) and the
// payload. It is written once, synced, renamed into place and never
// changed, so a reader's cached pages of it are right forever.
//
// # Claim: one rename that only an empty directory lets through
//
// Begin prepares the claim privately: it makes <name>.claim.<id>, creates
// <id> in it exclusively, writes a header naming the claimant (host, claim
// id, generation) and syncs it. The synced write stamps the file's mtime
// with the server's clock: that is the probe every staleness judgement of
// this claim uses (N18); the host's clock is never read. Then one rename
// moves the directory onto <name>.lock. The server executes a rename onto
// an existing directory only if that directory is empty (RFC 1813 §3.3.14,
// rename(2)): so the rename succeeds exactly when no claim holds the lock.
// That rename is the only claim a compactor makes. Its ambiguous answer
// after a lost reply (N14: the retransmission finds no source, ENOENT) is
// resolved without guessing: only we move our private directory, so ENOENT
// means our rename was executed; if the directory was swept instead (we
// were stale), the install below finds our file gone.
//
// Why not an exclusive create of a lock file <name>.lock: taking over a
// stale lock file needs a second step that frees the name (remove it, or
// rename it away), and that step acts on whatever holds the name by then,
// possibly a newer claimant's fresh lock, with nothing to fence that
// claimant; and a content file renamed by name from a lock name can be
// someone else's half-written file. With a directory, the lock is free
// exactly when the claim's own file is gone, and no step ever acts on a
// name that another claim could own: every removal and rename names a
// claim's unique <id>.
//
// # Write, sync, fence, rename
//
// The claim writes the new version into its file <name>.lock/<id> (the
// lock file's content is the new version, as in the seed), and Commit:
// writes the complete header, Syncs (the only barrier: before it, any
// subset of the pages may reach the server, N7, and unstable writes die
// with a server crash, N10), closes; re-reads the installed version
// afresh (directory revalidated, then opened by name: close-to-open, ESTALE
// reopened) and aborts with ErrFenced if its generation is not older than
// the claim's; renames <name>.lock/<id> over <name>; and syncs the
// directory (a local disk needs it; on NFS it costs a GETATTR). The rename
// both installs the version and releases the lock, which it leaves empty.
//
// # Takeover: by the server's clock, by removing the stale claim's file
//
// A claim rename that fails because the lock is not empty lists the lock
// directory, opens each claim file (close-to-open gives fresh attributes),
// and judges it by the server's clock: its age is the probe minus the later
// of its mtime and ctime. A claim is stale if that age is at least
// Options.StaleAge in either direction: a claimant the server has not seen
// change its file for StaleAge, or a time that is StaleAge in the future,
// which no server stamp taken before the probe can be (garbage left by an
// exclusive create whose SETATTR never came, N13, or a server clock that
// stepped back). A fresh claim makes Begin return *BusyError (ErrBusy) at
// once: nobody waits. Stale claims are removed, each by its unique name,
// and the claim rename is tried once more. Two hosts that decide at once
// both remove the same name: one removal wins, the other finds nothing;
// both then race on the claim rename, which one wins.
//
// A long compaction calls Heartbeat (a synced rewrite of its header) more
// often than StaleAge.
//
// # The hard case: a claimant declared stale that wakes up
//
// The takeover removes the claimant's file <name>.lock/<id>; the claimant's
// install is the rename of that same directory entry. The server executes
// one of the two first: if the install came first, the takeover finds
// nothing and the version was installed while the claim was still held
// (the newer claimant, fenced by the generation check, installs over it or
// stops); if the removal came first, the late install finds no source
// (ENOENT, or ESTALE once the emptied lock directory was replaced by the
// next claim) and Commit returns ErrLost: nothing is installed, the work is
// redone. No other host can install between a claimant's claim and its
// install, because only the holder of the lock has a file in the lock, and
// a new claim needs the lock empty. So installs happen one at a time, each
// during its installer's tenure, and a stale claimant can never put its
// snapshot over a newer one: there is no check-then-rename window between
// claimants at all.
//
// What the generation check (the fencing rule) still guards is a claim
// made late with an old generation: a compactor that built its snapshot,
// then claimed after a newer one was installed. Its check reads the
// installed generation before its rename, during its own tenure, so no
// install can slip in between; the check can only be wrong if its read was
// stale, which close-to-open plus the directory revalidation rule out
// except on an NFSv3 mount whose name cache is stale in the ways of N3/N5
// (the replaced version still alive as another host's .nfs file, and the
// directory changed within one timestamp tick), or a nocto mount. There an
// older generation can still be installed; a Reader then refuses it
// (ErrRegressed: it never goes back), and because the version carries the
// sequence number it reflects, the engine replays its log from that number:
// the cost is redone work, never a lost change, provided the engine prunes
// log records only up to a generation it has read back as installed.
//
// # Readers
//
// OpenLatest opens <name> and checks the header and size; ESTALE (the file
// was replaced and is gone at the server, N15/N16) is retried after
// revalidating the directory, at most Options.StaleRetries times, then
// *StaleError (ErrStale). A Version keeps reading the file it opened, old
// or new, never a mix; when the old one goes stale its ReadAt says so and
// the caller reopens. Load reads and verifies a whole version. A Reader is
// OpenLatest plus memory: it never returns a generation older than one it
// returned before.
//
// # Litter
//
// A claimant that crashes before its claim rename leaves its private
// directory; Sweep removes private directories and probe files whose
// entries are all stale. Silly-renamed .nfs files (N17) are never ours to
// judge except inside the lock, where they keep it busy until their holder
// closes them or they grow stale.
//
// Proofs: TestCrashEnumRename in proofs/ (invariants R1-R6), the anomaly
// tests TestN..._* in this package, and TestClaimTakeoverRace.
package rename
