package nfssim

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// StatFresh is statx(2) with AT_STATX_FORCE_SYNC. These checks show what
// it defeats (the attribute cache, N1, and the stale pages of a
// descriptor already open, N2) and what it does not (the name cache: N4),
// how it meets a removed or replaced file (N15, N16), and what it costs.
// Each anomaly check runs on v3 and v4.2 and, like anomalyChecks, fails
// when its anomaly is switched off (TestStatFreshChecksNeedTheirAnomaly),
// so none passes on a simulator kinder than NFS.
var statFreshChecks = map[Anomaly]func(t tb, off Anomalies, v Version){
	N1: checkStatFreshN1, N2: checkStatFreshN2, N4: checkStatFreshN4,
	N15: checkStatFreshN15, N16: checkStatFreshN16,
}

func TestStatFreshChecksNeedTheirAnomaly(t *testing.T) {
	for a, check := range statFreshChecks {
		t.Run(a.String(), func(t *testing.T) {
			r := runRecorded(func(t tb) { check(t, Of(a), V3) })
			if !r.failed {
				t.Errorf("the StatFresh %v check passes with %v switched off: it does not depend on the anomaly", a, a)
			} else {
				t.Logf("with %v off the check fails as it must: %s", a, strings.Join(r.msgs, "; "))
			}
		})
	}
}

func bothVersions(t *testing.T, check func(t tb, off Anomalies, v Version)) {
	for _, v := range []Version{V3, V4} {
		t.Run("vers="+v.String(), func(t *testing.T) { check(t, 0, v) })
	}
}

func TestN1_StatFreshSeesAnotherHostsSizeAtOnce(t *testing.T) { bothVersions(t, checkStatFreshN1) }
func TestN2_StatFreshDropsStalePagesOfOpenFD(t *testing.T)    { bothVersions(t, checkStatFreshN2) }
func TestN4_StatFreshKeepsNegativeEntry(t *testing.T)         { bothVersions(t, checkStatFreshN4) }
func TestN15_StatFreshFollowsRenameOver(t *testing.T)         { bothVersions(t, checkStatFreshN15) }
func TestN16_StatFreshOfRemovedFileIsENOENT(t *testing.T)     { bothVersions(t, checkStatFreshN16) }

// wantRPCs fails unless do cost exactly want (Counts.String) on h.
func wantRPCs(t tb, h *Host, what, want string, do func()) {
	t.Helper()
	before := h.RPCs()
	do()
	if got := h.RPCs().Sub(before).String(); got != want {
		t.Fatalf("%s cost %s, want %s", what, got, want)
	}
}

func statFresh(t tb, fsys vfs.FS, name string) vfs.FileInfo {
	t.Helper()
	fi, err := fsys.StatFresh(name)
	must(t, "StatFresh "+name, err)
	return fi
}

func onVersion(v Version) func(*Mount) { return func(m *Mount) { m.Version = v } }

// checkStatFreshN1: another host's append is hidden from Stat by the
// attribute cache (N1) and seen by StatFresh at once, for one GETATTR;
// the GETATTR refreshes the cache, so a Stat right after sees it too.
func checkStatFreshN1(t tb, off Anomalies, v Version) {
	s := newSim(t, off, nil)
	a := addHost(t, s, "a", onVersion(v)).FS()
	hb := addHost(t, s, "b", onVersion(v))
	b := hb.FS()
	writeFile(t, a, "tail", []byte("0123456789"))
	st, err := b.Stat("tail")
	must(t, "stat", err)
	s.Advance(time.Second)
	w := openFile(t, a, "tail", vfs.WriteOnly)
	_, err = w.WriteAt([]byte("abcdefghij"), 10)
	must(t, "append", err)
	must(t, "close", w.Close())
	st, err = b.Stat("tail")
	must(t, "stat", err)
	if st.Size != 10 {
		t.Fatalf("N1: b's Stat within acregmin shows size %d, want the cached 10", st.Size)
	}
	wantRPCs(t, hb, "StatFresh of a name with cached attributes", "GETATTR=1", func() {
		if fi := statFresh(t, b, "tail"); fi.Size != 20 {
			t.Fatalf("StatFresh shows size %d right after a's close, want 20", fi.Size)
		}
	})
	wantRPCs(t, hb, "Stat after StatFresh", "none", func() {
		if st, err := b.Stat("tail"); err != nil || st.Size != 20 {
			t.Fatalf("Stat after StatFresh: size %d, %v; want the refreshed 20", st.Size, err)
		}
	})
	// Every call asks the server: no caching, no amortisation.
	wantRPCs(t, hb, "10 StatFresh", "GETATTR=10", func() {
		for range 10 {
			statFresh(t, b, "tail")
		}
	})
}

// checkStatFreshN2: a descriptor b opened before a's rewrite keeps
// reading its cached pages (N2); a StatFresh that sees the change drops
// them, as an open would, so the same descriptor then reads a's data.
func checkStatFreshN2(t tb, off Anomalies, v Version) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", onVersion(v)).FS(), addHost(t, s, "b", onVersion(v)).FS()
	writeFile(t, a, "f", []byte("v1-aaaa"))
	fd := openFile(t, b, "f", vfs.ReadOnly)
	defer fd.Close()
	got, err := readFD(t, fd)
	must(t, "read", err)
	wantContent(t, "first read", got, []byte("v1-aaaa"))
	s.Advance(time.Second)
	w := openFile(t, a, "f", vfs.ReadWrite)
	_, err = w.WriteAt([]byte("v2-bbbb"), 0)
	must(t, "rewrite", err)
	must(t, "close", w.Close())
	got, err = readFD(t, fd)
	must(t, "reread", err)
	wantContent(t, "N2: b's open descriptor after a's close", got, []byte("v1-aaaa"))
	statFresh(t, b, "f")
	got, err = readFD(t, fd)
	must(t, "read after StatFresh", err)
	wantContent(t, "the same descriptor after StatFresh", got, []byte("v2-bbbb"))
}

// checkStatFreshN4: force_sync bypasses the attribute cache, not the name
// cache. A name b looked up while it was missing stays missing for b's
// StatFresh, with no RPC at all, although a created it (N4). StatFresh of
// the directory (one GETATTR) notices the directory changed and drops
// the negative entry; the next StatFresh of the name finds the file.
func checkStatFreshN4(t tb, off Anomalies, v Version) {
	s := newSim(t, off, nil)
	a := addHost(t, s, "a", onVersion(v)).FS()
	hb := addHost(t, s, "b", onVersion(v))
	b := hb.FS()
	_, err := b.StatFresh("tail.2")
	wantErr(t, "StatFresh before the create", err, fs.ErrNotExist)
	s.Advance(time.Second)
	writeFile(t, a, "tail.2", []byte("x"))
	wantRPCs(t, hb, "StatFresh of a name with a negative entry", "none", func() {
		_, err = b.StatFresh("tail.2")
	})
	if err == nil {
		t.Fatalf("N4: b's StatFresh found a's new file; want ENOENT from b's negative entry")
	}
	wantErr(t, "N4: StatFresh", err, fs.ErrNotExist)
	// Remedy: StatFresh of the directory revalidates it.
	wantRPCs(t, hb, "StatFresh of the directory", "GETATTR=1", func() { statFresh(t, b, ".") })
	wantRPCs(t, hb, "StatFresh of the name after the directory's", "GETATTR=1 LOOKUP=1", func() {
		statFresh(t, b, "tail.2")
	})
}

// checkStatFreshN15: a renamed a new file over a name b had resolved.
// b's cached binding leads StatFresh to the replaced file, whose GETATTR
// fails with ESTALE; the VFS redoes the walk with a LOOKUP and StatFresh
// answers for the new file (GETATTR, LOOKUP, GETATTR), while Stat still
// answers from the cache for the old one.
func checkStatFreshN15(t tb, off Anomalies, v Version) {
	s := newSim(t, off, nil)
	a := addHost(t, s, "a", onVersion(v)).FS()
	hb := addHost(t, s, "b", onVersion(v))
	b := hb.FS()
	writeFile(t, a, "index", []byte("old1"))
	old := statFresh(t, b, "index")
	s.Advance(time.Second)
	writeFile(t, a, "index.tmp", []byte("new22"))
	must(t, "rename", a.Rename("index.tmp", "index"))
	st, err := b.Stat("index")
	must(t, "stat", err)
	if st.Ino != old.Ino {
		t.Fatalf("b's Stat within the attribute window already shows the new file")
	}
	var fi vfs.FileInfo
	wantRPCs(t, hb, "StatFresh of a replaced name", "GETATTR=2 LOOKUP=1", func() { fi = statFresh(t, b, "index") })
	if fi.Ino == old.Ino || fi.Size != 5 {
		t.Fatalf("N15: StatFresh after the rename answers %+v, want the new file (5 bytes), not the replaced %+v", fi, old)
	}
}

// checkStatFreshN16: a removed a file b had resolved. b's Stat still
// answers from its caches; StatFresh's GETATTR meets ESTALE (N16) and the
// VFS's retry makes it ENOENT (GETATTR + LOOKUP). Without that retry
// (Mount.NoESTALERetry) the ESTALE surfaces.
func checkStatFreshN16(t tb, off Anomalies, v Version) {
	s := newSim(t, off, nil)
	a := addHost(t, s, "a", onVersion(v)).FS()
	hb := addHost(t, s, "b", onVersion(v))
	b := hb.FS()
	c := addHost(t, s, "c", func(m *Mount) { m.Version = v; m.NoESTALERetry = true }).FS()
	writeFile(t, a, "tail.1", []byte("data"))
	statFresh(t, b, "tail.1")
	statFresh(t, c, "tail.1")
	s.Advance(time.Second)
	must(t, "remove", a.Remove("tail.1"))
	_, err := b.Stat("tail.1")
	must(t, "b's Stat of the removed file, from its caches", err)
	wantRPCs(t, hb, "StatFresh of a removed file", "GETATTR=1 LOOKUP=1", func() {
		_, err = b.StatFresh("tail.1")
	})
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, vfs.ErrStale) {
		t.Fatalf("N16: StatFresh of a file another host removed = %v, want ENOENT", err)
	}
	_, err = c.StatFresh("tail.1")
	wantErr(t, "N16: StatFresh without the VFS's ESTALE retry", err, vfs.ErrStale)
}

// TestStatFreshWhileOldFileLives is the limit of StatFresh the vfs doc
// states: the name is resolved through the host's cached binding (N5), so
// while the replaced file lives at the server its GETATTR succeeds and
// StatFresh answers for it until the directory's attributes expire. It
// lives when the renaming host had it open (silly-renamed, N17: it keeps
// a link) or, on a server that preserves unlinked open files (v4 open
// state, as the lab's ganesha does), when any host has it open. The
// check is not anomaly-switched: no single anomaly makes it happen.
func TestStatFreshWhileOldFileLives(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   UnlinkedMode
		holder string // the host that holds the old file open
		nlink  uint64 // the old file's link count StatFresh reports
	}{
		{"renamer holds it (silly rename)", UnlinkedStale, "a", 1},
		{"third host holds it, server preserves", UnlinkedPreserve, "c", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 0, func(c *Config) { c.Server.Unlinked = tc.mode })
			v4 := onVersion(V4)
			hosts := map[string]vfs.FS{}
			for _, n := range []string{"a", "b", "c"} {
				hosts[n] = addHost(t, s, n, v4).FS()
			}
			a, b := hosts["a"], hosts["b"]
			writeFile(t, a, "index", []byte("old1"))
			holder := openFile(t, hosts[tc.holder], "index", vfs.ReadOnly)
			defer holder.Close()
			old := statFresh(t, b, "index")
			s.Advance(time.Second)
			writeFile(t, a, "index.tmp", []byte("new22"))
			must(t, "rename", a.Rename("index.tmp", "index"))
			if fi := statFresh(t, b, "index"); fi.Ino != old.Ino || fi.Nlink != tc.nlink {
				t.Fatalf("StatFresh with the old file alive = %+v, want the old file %d with %d links", fi, old.Ino, tc.nlink)
			}
			s.Advance(time.Minute) // b's directory attributes expire: the name is looked up again
			if fi := statFresh(t, b, "index"); fi.Ino == old.Ino || fi.Size != 5 {
				t.Fatalf("StatFresh after acdirmax = %+v, want the new file", fi)
			}
		})
	}
}

// TestStatFreshUnderDelegation: a v4 read delegation lets Stat (and
// open) answer locally, but force_sync still sends GETATTR (Linux
// nfs_getattr: do_update |= force_sync, before any delegation test). Read
// in the kernel source; the lab's ganesha grants no delegations, so this
// is not measured.
func TestStatFreshUnderDelegation(t *testing.T) {
	s := newSim(t, 0, func(c *Config) { c.Server.Delegations = true })
	a := addHost(t, s, "a", onVersion(V4)).FS()
	hb := addHost(t, s, "b", onVersion(V4))
	writeFile(t, a, "f", []byte("data"))
	_ = readFile(t, hb.FS(), "f") // b gets a read delegation
	s.Advance(10 * time.Second)   // past acregmin (3 s), within acdirmin (30 s)
	wantRPCs(t, hb, "Stat under delegation, attributes 10 s old", "none", func() {
		_, err := hb.FS().Stat("f")
		must(t, "stat", err)
	})
	wantRPCs(t, hb, "StatFresh under delegation", "GETATTR=1", func() { statFresh(t, hb.FS(), "f") })
}

// TestStatFreshFlushesDirtyPages: like stat (nfs_getattr), StatFresh
// first writes this host's dirty pages of the file, then asks the server,
// so the size it reports includes this host's own unsynced writes.
func TestStatFreshFlushesDirtyPages(t *testing.T) {
	for _, v := range []Version{V3, V4} {
		s := newSim(t, 0, nil)
		h := addHost(t, s, "h", onVersion(v))
		o := addHost(t, s, "o", onVersion(v)).FS()
		writeFile(t, h.FS(), "f", nil)
		fd := openFile(t, h.FS(), "f", vfs.ReadWrite)
		_, err := fd.WriteAt(make([]byte, 100), 0)
		must(t, "write", err)
		wantRPCs(t, h, "StatFresh with 100 dirty bytes", "GETATTR=1 WRITE=1", func() {
			if fi := statFresh(t, h.FS(), "f"); fi.Size != 100 {
				t.Fatalf("vers=%v: StatFresh size %d, want 100", v, fi.Size)
			}
		})
		if fi := statFresh(t, o, "f"); fi.Size != 100 {
			t.Fatalf("vers=%v: the other host's StatFresh size %d, want 100 (the WRITE reached the server)", v, fi.Size)
		}
		must(t, "close", fd.Close())
	}
}
