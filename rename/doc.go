// Package rename replaces a whole file atomically, for compaction and
// snapshots, on a file system that several hosts share over NFS and any of
// which may crash or pause at any instant (docs/design.md, "rename"). It is
// the seed's "rewriting the index into index.lock and renaming it over the
// index file", made safe against stale claimants, lost replies, stale name
// caches and skewed clocks, without any host ever waiting for another.
//
// # Files
//
// Next to the version file <name> (in a directory that must exist):
//
//	<name>.lock/              the lock: a directory; empty or absent = free
//	<name>.lock/<id>          the claim holding the lock: the new version being written
//	<name>.claim.<id>/<id>    a claim being prepared, private to its claimant
//	<name>.pin.<id>           a reader's hard link of the version it reads
//	<name>.probe.<id>         a short-lived probe of the server's clock (Sweep)
//
// <id> is a random 64-bit id in 16 hex digits. A version file is a header
// page (magic, format version, state, generation, claim id, host, payload
// size, payload xxhash64, header xxhash64; format.go) and the payload. It
// is written once, synced, renamed into place and never changed.
//
// # Claim: one rename that only an empty directory lets through
//
// Begin prepares the claim privately: it makes <name>.claim.<id>, creates
// <id> in it exclusively, writes a header naming the claimant (host, claim
// id, generation) and syncs it. The synced write stamps the file's mtime
// with the server's clock: the probe against which this claimant judges
// other claims (N18); the host's clock is never read. Then one rename moves
// the directory onto <name>.lock. A server renames a directory over an
// existing one only if that one is empty (RFC 1813 §3.3.14, rename(2)), so
// the rename succeeds exactly when no claim holds the lock: it is the only
// claim a compactor makes, a test-and-set as atomic as an exclusive create,
// and the claim's identity is in place the instant it succeeds.
//
// Why not the exclusive create of a lock file: taking a stale lock file
// over needs a second step that frees its name (remove it, or rename it
// away), and that step acts on whatever holds the name by then, possibly a
// newer claimant's fresh lock that nothing fences; and a new version
// renamed into place by the lock's name can be someone else's half-written
// file. With a directory, the lock is free exactly when the claim's own file
// is gone from it, and no step of the protocol acts on a name another claim
// could own: every removal and rename names a claim's unique <id>.
//
// # Write, sync, fence, rename
//
// The claim writes the new version into its file <name>.lock/<id>, and
// Commit: writes the complete header, Syncs (the only barrier: before it,
// any subset of the pages may reach the server, N7, and unstable writes die
// with a server crash, N10); re-reads the installed version afresh (the
// fencing check, below) and releases the claim with ErrFenced if its
// generation is not older than the claim's; renames <name>.lock/<id> over
// <name>; and syncs the directory (a local disk needs it; on NFS it costs a
// GETATTR). That rename installs the version and releases the lock, which
// it leaves empty.
//
// # Takeover: by the server's clock, by removing the stale claim's file
//
// A claim rename that fails because the lock is not empty lists the lock,
// opens each claim file (close-to-open gives fresh attributes), and judges
// it: its age is the probe minus the later of its mtime and ctime, both
// stamped by the server. A claim is stale if that age is Options.StaleAge
// or more in either direction: a claimant the server has not seen change
// its file for StaleAge, or a time StaleAge in the future, which no stamp
// taken before the probe can be (garbage from an exclusive create whose
// SETATTR never came, N13, or a server clock stepped back). A fresh claim
// makes Begin return *BusyError (ErrBusy) at once: nobody waits. Stale
// claims are removed, each by its unique name, and the claim rename is
// tried once more. Two hosts that decide at once remove the same name (one
// removal wins, the other finds nothing), then race on the claim rename,
// which one wins. A long compaction calls Heartbeat more often than
// StaleAge.
//
// # The hard case: a claimant declared stale that wakes up
//
// The takeover removes the claimant's file <name>.lock/<id>; the claimant's
// install renames that same directory entry. The server executes one of
// the two first. If the install came first, the taker finds nothing (and
// the version was installed while its claim was still held); if the removal
// came first, the late install finds no source (ENOENT, or ESTALE once the
// emptied lock was replaced by the next claim) and Commit returns ErrLost:
// nothing is installed, the work is redone. Nobody else installs between a
// claim and its install, because only the holder of the lock has a file in
// it and a new claim needs the lock empty. So installs happen one at a
// time, each inside its installer's tenure, and a stale claimant can never
// put its snapshot over a newer one: between claimants there is no
// check-then-rename window at all.
//
// The fencing rule, the generation check before the rename, guards what the
// lock cannot: a claim made late for an old generation (a compactor that
// built its snapshot, then claimed after a newer one was installed). The
// check runs inside the claimant's own tenure, so no install slips in
// between; it can only be wrong if its read of the name was stale. It
// revalidates the directory (close-to-open on the directory, N4/N5) before
// it opens the name, which rules that out except on NFSv3 when the replaced
// version is still alive (pinned by a reader, below, or another host's .nfs
// file) and this host's last look at the directory fell in the same
// timestamp tick as the install (N3): v3 compares times, which did not
// move. There an older generation can still be installed; a Reader refuses
// it (ErrRegressed), and since the version carries the sequence number it
// reflects, the engine replays its log from there: the cost is redone
// work, never a lost change, provided the engine prunes log records only up
// to a generation it has read back as installed.
//
// # Lost replies: the answer of the file's handle
//
// A claim rename whose reply was lost and whose retransmission found no
// source answers ENOENT (N14); so does an install rename. Within one
// timestamp tick the client cannot see its own rename by name (N3): its
// caches may still hold the old names, even a negative entry. So Commit and
// Begin ask the claim file's open handle instead: a SETATTR of its size
// (which changes no data) returns fresh attributes from the server, and the
// file still has a name (nlink) only if our rename moved it. If a taker on
// the same host removed it while we held it open, the client silly-renamed
// it inside the lock to .nfs<file id> (N17), which the lock's listing
// shows. If the file has no name, it was taken over, or installed and
// already replaced by a newer version, which the installed version then
// shows (ErrFenced). A rename that answered ENOENT while our file is still
// in the lock was never sent (the client's silly rename of a target it held
// open failed first) and is sent again. What the handle cannot explain is
// ErrUnknown: the claim stays open for another Commit or an Abort.
//
// # Readers, and why they pin
//
// A host that holds <name> itself open and renames over it makes its NFS
// client silly-rename the old file to .nfs<...> first (N17): a second
// rename of <name> at the server, which no lock fences. Between the two,
// <name> is absent for every other host, which may cache that absence for
// as long as its view of the directory's times does not move (N4, N3); and
// if the installing host pauses between them until its claim is taken over
// and a newer version installed, its client then moves that newer version
// away (TestSillyRenameOfHeldNameMovesNewerVersion). So readers never open
// <name>: OpenLatest hard-links it to <name>.pin.<id> and opens the pin,
// and Version.Close removes it. A Version therefore keeps reading the
// version it opened after any number of installs, on every server (the pin
// keeps it alive where it would go stale, N15), and never makes <name>
// busy. Do not open <name> directly on a host that may install over it.
// The pin costs a LINK and a REMOVE per open, and its LINK changes the
// version's ctime, so other hosts' page caches of it are dropped (v3 takes
// a ctime change for a change, N3); Sweep removes pins older than
// PinMaxAge left by readers that stopped. OpenLatest revalidates the
// directory first, retries ESTALE (at most Options.StaleRetries times,
// then *StaleError, ErrStale), and looks an absent name up twice more. A
// Reader is OpenLatest plus memory: it never returns a generation older
// than one it returned before.
//
// # Litter
//
// A claimant that crashes before its claim rename leaves its private
// directory, and a reader that crashes leaves its pin; Sweep removes
// private directories whose every entry is stale, probe files, and pins
// older than PinMaxAge; a claimant that was only paused and wakes finds
// its claim gone and Begin returns ErrLost. Silly-renamed .nfs files (N17)
// are not ours, except inside the lock, where they count as claims and are
// judged by age.
//
// # Proofs
//
// proofs/rename_crash_test.go (TestCrashEnumRename) enumerates every crash
// point with every subset of dirty pages, every lost reply with the
// duplicate request cache on and off, every server crash, and every pause
// of a compactor that wakes after a takeover, for two compactors and a
// reader, and checks invariants R1-R6; the anomaly tests TestN5_... to
// TestN18_... and TestClaimTakeoverRace are in this package.
package rename
