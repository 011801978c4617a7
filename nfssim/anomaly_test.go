package nfssim

import (
	"bytes"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// Each anomaly of ../shared/nfs-semantics.md has a check that shows it
// happening with default (or the note's worst-case) knobs and shows its
// remedy working. TestNk_... runs it; TestAnomalyChecksNeedTheirAnomaly
// runs it again with the anomaly switched off (Config.Disable) and
// requires it to fail, so no check passes on a simulator kinder than NFS.
var anomalyChecks = map[Anomaly]func(t tb, off Anomalies){
	N1: checkN1, N2: checkN2, N3: checkN3, N4: checkN4, N5: checkN5, N6: checkN6,
	N7: checkN7, N8: checkN8, N9: checkN9, N10: checkN10, N11: checkN11, N12: checkN12,
	N13: checkN13, N14: checkN14, N15: checkN15, N16: checkN16, N17: checkN17,
	N18: checkN18, N19: checkN19, N20: checkN20, N21: checkN21, N22: checkN22,
}

func TestAnomalyChecksNeedTheirAnomaly(t *testing.T) {
	for a := N1; a <= numAnomalies; a++ {
		check := anomalyChecks[a]
		if check == nil {
			t.Errorf("%v has no check", a)
			continue
		}
		t.Run(a.String(), func(t *testing.T) {
			r := runRecorded(func(t tb) { check(t, Of(a)) })
			if !r.failed {
				t.Errorf("the %v check passes with %v switched off: it does not depend on the anomaly", a, a)
			} else {
				t.Logf("with %v off the check fails as it must: %s", a, strings.Join(r.msgs, "; "))
			}
		})
	}
}

func TestN1_AttributeCacheHidesSize(t *testing.T)               { checkN1(t, 0) }
func TestN2_OpenFDNotCoherentUntilReopen(t *testing.T)          { checkN2(t, 0) }
func TestN3_SameTickRewriteInvisibleOnV3(t *testing.T)          { checkN3(t, 0) }
func TestN4_NegativeDentryHidesNewFile(t *testing.T)            { checkN4(t, 0) }
func TestN5_V3OpenFollowsStaleBinding(t *testing.T)             { checkN5(t, 0) }
func TestN6_ReaddirMissesRenamedName(t *testing.T)              { checkN6(t, 0) }
func TestN7_WriteBackOutOfOrderAfterCrash(t *testing.T)         { checkN7(t, 0) }
func TestN8_WriteTornAtWsize(t *testing.T)                      { checkN8(t, 0) }
func TestN9_PageExtensionLosesUpdate(t *testing.T)              { checkN9(t, 0) }
func TestN10_UnstableWriteVanishesAtServerCrash(t *testing.T)   { checkN10(t, 0) }
func TestN11_WriteErrorReportedAtClose(t *testing.T)            { checkN11(t, 0) }
func TestN12_AppendOverwritesAcrossHosts(t *testing.T)          { checkN12(t, 0) }
func TestN13_ExclusiveCreateCrashLeavesGarbage(t *testing.T)    { checkN13(t, 0) }
func TestN14_RetransmittedLinkReportsEEXIST(t *testing.T)       { checkN14(t, 0) }
func TestN15_RenameOverMakesOldFDStale(t *testing.T)            { checkN15(t, 0) }
func TestN16_ESTALEOnDescriptor(t *testing.T)                   { checkN16(t, 0) }
func TestN17_SillyRenameLeavesNFSFile(t *testing.T)             { checkN17(t, 0) }
func TestN18_TimestampsFromServerClock(t *testing.T)            { checkN18(t, 0) }
func TestN19_LocksAreHostLocal(t *testing.T)                    { checkN19(t, 0) }
func TestN20_DelegationRecallStallsOnPausedHolder(t *testing.T) { checkN20(t, 0) }
func TestN21_ServerRestartOutageAndLoss(t *testing.T)           { checkN21(t, 0) }
func TestN22_CachesArePerHost(t *testing.T)                     { checkN22(t, 0) }

func checkN1(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
	writeFile(t, a, "f", []byte("0123456789"))
	st, err := b.Stat("f")
	must(t, "stat", err)
	s.Advance(time.Second)
	fd := openFile(t, a, "f", vfs.WriteOnly)
	_, err = fd.WriteAt([]byte("abcdefghij"), 10)
	must(t, "append", err)
	must(t, "close", fd.Close())
	st, err = b.Stat("f")
	must(t, "stat", err)
	if st.Size != 10 {
		t.Fatalf("N1: b's stat within acregmin shows size %d, want the stale 10", st.Size)
	}
	// Remedy: close-to-open. Opening revalidates at once.
	fd = openFile(t, b, "f", vfs.ReadOnly)
	defer fd.Close()
	fst, err := fd.Stat()
	must(t, "fstat", err)
	if fst.Size != 20 {
		t.Fatalf("N1 remedy: stat after open shows %d, want 20", fst.Size)
	}
}

func checkN2(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
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
	if !bytes.Equal(got, []byte("v1-aaaa")) {
		t.Fatalf("N2: b's long-lived fd read %q after a's close, want the stale v1", got)
	}
	wantContent(t, "N2 remedy: reopen", readFile(t, b, "f"), []byte("v2-bbbb"))
}

// n3Run writes v1 and then v2 (same size) in one server tick of 1 s with
// a revalidating between, and returns what a reads ten minutes later.
func n3Run(t tb, off Anomalies, v Version) []byte {
	s := newSim(t, off, func(c *Config) { c.Server.Granularity = time.Second; c.Server.ChangeMode = ChangeCTime })
	a := addHost(t, s, "a", func(m *Mount) { m.Version = v }).FS()
	b := addHost(t, s, "b", func(m *Mount) { m.Version = v }).FS()
	writeFile(t, b, "f", []byte("v0-0000"))
	wantContent(t, "v0", readFile(t, a, "f"), []byte("v0-0000"))
	s.Advance(2*time.Second - s.Now()%time.Second + time.Millisecond) // start of a tick
	rewrite := func(data string) {
		w := openFile(t, b, "f", vfs.ReadWrite)
		_, err := w.WriteAt([]byte(data), 0)
		must(t, "rewrite", err)
		must(t, "close", w.Close())
	}
	rewrite("v1-1111")
	wantContent(t, "v1", readFile(t, a, "f"), []byte("v1-1111"))
	rewrite("v2-2222")
	s.Advance(10 * time.Minute)
	return readFile(t, a, "f")
}

func checkN3(t tb, off Anomalies) {
	if got := n3Run(t, off, V3); !bytes.Equal(got, []byte("v1-1111")) {
		t.Fatalf("N3: v3 host read %q ten minutes after a same-tick same-size rewrite, want the stale v1", got)
	}
	// Remedy: a change attribute that is a counter (v4) notices it. With
	// change derived from ctime (coarse) even v4 would not: compare
	// content (generation + checksum) instead of trusting "unchanged".
	if got := n3Run(t, off, V4); !bytes.Equal(got, []byte("v1-1111")) {
		t.Logf("v4 with ctime-derived change also misses it: %q", got)
	}
}

func checkN4(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
	_, err := b.Stat("new")
	wantErr(t, "first stat", err, fs.ErrNotExist)
	s.Advance(time.Second)
	writeFile(t, a, "new", []byte("x"))
	s.Advance(10 * time.Second)
	_, err = b.Stat("new")
	if err == nil {
		t.Fatalf("N4: b sees the new file 10 s later; want ENOENT from its negative dentry")
	}
	wantErr(t, "N4 stat", err, fs.ErrNotExist)
	// Remedy: open (list) the directory, which revalidates it, then look
	// the name up.
	_, err = b.ReadDir(".")
	must(t, "readdir", err)
	_, err = b.Stat("new")
	must(t, "N4 remedy: stat after opening the directory", err)
}

func checkN5(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
	writeFile(t, b, "index", []byte("gen1"))
	wantContent(t, "a caches the binding", readFile(t, a, "index"), []byte("gen1"))
	s.Advance(time.Second)
	// b holds the old index open and renames a new one over it: the old
	// inode survives as b's .nfs file.
	hold := openFile(t, b, "index", vfs.ReadOnly)
	defer hold.Close()
	writeFile(t, b, "index.tmp", []byte("gen2"))
	must(t, "rename", b.Rename("index.tmp", "index"))
	if got := readFile(t, a, "index"); !bytes.Equal(got, []byte("gen1")) {
		t.Fatalf("N5: v3 open of the replaced name read %q, want the old file's gen1", got)
	}
	// Remedy: v4 open sends OPEN by name, so the server resolves it.
	c := addHost(t, s, "c", func(m *Mount) { m.Version = V4 }).FS()
	wantContent(t, "N5 remedy: v4 open", readFile(t, c, "index"), []byte("gen2"))
	// And once a's directory attributes expire, the name is looked up.
	s.Advance(61 * time.Second)
	wantContent(t, "after acdirmax", readFile(t, a, "index"), []byte("gen2"))
}

func checkN6(t tb, off Anomalies) {
	listing := 0
	var s *Sim
	s = newSim(t, off, func(c *Config) {
		c.Fault = func(p Point) Fault {
			if p.Kind == PointRPC && p.Host == "a" && p.RPC == READDIRPLUS {
				listing++
				if listing == 2 {
					return Fault{Kind: PauseHost}
				}
			}
			return Fault{}
		}
	})
	defer s.Close()
	ha := addHost(t, s, "a", func(m *Mount) { m.ReaddirChunk = 1 })
	b := addHost(t, s, "b", nil).FS()
	for _, n := range []string{"a1", "a2", "a3"} {
		writeFile(t, b, n, []byte(n))
	}
	var names []string
	var lerr error
	s.Go(ha, "list", func() { names, lerr = ha.FS().ReadDir(".") })
	must(t, "run", s.Run(0))
	// a is paused between two READDIRPLUS replies; b renames a3 to a0.
	must(t, "rename", b.Rename("a3", "a0"))
	ha.Resume()
	must(t, "run", s.Run(0))
	must(t, "readdir", lerr)
	if slices.Contains(names, "a0") || slices.Contains(names, "a3") {
		t.Fatalf("N6: listing %v contains the renamed file; want it missed by the non-atomic readdir", names)
	}
	// Remedy: treat a listing as a hint and confirm a name at the server.
	_, err := ha.FS().Stat("a0")
	must(t, "N6 remedy: lookup of the name", err)
}

func checkN7(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	ha := addHost(t, s, "a", nil)
	a, b := ha.FS(), addHost(t, s, "b", nil).FS()
	fd := openFile(t, a, "f", vfs.ReadWrite|vfs.Create)
	_, err := fd.WriteAt(bytes.Repeat([]byte("A"), 4096), 0)
	must(t, "write page 0", err)
	_, err = fd.WriteAt(bytes.Repeat([]byte("B"), 4096), 4096)
	must(t, "write page 1", err)
	if st, err := b.Stat("f"); err != nil || st.Size != 0 {
		t.Fatalf("N7: b sees size %d (err %v) before any flush, want 0", st.Size, err)
	}
	units := ha.DirtyUnits()
	if len(units) != 2 {
		t.Fatalf("N7: %d dirty units, want 2 (%v)", len(units), units)
	}
	ha.Crash(Fault{Keep: 0b10}) // the later page arrived, the earlier did not
	got := readFile(t, b, "f")
	want := append(make([]byte, 4096), bytes.Repeat([]byte("B"), 4096)...)
	wantContent(t, "N7: after the crash", got, want)
	// Remedy: fsync is the only barrier.
	ha.Restart()
	fd = openFile(t, a, "g", vfs.ReadWrite|vfs.Create)
	_, err = fd.WriteAt(bytes.Repeat([]byte("A"), 4096), 0)
	must(t, "write", err)
	must(t, "fsync", fd.Sync())
	_, err = fd.WriteAt(bytes.Repeat([]byte("B"), 4096), 4096)
	must(t, "write", err)
	ha.Crash(Fault{Keep: 0b1})
	got = readFile(t, b, "g")
	if !bytes.Equal(got[:4096], bytes.Repeat([]byte("A"), 4096)) {
		t.Fatalf("N7 remedy: fsynced page lost")
	}
}

func checkN8(t tb, off Anomalies) {
	writes := 0
	s := newSim(t, off, func(c *Config) {
		c.Fault = func(p Point) Fault {
			if p.Kind == PointRPC && p.Host == "a" && p.RPC == WRITE {
				writes++
				if writes == 4 { // the second WRITE of the new data
					return Fault{Kind: CrashHost}
				}
			}
			return Fault{}
		}
	})
	a := addHost(t, s, "a", func(m *Mount) { m.WSize, m.RSize = 4096, 4096 }).FS()
	b := addHost(t, s, "b", nil).FS()
	old, neu := bytes.Repeat([]byte("o"), 8192), bytes.Repeat([]byte("n"), 8192)
	fd := openFile(t, a, "f", vfs.ReadWrite|vfs.Create)
	_, err := fd.WriteAt(old, 0)
	must(t, "write old", err)
	must(t, "fsync old", fd.Sync()) // WRITE 1, 2 + COMMIT... or one FILE_SYNC when untorn
	_, err = fd.WriteAt(neu, 0)     // one write(2) call
	must(t, "write new", err)
	serr := fd.Sync()
	if serr == nil {
		t.Fatalf("N8: the 8 KiB write went out without being split at wsize=4096")
	}
	got := readFile(t, b, "f")
	halfNew := bytes.Count(got, []byte("n"))
	if halfNew != 4096 {
		t.Fatalf("N8: after a crash between the two WRITEs the file holds %d new bytes, want exactly one page (4096)", halfNew)
	}
}

// n9Run: a caches page 0; b writes byte 100 and fsyncs; a writes byte 0
// and fsyncs. It returns byte 100 as a fresh host reads it.
func n9Run(t tb, off Anomalies, am func(*Mount), flag vfs.Flag) byte {
	s := newSim(t, off, nil)
	a := addHost(t, s, "a", am).FS()
	b := addHost(t, s, "b", nil).FS()
	writeFile(t, b, "f", bytes.Repeat([]byte("."), 4096))
	fa := openFile(t, a, "f", vfs.ReadWrite|flag)
	defer fa.Close()
	_, err := readFD(t, fa)
	must(t, "a caches the page", err)
	s.Advance(time.Second)
	fb := openFile(t, b, "f", vfs.ReadWrite)
	_, err = fb.WriteAt([]byte("B"), 100)
	must(t, "b writes byte 100", err)
	must(t, "b fsync", fb.Sync())
	must(t, "b close", fb.Close())
	_, err = fa.WriteAt([]byte("A"), 0)
	must(t, "a writes byte 0", err)
	must(t, "a fsync", fa.Sync())
	got := readFile(t, addHost(t, s, "c", nil).FS(), "f")
	if got[0] != 'A' {
		t.Fatalf("a's own byte is missing: %q", got[:4])
	}
	return got[100]
}

func checkN9(t tb, off Anomalies) {
	if got := n9Run(t, off, nil, 0); got != '.' {
		t.Fatalf("N9: byte 100 is %q, want it reverted to '.' by a's page-extended write", got)
	}
	if got := n9Run(t, off, func(m *Mount) { m.NoAlignWrite = true }, 0); got != 'B' {
		t.Fatalf("N9 remedy noalignwrite: byte 100 is %q, want 'B'", got)
	}
	if got := n9Run(t, off, nil, vfs.DSync); got != 'B' {
		t.Fatalf("N9 remedy O_DSYNC: byte 100 is %q, want 'B'", got)
	}
}

func checkN10(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a := addHost(t, s, "a", func(m *Mount) { m.WSize = 4096 }).FS()
	b := addHost(t, s, "b", nil).FS()
	data := bytes.Repeat([]byte("x"), 8192)
	fd := openFile(t, a, "f", vfs.ReadWrite|vfs.Create)
	defer fd.Close()
	_, err := fd.WriteAt(data, 0)
	must(t, "write", err)
	_, err = fd.Stat() // writes back (UNSTABLE), no COMMIT
	must(t, "stat", err)
	wantContent(t, "b reads the unstable data", readFile(t, b, "f"), data)
	s.CrashServer(0)
	s.Advance(time.Second)
	if got := readFile(t, b, "f"); len(got) != 0 {
		t.Fatalf("N10: after a server crash b reads %d bytes, want the unstable data gone", len(got))
	}
	// Remedy: fsync resends what the new verifier says was lost.
	must(t, "fsync", fd.Sync())
	s.CrashServer(0)
	s.Advance(time.Second)
	wantContent(t, "N10 remedy: fsynced data survives a server crash", readFile(t, b, "f"), data)
}

func checkN11(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	ha := addHost(t, s, "a", nil)
	a := ha.FS()
	writeFile(t, a, "f", nil)
	fd := openFile(t, a, "f", vfs.WriteOnly)
	must(t, "inject", ha.InjectWriteError("f", syscall.ENOSPC))
	if _, err := fd.WriteAt([]byte("data"), 0); err != nil {
		t.Fatalf("N11: write(2) reported %v; the error should arrive late", err)
	}
	wantErr(t, "N11: close reports the background error", fd.Close(), syscall.ENOSPC)
	fd = openFile(t, a, "f", vfs.WriteOnly)
	must(t, "the error is reported once", fd.Sync())
	must(t, "close", fd.Close())
	// Soft mounts guess: a call during an outage fails, outcome unknown.
	soft := addHost(t, s, "soft", func(m *Mount) { m.Soft = true }).FS()
	s.CrashServer(30 * time.Second)
	_, err := soft.Stat("nothing")
	wantErr(t, "soft mount during outage", err, syscall.ETIMEDOUT)
}

func checkN12(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
	writeFile(t, a, "log", bytes.Repeat([]byte("0"), 64))
	fa := openFile(t, a, "log", vfs.WriteOnly|vfs.Append)
	fb := openFile(t, b, "log", vfs.WriteOnly|vfs.Append)
	_, err := fa.Write(bytes.Repeat([]byte("a"), 64))
	must(t, "a appends", err)
	must(t, "a close", fa.Close())
	_, err = fb.Write(bytes.Repeat([]byte("b"), 64))
	must(t, "b appends", err)
	must(t, "b close", fb.Close())
	got := readFile(t, addHost(t, s, "c", nil).FS(), "log")
	if bytes.Contains(got, []byte("a")) {
		t.Fatalf("N12: a's record survived (%d bytes); want it overwritten by b's append at its stale size", len(got))
	}
	// Remedy: one writer per log.
	writeFile(t, a, "log.a", []byte("a"))
	writeFile(t, b, "log.b", []byte("b"))
}

func checkN13(t tb, off Anomalies) {
	s := newSim(t, off, func(c *Config) {
		c.Fault = func(p Point) Fault {
			if p.Kind == PointRPC && p.Host == "a" && p.RPC == SETATTR {
				return Fault{Kind: CrashHost}
			}
			return Fault{}
		}
	})
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
	_, err := a.OpenFile("lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
	wantErr(t, "N13: the creator crashes between CREATE and SETATTR", err, ErrHostDown)
	st, err := b.Stat("lock")
	must(t, "the lock file exists", err)
	if st.Mode.Perm() != 0 {
		t.Fatalf("N13: mode %v, want 0 (SETATTR never came)", st.Mode)
	}
	if d := st.ModTime.Sub(s.ServerTime()); d > -24*time.Hour && d < 24*time.Hour {
		t.Fatalf("N13: mtime %v is plausible; want the verifier's garbage", st.ModTime)
	}
	// Remedy: the verifier makes a retransmitted EXCLUSIVE create succeed.
	s2 := newSim(t, off, func(c *Config) {
		c.Server.DRCSize = 0
		c.Fault = func(p Point) Fault {
			if p.Kind == PointRPC && p.RPC == CREATE {
				return Fault{Kind: DropReply}
			}
			return Fault{}
		}
	})
	fd, err := addHost(t, s2, "a", nil).FS().OpenFile("lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
	must(t, "N13 remedy: retransmitted exclusive create", err)
	must(t, "close", fd.Close())
}

func checkN14(t tb, off Anomalies) {
	run := func(drc int) (linkErr, removeErr error, nlink uint64) {
		s := newSim(t, off, func(c *Config) {
			c.Server.DRCSize = drc
			c.Fault = func(p Point) Fault {
				if p.Kind == PointRPC && (p.RPC == LINK || p.RPC == REMOVE) {
					return Fault{Kind: DropReply}
				}
				return Fault{}
			}
		})
		a := addHost(t, s, "a", nil).FS()
		writeFile(t, a, "tmp", []byte("record"))
		linkErr = a.Link("tmp", "seq1")
		st, err := a.Stat("tmp")
		must(t, "stat", err)
		removeErr = a.Remove("tmp")
		return linkErr, removeErr, st.Nlink
	}
	le, re, nlink := run(0)
	if !errorsIs(le, fs.ErrExist) || !errorsIs(re, fs.ErrNotExist) {
		t.Fatalf("N14: with no DRC, link said %v and remove said %v; want EEXIST and ENOENT after success", le, re)
	}
	if nlink != 2 {
		t.Fatalf("N14 remedy: nlink of the source is %d, want 2 (we won)", nlink)
	}
	le, re, _ = run(1024)
	if le != nil || re != nil {
		t.Fatalf("N14: with a DRC the answers are %v / %v, want success", le, re)
	}
	// A server without EXCLUSIVE support makes the client fall back to
	// GUARDED, whose retransmission reports EEXIST for its own create.
	s := newSim(t, off, func(c *Config) {
		c.Server.DRCSize, c.Server.NoExclusive = 0, true
		c.Fault = func(p Point) Fault {
			if p.Kind == PointRPC && p.RPC == CREATE {
				return Fault{Kind: DropReply}
			}
			return Fault{}
		}
	})
	a := addHost(t, s, "a", nil).FS()
	_, err := a.OpenFile("lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
	wantErr(t, "N14: GUARDED create retransmitted", err, fs.ErrExist)
	_, err = a.Stat("lock")
	must(t, "the create happened", err)
}

func checkN15(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
	writeFile(t, b, "index", []byte("old1"))
	fd := openFile(t, a, "index", vfs.ReadOnly)
	defer fd.Close()
	got, err := readFD(t, fd)
	must(t, "read", err)
	wantContent(t, "first read", got, []byte("old1"))
	s.Advance(time.Second)
	writeFile(t, b, "index.tmp", []byte("new2"))
	must(t, "rename", b.Rename("index.tmp", "index"))
	got, err = readFD(t, fd)
	must(t, "cached read", err)
	wantContent(t, "N15: the old fd serves cached old pages", got, []byte("old1"))
	s.Advance(5 * time.Second)
	_, err = readFD(t, fd)
	wantErr(t, "N15: the old fd goes stale", err, vfs.ErrStale)
	wantContent(t, "N15 remedy: reopen by name", readFile(t, a, "index"), []byte("new2"))
}

func checkN16(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
	writeFile(t, b, "f", []byte("data"))
	fd := openFile(t, a, "f", vfs.ReadOnly)
	defer fd.Close()
	must(t, "remove", b.Remove("f"))
	_, err := fd.ReadAt(make([]byte, 4), 0)
	wantErr(t, "N16: read on a removed file's fd", err, vfs.ErrStale)
	// Path operations retry once with a fresh lookup: ENOENT, not ESTALE.
	_, err = a.OpenFile("f", vfs.ReadOnly, 0)
	wantErr(t, "N16: reopen by name", err, fs.ErrNotExist)
	// Unless the retry is off: then path operations surface it too.
	c := addHost(t, s, "c", func(m *Mount) { m.NoESTALERetry = true }).FS()
	writeFile(t, b, "g", []byte("data"))
	_ = readFile(t, c, "g")
	s.Advance(time.Second)
	must(t, "remove", b.Remove("g"))
	_, err = c.OpenFile("g", vfs.ReadOnly, 0)
	wantErr(t, "N16: open without the VFS retry", err, vfs.ErrStale)
}

func checkN17(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	ha := addHost(t, s, "a", nil)
	a, b := ha.FS(), addHost(t, s, "b", nil).FS()
	writeFile(t, a, "f", []byte("data"))
	fd := openFile(t, a, "f", vfs.ReadOnly)
	must(t, "remove while open", a.Remove("f"))
	names, err := b.ReadDir(".")
	must(t, "readdir", err)
	var silly string
	for _, n := range names {
		if strings.HasPrefix(n, ".nfs") {
			silly = n
		}
	}
	if silly == "" {
		t.Fatalf("N17: b's listing %v has no .nfs file", names)
	}
	wantErr(t, "N17: removing the silly name on the holder", a.Remove(silly), syscall.EBUSY)
	s.Advance(time.Second)
	must(t, "close", fd.Close())
	names, err = b.ReadDir(".")
	must(t, "readdir", err)
	if slices.Contains(names, silly) {
		t.Fatalf("N17: %s still listed after the last close", silly)
	}
	// A crash while holding it leaves the .nfs file forever.
	s.Advance(time.Second) // a new server tick, or b's listing is N3-stale
	writeFile(t, a, "g", []byte("data"))
	_ = openFile(t, a, "g", vfs.ReadOnly)
	must(t, "remove", a.Remove("g"))
	ha.Crash(Fault{})
	s.Advance(time.Hour)
	names, err = b.ReadDir(".")
	must(t, "readdir", err)
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, ".nfs") }) {
		t.Fatalf("N17: the crashed holder's .nfs file is gone: %v", names)
	}
}

func checkN18(t tb, off Anomalies) {
	s := newSim(t, off, func(c *Config) { c.Server.Granularity = time.Second; c.Server.Skew = -30 * time.Minute })
	ha := addHost(t, s, "a", func(m *Mount) { m.ClockSkew = time.Hour })
	a := ha.FS()
	s.Advance(1500 * time.Millisecond)
	writeFile(t, a, "probe", nil)
	st, err := a.Stat("probe")
	must(t, "stat probe", err)
	if d := ha.Clock().Sub(st.ModTime); d < time.Hour {
		t.Fatalf("N18: host clock and the file's mtime differ by %v, want the 1.5 h of skew", d)
	}
	if st.ModTime.Nanosecond() != 0 {
		t.Fatalf("N18: mtime %v is not quantized to the server's 1 s granularity", st.ModTime)
	}
	// Remedy: the probe's mtime is the server's clock, within G + RTT.
	if d := s.ServerTime().Sub(st.ModTime); d < 0 || d > time.Second+time.Millisecond {
		t.Fatalf("N18 remedy: probe mtime %v is %v from the server clock", st.ModTime, d)
	}
}

func checkN19(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	ha, hb := addHost(t, s, "a", nil), addHost(t, s, "b", nil)
	writeFile(t, ha.FS(), "f", []byte("v1"))
	wantContent(t, "b caches", readFile(t, hb.FS(), "f"), []byte("v1"))
	ua, err := ha.LockLocal("f")
	must(t, "a locks", err)
	defer ua()
	if _, err := ha.LockLocal("f"); err == nil {
		t.Fatalf("a second lock on the same host succeeded")
	}
	s.Advance(time.Second)
	w := openFile(t, ha.FS(), "f", vfs.ReadWrite)
	_, err = w.WriteAt([]byte("v2"), 0)
	must(t, "write", err)
	must(t, "close", w.Close())
	ub, err := hb.LockLocal("f")
	if err != nil {
		t.Fatalf("N19: b could not lock while a holds the lock (%v); a nolock mount excludes only locally", err)
	}
	defer ub()
	// The lock's side effect is a cache coherency point: b sees v2 on a
	// long-lived descriptor too.
	fd := openFile(t, hb.FS(), "f", vfs.ReadOnly)
	defer fd.Close()
	got, err := readFD(t, fd)
	must(t, "read", err)
	wantContent(t, "after lock", got, []byte("v2"))
}

func checkN20(t tb, off Anomalies) {
	s := newSim(t, off, func(c *Config) { c.Server.Delegations = true })
	v4 := func(m *Mount) { m.Version = V4 }
	ha, hb := addHost(t, s, "a", v4), addHost(t, s, "b", v4)
	writeFile(t, ha.FS(), "f", []byte("data"))
	_ = readFile(t, hb.FS(), "f") // b gets a read delegation
	before := hb.RPCs()
	_ = readFile(t, hb.FS(), "f")
	if d := hb.RPCs().Sub(before); d.Total() != 0 {
		t.Fatalf("N20: a reopen under delegation cost %v, want 0 RPCs", d)
	}
	hb.Pause()
	t0 := s.Now()
	w := openFile(t, ha.FS(), "f", vfs.WriteOnly)
	must(t, "close", w.Close())
	if waited := s.Now() - t0; waited < 90*time.Second {
		t.Fatalf("N20: a's conflicting open took %v, want a wait of the 90 s lease on the paused holder", waited)
	}
}

func checkN21(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a := addHost(t, s, "a", nil).FS()
	b := addHost(t, s, "b", nil).FS()
	fd := openFile(t, a, "durable", vfs.ReadWrite|vfs.Create)
	_, err := fd.WriteAt([]byte("kept"), 0)
	must(t, "write", err)
	must(t, "fsync", fd.Sync())
	must(t, "close", fd.Close())
	v := openFile(t, a, "volatile", vfs.ReadWrite|vfs.Create)
	_, err = v.WriteAt(bytes.Repeat([]byte("v"), 8192), 0)
	must(t, "write", err)
	_, err = v.Stat() // unstable WRITEs, no COMMIT
	must(t, "stat", err)
	t0 := s.Now()
	s.CrashServer(30 * time.Second)
	_, err = b.Stat("nothing") // a hard mount waits out the outage
	wantErr(t, "stat", err, fs.ErrNotExist)
	if waited := s.Now() - t0; waited < 30*time.Second {
		t.Fatalf("N21: a call during the outage returned after %v, want >= 30 s on a hard mount", waited)
	}
	wantContent(t, "fsynced data", readFile(t, b, "durable"), []byte("kept"))
	if got := readFile(t, b, "volatile"); len(got) != 0 {
		t.Fatalf("N21: unstable data survived the restart (%d bytes)", len(got))
	}
	v.Close()
}

func checkN22(t tb, off Anomalies) {
	s := newSim(t, off, nil)
	a, b := addHost(t, s, "a", nil).FS(), addHost(t, s, "b", nil).FS()
	writeFile(t, a, "f", nil)
	w := openFile(t, a, "f", vfs.ReadWrite)
	defer w.Close()
	_, err := w.WriteAt([]byte("x"), 0)
	must(t, "write", err)
	r := openFile(t, a, "f", vfs.ReadOnly)
	got, err := readFD(t, r)
	must(t, "read", err)
	r.Close()
	wantContent(t, "another fd on the same host sees the unflushed write", got, []byte("x"))
	if got := readFile(t, b, "f"); len(got) != 0 {
		t.Fatalf("N22: host b sees a's unflushed write %q; caches must be per host", got)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
