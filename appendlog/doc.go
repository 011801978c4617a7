// Package appendlog is an append-only log file with one writer, whose
// committed length is the used_file_size field of a double-buffered header
// (an atomicrec record at offset 0): the seed's "appending new data to end
// of file" and "pointer to next part" (docs/design.md, "appendlog").
//
// # Who writes, who reads, how a log is found
//
// Each host has its own log, named LogName(host) ("log." + host) in a
// directory the engine chooses; only that host writes it (Writer), so
// appends never race for the end of file (O_APPEND is not atomic across
// hosts, N12) and no page is written by two hosts (N9). Other hosts find
// logs by name (ParseLogName over a directory listing, confirmed by
// opening: N6) and read them with a Reader, read-only, while the writer
// lives and forever after it died. Create writes a log under a temporary
// name, syncs it and links it into place, so a log never exists without a
// valid header and an existing log is never replaced; the header holds the
// host name (a log under the wrong name is ErrForeign) and a random log id
// (a Reader whose file was replaced gets ErrReplaced; every frame's
// checksum is bound to the id and to the frame's offset).
//
// # Records
//
// A record is a frame: magic, type, flags, length, prev, a set-once next
// word, the payload and an xxhash64 checksum (format.go has the byte
// tables). Readers never return a byte at or beyond used_file_size, never
// a frame that fails its checks, and never allocate from a length field
// more than MaxRecordSize or what lies below used_file_size.
//
// A record can be continued: AppendAfter(prev, ...) appends a record whose
// prev is prev, and sets prev's next word to it, once. A Reader's Chain
// follows next words from any record; offsets strictly increase along a
// chain, so it has no cycle and at most used/FrameOverhead steps, and each
// step is checked both ways (the target's prev names the source).
//
// # Commit: one sync, because the header can tell whether its data is there
//
// Commit writes the pending frames at used_file_size, writes the next
// header copy into the slot not holding the committed one, and calls
// Datasync once. The header copy says [start, used) is the new group and
// carries the xxhash64 of the checksums of the frames in it. A header copy
// counts (for readers and for recovery) only if it is a valid atomicrec
// copy AND its group verifies: the frames tile [start, used) exactly and
// each passes its own checksum (bound to the log id and its offset) and
// their checksums hash to the header's group hash. Otherwise the other
// copy, the previous commit, is the committed state.
//
// Why one sync is enough on a disk or server that reorders writes (N7):
// before the Datasync returns, any subset of the written pieces may be
// durable, torn at any place (N8). If every piece is durable, the new copy
// is valid and its group verifies: committed. If some piece of the header
// copy is missing, the copy fails its checksum. If some piece of a frame is
// missing, that frame fails its checksum or the group hash no longer
// matches, even if stale bytes there happen to form a valid frame of an
// earlier, interrupted append (a different frame has a different checksum,
// so the group hash differs; an identical frame is the same data). Either
// way readers and recovery use the previous copy, which this Commit did
// not touch and which an earlier Commit made durable before returning. So
// the group is committed whole or not at all, and only after it is
// durable can it be committed. Two syncs (data, then header) would buy
// nothing more and cost twice the floor of brief §5.
//
// Next pointers are the exception: setting prev's next word writes into an
// older, committed frame. If that word were durable before its target, a
// crash could leave it pointing at bytes the next append overwrites with
// an unrelated record, and being set-once it could never be fixed. So a
// Commit that links continuations to records of earlier commits writes the
// next words only after the group's sync, and syncs again (two syncs; a
// Commit without such links, or linking within its own group, costs one).
// A crash between the two leaves continuations unlinked in the last group
// only; recovery (Open) finds them by their prev field and links them.
//
// # Recovery and zombies
//
// Open takes the newest header copy whose group verifies; that is the
// committed length, and appends continue from there over the garbage of
// an interrupted one (a logical truncation). If a newer header copy is
// valid but its group is incomplete, Open overwrites it with a copy of the
// committed state and syncs before anything else: otherwise a later crash
// could complete its frames from the new appends' bytes and bring back a
// commit this recovery saw as not done. The commit Open adopts may be the
// dead writer's last, whose COMMIT never went out: the NFS server holds it
// in memory only (N10). Open writes its frames, its header copy and the
// next words it set again, byte for byte, and syncs before appending
// after it, so a server crash cannot take it from under a later stable
// commit. Open therefore costs a sync.
//
// # Readers on other hosts
//
// A Reader verifies the newest header's group on every Refresh that sees a
// new generation; a stale page cache that mixes a new header with old data
// pages (N2, N3) makes the group fail and the Reader falls back to the
// previous commit, which is immutable and complete. Its state never goes
// back (atomicrec's monotonic generations; used never shrinks). Bytes it
// reads below used_file_size are immutable except next words, which are
// set once and read as unset while torn.
package appendlog
