package rename

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/errorfs"
)

// One test per NFS anomaly the protocol survives (../shared/nfs-semantics.md).
// Each first shows the anomaly happening to a naive use of the seam, then
// the package getting it right.

// TestN5_FencingCheckSeesPastStaleBinding: after another host renamed a
// new version over the name while it held the old one open (so the old
// file lives on as its .nfs file), a v3 open of the name on this host
// still reaches the old file (N5). A compactor here that built its
// snapshot from that old file must be fenced all the same: its check
// revalidates the directory before it looks the name up.
func TestN5_FencingCheckSeesPastStaleBinding(t *testing.T) {
	s := newSim(t, nil)
	a, b := addHost(t, s, "mx1", nil).FS(), addHost(t, s, "mx2", nil).FS()
	replace(t, b, "index", 1, "mx2", 1)
	mustLoad(t, a, "index", 1, "mx2") // a caches the name and the pages
	s.Advance(time.Second)
	hold, err := OpenLatest(ctx, b, "index", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	replace(t, b, "index", 5, "mx2", 2)

	// The anomaly: a plain open of the name on a reaches the old file.
	f, err := a.OpenFile("index", vfs.ReadOnly, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := check(f, "index")
	if err != nil {
		t.Fatal(err)
	}
	if v.Info().Generation != 1 {
		t.Fatalf("N5 did not happen: a's plain open found generation %d", v.Info().Generation)
	}
	_ = f.Close()

	// The fix: a's compaction of "generation 3" is fenced by generation 5.
	_, err = tryReplace(a, "index", 3, "mx1", 3)
	var fe *FencedError
	if !errors.As(err, &fe) || fe.Installed.Generation != 5 {
		t.Fatalf("a's stale compaction: %v, want ErrFenced by generation 5", err)
	}
	mustLoad(t, b, "index", 5, "mx2")
}

// TestN13_GarbageTimesAreStale: a v3 exclusive create whose creator died
// before its SETATTR leaves garbage times (N13). A legacy lock file made
// that way (Dovecot's, or an older engine's index.lock) is judged by them:
// far from the server's clock, so stale at once, and taken over; a claim
// file of ours with garbage times never held the lock and is swept.
func TestN13_GarbageTimesAreStale(t *testing.T) {
	crashAtSetattr := func(host string) func(nfssim.Point) nfssim.Fault {
		return func(p nfssim.Point) nfssim.Fault {
			if p.Kind == nfssim.PointRPC && p.Host == host && p.RPC == nfssim.SETATTR {
				return nfssim.Fault{Kind: nfssim.CrashHost}
			}
			return nfssim.Fault{}
		}
	}
	s := newSim(t, func(c *nfssim.Config) { c.Fault = crashAtSetattr("legacy") })
	legacy := addHost(t, s, "legacy", nil)
	b := addHost(t, s, "mx2", nil).FS()
	if _, err := legacy.FS().OpenFile("index.lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644); !errors.Is(err, nfssim.ErrHostDown) {
		t.Fatalf("the legacy locker did not crash at its SETATTR: %v", err)
	}
	st, err := b.Stat("index.lock")
	if err != nil {
		t.Fatal(err)
	}
	if d := st.ModTime.Sub(s.ServerTime()); d > -time.Hour && d < time.Hour {
		t.Fatalf("N13 did not happen: the lock file's mtime %v is plausible", st.ModTime)
	}
	// Taken over at once, without waiting StaleAge.
	replace(t, b, "index", 1, "mx2", 1)
	mustLoad(t, b, "index", 1, "mx2")

	// Our own claim file with garbage times: its creator crashed before
	// the claim, so it is litter, never a holder.
	s2 := newSim(t, func(c *nfssim.Config) { c.Fault = crashAtSetattr("mx1") })
	a2, b2 := addHost(t, s2, "mx1", nil), addHost(t, s2, "mx2", nil).FS()
	if _, err := Begin(ctx, a2.FS(), "index", 1, topts("mx1", 1)); !errors.Is(err, nfssim.ErrHostDown) {
		t.Fatalf("mx1 did not crash at its SETATTR: %v", err)
	}
	replace(t, b2, "index", 2, "mx2", 2) // not blocked
	names := listing(t, b2, ".")
	i := slices.IndexFunc(names, func(n string) bool { return strings.HasPrefix(n, "index.claim.") })
	if i < 0 {
		t.Fatalf("no litter: %v", names)
	}
	litter := names[i]
	now, err := ServerTime(ctx, b2, "index", topts("mx2", 3))
	if err != nil {
		t.Fatal(err)
	}
	h, gone, err := judge(b2, litter+"/"+strings.TrimPrefix(litter, "index.claim."), now, testStaleAge)
	if err != nil || gone || !h.Stale {
		t.Fatalf("the garbage-time claim file is judged %+v (gone %v, %v), want stale", h, gone, err)
	}
	// Its directory's own time is real and fresh: Sweep waits for it.
	s2.Advance(testStaleAge + time.Second)
	removed, err := Sweep(ctx, b2, "index", topts("mx2", 4))
	if err != nil || !slices.Equal(removed, []string{litter}) {
		t.Fatalf("sweep removed %v (%v), want %s", removed, err, litter)
	}
}

// TestN14_LostRepliesOnClaimAndInstall: with no duplicate request cache,
// every MKDIR, CREATE, RENAME and REMOVE of the compactor executes, loses
// its reply and executes again, answering EEXIST or ENOENT after success
// (N14). The compaction still succeeds, and a server without EXCLUSIVE
// creates (GUARDED, N13) changes nothing.
func TestN14_LostRepliesOnClaimAndInstall(t *testing.T) {
	for _, guarded := range []bool{false, true} {
		s := newSim(t, func(c *nfssim.Config) {
			c.Server.DRCSize = 0
			c.Server.NoExclusive = guarded
			c.Fault = func(p nfssim.Point) nfssim.Fault {
				if p.Kind == nfssim.PointRPC && p.Host == "mx1" {
					switch p.RPC {
					case nfssim.MKDIR, nfssim.CREATE, nfssim.RENAME, nfssim.REMOVE:
						return nfssim.Fault{Kind: nfssim.DropReply}
					}
				}
				return nfssim.Fault{}
			}
		})
		ha := addHost(t, s, "mx1", nil)
		a, b := ha.FS(), addHost(t, s, "mx2", nil).FS()
		for gen := uint64(1); gen <= 3; gen++ {
			replace(t, a, "index", gen, "mx1", gen)
			mustLoad(t, b, "index", gen, "mx1")
		}
		// A fenced claim releases the lock although its REMOVE's reply
		// was lost too.
		if _, err := tryReplace(a, "index", 2, "mx1", 9); !errors.Is(err, ErrFenced) {
			t.Fatalf("guarded=%v: %v, want ErrFenced", guarded, err)
		}
		replace(t, b, "index", 4, "mx2", 10)
		if ha.Retransmissions() < 10 {
			t.Fatalf("guarded=%v: only %d retransmissions: the faults did not fire", guarded, ha.Retransmissions())
		}
	}
}

// TestN15_OldReaderKeepsOldVersion: a descriptor of the name opened
// before another host installs a new version serves cached pages, then
// ESTALE once it revalidates, on a server that does not keep unlinked
// files (N15). A Version is opened through a pin of its own, so it reads
// its version whole on every server, and reopening gives the new one.
func TestN15_OldReaderKeepsOldVersion(t *testing.T) {
	for _, preserve := range []bool{false, true} {
		s := newSim(t, func(c *nfssim.Config) {
			if preserve {
				c.Server.Unlinked = nfssim.UnlinkedPreserve
			}
		})
		v4 := func(m *nfssim.Mount) {
			if preserve {
				m.Version = nfssim.V4
			}
		}
		r, c := addHost(t, s, "reader", v4).FS(), addHost(t, s, "mx1", v4).FS()
		p := make([]byte, 1000)

		// A raw descriptor of the name.
		replace(t, c, "index", 1, "mx1", 1)
		raw, err := r.OpenFile("index", vfs.ReadOnly, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ReadAt(p, HeaderSize); err != nil {
			t.Fatal(err)
		}
		s.Advance(time.Second)
		replace(t, c, "index", 2, "mx1", 2)
		s.Advance(5 * time.Second)
		_, err = raw.ReadAt(p, HeaderSize+2000)
		switch {
		case preserve && err != nil:
			t.Fatalf("preserve: the raw descriptor: %v", err)
		case !preserve && !errors.Is(err, vfs.ErrStale):
			t.Fatalf("N15 did not happen: the raw descriptor read %v", err)
		}
		_ = raw.Close()

		// A Version.
		v, err := OpenLatest(ctx, r, "index", topts("reader", 1))
		if err != nil {
			t.Fatal(err)
		}
		want := payload(2, "mx1", 5000)
		if _, err := v.ReadAt(p, 0); err != nil || !bytes.Equal(p, want[:1000]) {
			t.Fatalf("first read: %v", err)
		}
		s.Advance(time.Second)
		replace(t, c, "index", 3, "mx1", 3)
		s.Advance(5 * time.Second)
		if _, err := v.ReadAt(p, 2000); err != nil || !bytes.Equal(p, want[2000:3000]) {
			t.Fatalf("preserve=%v: the pinned version is not readable whole: %v", preserve, err)
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		mustLoad(t, r, "index", 3, "mx1")
		if got := listing(t, c, "."); !slices.Equal(got, []string{"index", "index.lock"}) {
			t.Fatalf("preserve=%v: left %v", preserve, got)
		}
	}
}

// TestN16_OpenLatestRetriesESTALE: a mount that does not retry path
// lookups after ESTALE (N16) shows it to an open of a replaced name;
// OpenLatest refreshes the names and tries again. One that keeps meeting
// ESTALE gives up after StaleRetries with a *StaleError.
func TestN16_OpenLatestRetriesESTALE(t *testing.T) {
	s := newSim(t, nil)
	r := addHost(t, s, "reader", func(m *nfssim.Mount) { m.NoESTALERetry = true }).FS()
	c := addHost(t, s, "mx1", nil).FS()
	replace(t, c, "index", 1, "mx1", 1)
	mustLoad(t, r, "index", 1, "mx1")
	s.Advance(time.Second)
	replace(t, c, "index", 2, "mx1", 2)
	if _, err := r.OpenFile("index", vfs.ReadOnly, 0); !errors.Is(err, vfs.ErrStale) {
		t.Fatalf("N16 did not happen: a plain open gave %v", err)
	}
	mustLoad(t, r, "index", 2, "mx1")

	tries := 0
	stale := errorfs.Wrap(c, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpLink && op.Path == "index" {
			tries++
			return errorfs.Errno(syscall.ESTALE)
		}
		return nil
	}))
	_, _, err := Load(ctx, stale, "index", Options{StaleRetries: 4})
	var se *StaleError
	if !errors.As(err, &se) || !errors.Is(err, ErrStale) || !errors.Is(err, vfs.ErrStale) || se.Tries != 5 || tries != 5 {
		t.Fatalf("a name that is always stale: %v after %d tries, want ErrStale after 5", err, tries)
	}
}

// TestN17_SillyRenamedOldSnapshot: a host that holds the name itself open
// while it installs over it makes its client silly-rename the old file to
// .nfs… first (N17). A Version never holds the name, only its own pin, so
// installing on a host that reads it leaves no .nfs file, and the reader
// reads its version whole.
func TestN17_SillyRenamedOldSnapshot(t *testing.T) {
	s := newSim(t, nil)
	c, o := addHost(t, s, "mx1", nil).FS(), addHost(t, s, "mx2", nil).FS()
	nfs := func() []string {
		var out []string
		for _, n := range listing(t, o, ".") {
			if strings.HasPrefix(n, ".nfs") {
				out = append(out, n)
			}
		}
		return out
	}
	replace(t, c, "index", 1, "mx1", 1)
	raw, err := c.OpenFile("index", vfs.ReadOnly, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Second)
	replace(t, c, "index", 2, "mx1", 2)
	if len(nfs()) != 1 {
		t.Fatalf("N17 did not happen: %v", listing(t, o, "."))
	}
	_ = raw.Close()
	s.Advance(time.Second)
	if left := nfs(); len(left) != 0 {
		t.Fatalf(".nfs files after the last close: %v", left)
	}

	v, err := OpenLatest(ctx, c, "index", topts("mx1", 3))
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Second)
	replace(t, c, "index", 3, "mx1", 4)
	if left := nfs(); len(left) != 0 {
		t.Fatalf("an install under a pinned Version silly-renamed: %v", left)
	}
	got := make([]byte, 5000)
	if n, err := v.ReadAt(got, 0); (err != nil && err != io.EOF) || n != 5000 || !bytes.Equal(got, payload(2, "mx1", 5000)) {
		t.Fatalf("the old reader: %d bytes, %v", n, err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, o, "index", 3, "mx1")
}

// TestSillyRenameOfHeldNameMovesNewerVersion pins down, so that the
// package documentation stays true, why nothing may hold the name itself
// open on a host that installs: the client's silly rename of the busy
// target is a rename of the name at the server that no lock can fence.
// Here mx1 holds index open, claims, and stops just before that silly
// rename; its claim goes stale and mx2 installs a newer version; mx1
// wakes, its client moves the newer version to .nfs…, its own install
// fails, and the name is absent.
func TestSillyRenameOfHeldNameMovesNewerVersion(t *testing.T) {
	renames := 0
	s := newSim(t, func(c *nfssim.Config) {
		c.Fault = func(p nfssim.Point) nfssim.Fault {
			if p.Kind == nfssim.PointRPC && p.Host == "mx1" && p.RPC == nfssim.RENAME {
				if renames++; renames == 2 { // the claim's rename, then the silly rename
					return nfssim.Fault{Kind: nfssim.PauseHost}
				}
			}
			return nfssim.Fault{}
		}
	})
	ha := addHost(t, s, "mx1", nil)
	a, b := ha.FS(), addHost(t, s, "mx2", nil).FS()
	replace(t, b, "index", 1, "mx2", 1)
	raw, err := a.OpenFile("index", vfs.ReadOnly, 0) // against the advice
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var commitErr error
	s.Go(ha, "mx1", func() {
		_, commitErr = tryReplace(a, "index", 2, "mx1", 2)
	})
	if err := s.Run(0); err != nil {
		t.Fatal(err)
	}
	s.Advance(testStaleAge + time.Second)
	replace(t, b, "index", 3, "mx2", 3)
	mustLoad(t, b, "index", 3, "mx2")
	ha.Resume()
	if err := s.Run(0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "the stale claimant", commitErr, ErrLost)
	fresh := addHost(t, s, "fresh", nil).FS()
	if _, err := OpenLatest(ctx, fresh, "index", topts("fresh", 4)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the documented hazard did not happen: %v", err)
	}
	if !slices.ContainsFunc(listing(t, fresh, "."), func(n string) bool { return strings.HasPrefix(n, ".nfs") }) {
		t.Fatalf("the newer version is not mx1's .nfs file: %v", listing(t, fresh, "."))
	}
}

// TestN18_StalenessByServerClock: hosts an hour ahead and an hour behind
// the server (whose clock is itself off, and coarse) agree that a claim is
// fresh until the server's clock has moved StaleAge past its last write,
// and stale after; ServerTime reads the server's clock, not the host's.
func TestN18_StalenessByServerClock(t *testing.T) {
	s := newSim(t, func(c *nfssim.Config) {
		c.Server.Skew = -30 * time.Minute
		c.Server.Granularity = time.Second
	})
	ha := addHost(t, s, "mx1", func(m *nfssim.Mount) { m.ClockSkew = time.Hour })
	ahead := addHost(t, s, "ahead", func(m *nfssim.Mount) { m.ClockSkew = time.Hour }).FS()
	behind := addHost(t, s, "behind", func(m *nfssim.Mount) { m.ClockSkew = -time.Hour }).FS()
	if d := ha.Clock().Sub(s.ServerTime()); d < time.Hour {
		t.Fatalf("N18 is not set up: host and server clocks differ by %v", d)
	}
	now, err := ServerTime(ctx, ha.FS(), "index", topts("mx1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if d := s.ServerTime().Sub(now); d < 0 || d > time.Second+10*time.Millisecond {
		t.Fatalf("ServerTime %v is %v from the server's clock %v", now, d, s.ServerTime())
	}
	ca, err := Begin(ctx, ha.FS(), "index", 1, topts("mx1", 2))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		for name, fsys := range map[string]vfs.FS{"ahead": ahead, "behind": behind} {
			_, err := tryReplace(fsys, "index", 2, name, uint64(10+i))
			var be *BusyError
			if !errors.As(err, &be) || be.Holders[0].Stale || be.Holders[0].Age > testStaleAge {
				t.Fatalf("round %d: the host %s: %v, want ErrBusy on a fresh claim", i, name, err)
			}
		}
		s.Advance(testStaleAge / 3)
	}
	s.Advance(testStaleAge / 3)
	replace(t, behind, "index", 2, "behind", 20)
	_, err = ca.Commit(ctx)
	wantErr(t, "the claim taken over", err, ErrLost)
	mustLoad(t, ahead, "index", 2, "behind")
}
