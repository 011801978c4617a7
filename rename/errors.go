package rename

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors a caller branches on with errors.Is. The struct types below carry
// the details and unwrap to these.
var (
	// ErrBusy is returned by Begin when another claim holds the lock and
	// is not stale: skip this compaction and go on (no host ever waits).
	ErrBusy = errors.New("rename: another compaction holds the claim")

	// ErrFenced is returned by Commit when the installed version's
	// generation is not older than the claim's: another compaction
	// already installed this generation or a newer one. The claim's
	// version is not installed (it never was, or, after a lost reply, it
	// was and has already been replaced by that newer one); the claim is
	// released.
	ErrFenced = errors.New("rename: installed version is not older than the claim")

	// ErrLost is returned by Commit (and by Write or Heartbeat when they
	// notice) when the claim was taken over: another host judged it stale
	// by the server's clock and removed its file. Nothing was installed
	// and nothing can be: the work is to be redone. Begin returns it when
	// a Sweep removed the claim it was preparing (it paused for
	// StaleAge): nothing is claimed.
	ErrLost = errors.New("rename: the claim was taken over")

	// ErrUnknown is returned by Commit when the install rename failed in
	// a way that leaves its outcome unknown (a transport error, or an
	// answer that neither the lock nor the file's handle could explain).
	// The Claim stays open: call Commit again (it re-checks and renames)
	// or Abort; OpenLatest tells which version is installed by its claim
	// id.
	ErrUnknown = errors.New("rename: outcome of the install unknown")

	// ErrStale is returned by OpenLatest, Load and Reader when the file
	// kept going stale (ESTALE: replaced or removed under the reader)
	// through every retry (Options.StaleRetries). It arrives inside a
	// *StaleError, which also matches vfs.ErrStale.
	ErrStale = errors.New("rename: version kept going stale")

	// ErrCorrupt is returned when a file at the version's name is not a
	// valid, complete version: wrong magic, bad checksum, wrong size, or
	// a payload that does not match its hash. It arrives inside a
	// *CorruptError.
	ErrCorrupt = errors.New("rename: corrupt version file")

	// ErrRegressed is returned by a Reader when the version at the name is
	// older than one the Reader already returned, even after revalidating
	// the directory: a stale name cache that outlived the retries (N5), or
	// an older version installed over a newer one. It arrives inside a
	// *RegressedError.
	ErrRegressed = errors.New("rename: version went back to an older generation")

	// ErrClosed is returned by the methods of a Claim after Commit or
	// Abort, and of a Version after Close.
	ErrClosed = errors.New("rename: claim or version closed")
)

// Holder describes one claim found in the lock directory.
type Holder struct {
	// Entry is the name of the claim's file in the lock directory (its
	// claim id in hex, or a foreign or .nfs name).
	Entry string
	// ClaimID, Host and Generation come from the file's header when it
	// could be read (Known).
	ClaimID    uint64
	Host       string
	Generation uint64
	Known      bool
	// Age is the server's time when the caller's claim was prepared minus
	// the file's last modification (the later of mtime and ctime), both
	// stamped by the server's clock (N18). It is negative for a time in
	// the future.
	Age time.Duration
	// Stale reports whether Age is StaleAge or more in either direction:
	// the holder made no progress the server saw for that long, or its
	// time is garbage (N13).
	Stale bool
}

// String describes the holder for an error message.
func (h Holder) String() string {
	who := h.Entry
	if h.Known {
		who = fmt.Sprintf("%s (claim %016x of %q for generation %d)", h.Entry, h.ClaimID, h.Host, h.Generation)
	}
	return fmt.Sprintf("%s, age %v", who, h.Age)
}

// BusyError is the ErrBusy of Begin: who holds the claim.
type BusyError struct {
	Name    string
	Holders []Holder
}

// Error names the holders.
func (e *BusyError) Error() string {
	var hs []string
	for _, h := range e.Holders {
		hs = append(hs, h.String())
	}
	if len(hs) == 0 {
		return fmt.Sprintf("%v: %s", ErrBusy, e.Name)
	}
	return fmt.Sprintf("%v: %s: %s", ErrBusy, e.Name, strings.Join(hs, "; "))
}

// Unwrap returns ErrBusy.
func (e *BusyError) Unwrap() error { return ErrBusy }

// FencedError is the ErrFenced of Commit.
type FencedError struct {
	Name string
	// Installed is the version found at the name; Generation is the
	// claim's.
	Installed  Info
	Generation uint64
}

// Error names the installed version.
func (e *FencedError) Error() string {
	return fmt.Sprintf("%v: %s: installed generation %d (claim %016x of %q), claim's generation %d",
		ErrFenced, e.Name, e.Installed.Generation, e.Installed.ClaimID, e.Installed.Host, e.Generation)
}

// Unwrap returns ErrFenced.
func (e *FencedError) Unwrap() error { return ErrFenced }

// LostError is the ErrLost of a Claim.
type LostError struct {
	Name    string
	ClaimID uint64
	// Err is what showed it: ENOENT from the install rename, ESTALE from
	// a write, or nil.
	Err error
}

// Error names the lost claim.
func (e *LostError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%v: %s: claim %016x", ErrLost, e.Name, e.ClaimID)
	}
	return fmt.Sprintf("%v: %s: claim %016x: %v", ErrLost, e.Name, e.ClaimID, e.Err)
}

// Unwrap returns ErrLost and the error that showed it.
func (e *LostError) Unwrap() []error { return []error{ErrLost, e.Err} }

// StaleError is the ErrStale of a reader: the last ESTALE after Tries
// attempts.
type StaleError struct {
	Name  string
	Tries int
	Err   error
}

// Error gives the last ESTALE.
func (e *StaleError) Error() string {
	return fmt.Sprintf("%v: %s: %d tries: %v", ErrStale, e.Name, e.Tries, e.Err)
}

// Unwrap returns ErrStale and the last ESTALE (which matches vfs.ErrStale).
func (e *StaleError) Unwrap() []error { return []error{ErrStale, e.Err} }

// CorruptError is the ErrCorrupt of a reader.
type CorruptError struct {
	Path   string
	Reason string
}

// Error says what is wrong with the file.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrCorrupt, e.Path, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// RegressedError is the ErrRegressed of a Reader.
type RegressedError struct {
	Name string
	// Seen is the newest generation the Reader returned before; Got is
	// what the name holds now.
	Seen uint64
	Got  Info
}

// Error names both generations.
func (e *RegressedError) Error() string {
	return fmt.Sprintf("%v: %s: had generation %d, found %d (claim %016x of %q)",
		ErrRegressed, e.Name, e.Seen, e.Got.Generation, e.Got.ClaimID, e.Got.Host)
}

// Unwrap returns ErrRegressed.
func (e *RegressedError) Unwrap() error { return ErrRegressed }
