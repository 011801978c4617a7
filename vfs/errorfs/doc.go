// Package errorfs injects faults into any vfs.FS by wrapping it, in the
// spirit of pebble's vfs/errorfs: engine code never carries "if testing"
// branches; a test hands it an FS that fails where the test chooses.
//
// Wrap(fsys, inj) returns an FS whose every method, and every method of
// every File it opens (except Name), first asks inj.MaybeError with an Op
// describing the call. A nil answer passes the call through unchanged; an
// error is returned instead of making the call, wrapped like a real error:
// in an *fs.PathError, or a *vfs.LinkError for Link, Symlink and Rename.
// Injected errors wrap ErrInjected, so a test can tell them from real
// failures with errors.Is(err, ErrInjected); Errno(e) makes one that also
// matches e (errors.Is(err, syscall.ENOSPC), and fs.ErrExist for EEXIST).
//
// Three answers do more than fail the call:
//
//   - Done(err) makes the call and then reports err: the reply lost after
//     the server did the work, which a soft mount reports as a timeout
//     (docs/design.md, N11) and a retransmission as EEXIST (N14).
//   - A *WriteFault, for WriteAt and Write, writes only a prefix of the
//     bytes, cut at a byte, sector (512) or page (4096) boundary of the
//     file, and reports either an error with the short count (a short
//     write) or full success (a torn write the caller cannot see, N7/N8).
//   - Close always closes the underlying file; an injected error is
//     reported after it, as NFS reports a background write error at close
//     (N11).
//
// Injectors compose. Inject(err, predicates...) injects err when every
// predicate matches, evaluated left to right and stopping at the first
// that does not, so a stateful predicate counts only the ops that reached
// it: Inject(Errno(syscall.EIO), OnKind(OpSync), AtNth(2)) fails exactly
// the second Sync. The predicates are OnKind, OnPath, AtNth, FromNth and
// Randomly (seeded, with a math/rand/v2 PCG per path, so the decisions on
// one path do not depend on how calls on other paths interleave). Any
// combines injectors, Toggle switches one on and off, and Counter counts
// the errors one injected, so a test can check that each reached the
// caller.
//
// HalfReadAt and DataErrReadAt are small File wrappers in the style of
// testing/iotest, and WrapFiles applies such a wrapper to every file an FS
// opens.
package errorfs
