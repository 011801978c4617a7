package rename

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
)

func TestReplaceAndLoad(t *testing.T) {
	for kind, mk := range fsKinds(t) {
		t.Run(kind, func(t *testing.T) {
			fsys := mk(t)
			_, err := OpenLatest(ctx, fsys, "index", Options{})
			wantErr(t, "open before any version", err, fs.ErrNotExist)
			for gen := uint64(1); gen <= 3; gen++ {
				info := replace(t, fsys, "index", gen, "mx1", gen)
				if info.Generation != gen || info.Size != 5000 || info.Host != "mx1" {
					t.Fatalf("commit returned %+v", info)
				}
				if got := mustLoad(t, fsys, "index", gen, "mx1"); got != info {
					t.Fatalf("loaded %+v, committed %+v", got, info)
				}
			}
			// The lock is free again and nothing else is left.
			if got := listing(t, fsys, "."); !slices.Equal(got, []string{"index", "index.lock"}) {
				t.Fatalf("directory holds %v", got)
			}
			if got := listing(t, fsys, "index.lock"); len(got) != 0 {
				t.Fatalf("lock holds %v after commit", got)
			}
		})
	}
}

func TestVersionReadAt(t *testing.T) {
	for kind, mk := range fsKinds(t) {
		t.Run(kind, func(t *testing.T) {
			fsys := mk(t)
			if err := fsys.Mkdir("d", 0o755); err != nil {
				t.Fatal(err)
			}
			replace(t, fsys, "d/index", 4, "mx1", 1)
			want := payload(4, "mx1", 5000)
			v, err := OpenLatest(ctx, fsys, "d/index", Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			p := make([]byte, 100)
			if n, err := v.ReadAt(p, 4950); n != 50 || err != io.EOF || !bytes.Equal(p[:50], want[4950:]) {
				t.Fatalf("ReadAt at the end: %d, %v", n, err)
			}
			if n, err := v.ReadAt(p, 5000); n != 0 || err != io.EOF {
				t.Fatalf("ReadAt past the end: %d, %v", n, err)
			}
			if n, err := v.ReadAt(p, 17); n != 100 || err != nil || !bytes.Equal(p, want[17:117]) {
				t.Fatalf("ReadAt: %d, %v", n, err)
			}
			if _, err := v.ReadAt(p, -1); err == nil {
				t.Fatal("ReadAt at -1 succeeded")
			}
		})
	}
}

func TestWriteInPiecesAndBuffering(t *testing.T) {
	fsys := addHost(t, newSim(t, nil), "h", nil).FS()
	o := topts("mx1", 1)
	o.BufferSize = 1000
	c, err := Begin(ctx, fsys, "index", 9, o)
	if err != nil {
		t.Fatal(err)
	}
	want := payload(9, "mx1", 12345)
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 777)
		if _, err := c.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_, data, err := Load(ctx, fsys, "index", Options{BufferSize: 4096})
	if err != nil || !bytes.Equal(data, want) {
		t.Fatalf("load: %v, equal %v", err, bytes.Equal(data, want))
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after commit: %v", err)
	}
	if _, err := c.Commit(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after commit: %v", err)
	}
	if err := c.Abort(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("abort after commit: %v", err)
	}
}

// TestBusyWhileClaimHeld: a fresh claim makes Begin return ErrBusy at
// once, naming the holder; the lock is free as soon as the holder commits
// or aborts.
func TestBusyWhileClaimHeld(t *testing.T) {
	for kind, mk := range fsKinds(t) {
		t.Run(kind, func(t *testing.T) {
			fsys := mk(t)
			a, err := Begin(ctx, fsys, "index", 1, topts("mx1", 1))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Begin(ctx, fsys, "index", 2, topts("mx2", 2))
			var be *BusyError
			if !errors.As(err, &be) || !errors.Is(err, ErrBusy) {
				t.Fatalf("second claim: %v, want ErrBusy", err)
			}
			if len(be.Holders) != 1 || !be.Holders[0].Known || be.Holders[0].ClaimID != a.Info().ClaimID ||
				be.Holders[0].Host != "mx1" || be.Holders[0].Generation != 1 || be.Holders[0].Stale {
				t.Fatalf("holders %+v, want mx1's fresh claim %016x", be.Holders, a.Info().ClaimID)
			}
			// The loser left nothing behind.
			if got := listing(t, fsys, "."); !slices.Equal(got, []string{"index.lock"}) {
				t.Fatalf("directory holds %v", got)
			}
			if err := a.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			replace(t, fsys, "index", 2, "mx2", 3)
			mustLoad(t, fsys, "index", 2, "mx2")
		})
	}
}

// TestFencedWhenNotNewer: a claim whose generation is not newer than the
// installed one installs nothing (R3, the fencing rule) and frees the lock.
func TestFencedWhenNotNewer(t *testing.T) {
	for kind, mk := range fsKinds(t) {
		t.Run(kind, func(t *testing.T) {
			fsys := mk(t)
			replace(t, fsys, "index", 5, "mx1", 1)
			for _, gen := range []uint64{5, 4, 1} {
				_, err := tryReplace(fsys, "index", gen, "mx2", 10+gen)
				var fe *FencedError
				if !errors.As(err, &fe) || fe.Installed.Generation != 5 || fe.Generation != gen {
					t.Fatalf("generation %d over 5: %v, want ErrFenced", gen, err)
				}
				mustLoad(t, fsys, "index", 5, "mx1")
			}
			replace(t, fsys, "index", 6, "mx2", 20)
			mustLoad(t, fsys, "index", 6, "mx2")
		})
	}
}

func TestCommitTo(t *testing.T) {
	for kind, mk := range fsKinds(t) {
		t.Run(kind, func(t *testing.T) {
			fsys := mk(t)
			if err := fsys.Mkdir("m", 0o755); err != nil {
				t.Fatal(err)
			}
			c, err := Begin(ctx, fsys, "m/index", 7, topts("mx1", 1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CommitTo(ctx, "other/index.7"); err == nil {
				t.Fatal("CommitTo another directory succeeded")
			}
			if _, err := c.Write(payload(7, "mx1", 5000)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CommitTo(ctx, "m/index.7"); err != nil {
				t.Fatal(err)
			}
			mustLoad(t, fsys, "m/index.7", 7, "mx1")
			if _, err := OpenLatest(ctx, fsys, "m/index", Options{}); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("m/index: %v, want ErrNotExist", err)
			}
			replace(t, fsys, "m/index", 8, "mx2", 2) // the lock is free
		})
	}
}

// TestStaleClaimantWakes is the hard case as a story: mx1 claims and is
// stopped; once the server's clock says its claim is stale, mx2 takes it
// over and installs; mx1 wakes and commits: ErrLost, and mx2's version
// stays (R4).
func TestStaleClaimantWakes(t *testing.T) {
	s := newSim(t, nil)
	a, b := addHost(t, s, "mx1", nil).FS(), addHost(t, s, "mx2", nil).FS()
	replace(t, a, "index", 1, "mx1", 1)
	ca, err := Begin(ctx, a, "index", 2, topts("mx1", 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Write(payload(2, "mx1", 5000)); err != nil {
		t.Fatal(err)
	}
	s.Advance(testStaleAge - time.Second)
	if _, err := tryReplace(b, "index", 3, "mx2", 3); !errors.Is(err, ErrBusy) {
		t.Fatalf("claim just short of StaleAge: %v, want ErrBusy", err)
	}
	s.Advance(2 * time.Second)
	replace(t, b, "index", 3, "mx2", 4)
	_, err = ca.Commit(ctx)
	wantErr(t, "the stale claimant's commit", err, ErrLost)
	mustLoad(t, a, "index", 3, "mx2")
	mustLoad(t, b, "index", 3, "mx2")
}

// TestHeartbeatKeepsClaimFresh: a claimant that heartbeats is never
// judged stale, however long it runs.
func TestHeartbeatKeepsClaimFresh(t *testing.T) {
	s := newSim(t, nil)
	a, b := addHost(t, s, "mx1", nil).FS(), addHost(t, s, "mx2", nil).FS()
	ca, err := Begin(ctx, a, "index", 1, topts("mx1", 1))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		s.Advance(testStaleAge - 10*time.Second)
		if _, err := ca.Write(payload(1, "mx1", 1000)); err != nil {
			t.Fatal(err)
		}
		if err := ca.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tryReplace(b, "index", 2, "mx2", uint64(10+i)); !errors.Is(err, ErrBusy) {
			t.Fatalf("round %d: %v, want ErrBusy", i, err)
		}
	}
	if _, err := ca.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestClaimTakeoverRace: two hosts find the same stale claim at once and
// both take it over; whatever the interleaving, exactly one of them holds
// the lock afterwards, and the other got ErrBusy.
func TestClaimTakeoverRace(t *testing.T) {
	outcomes := map[string]int{}
	for seed := uint64(1); seed <= 60; seed++ {
		s := newSim(t, func(c *nfssim.Config) { c.Seed = seed })
		dead := addHost(t, s, "dead", nil)
		if _, err := Begin(ctx, dead.FS(), "index", 1, topts("dead", seed)); err != nil {
			t.Fatal(err)
		}
		dead.Crash(nfssim.Fault{})
		s.Advance(testStaleAge + time.Second)
		var claims []*Claim
		var errs []error
		for i, name := range []string{"mx1", "mx2"} {
			h := addHost(t, s, name, nil)
			s.Go(h, name, func() {
				// Stagger by a seed-chosen amount so that every step of
				// one can fall between any two of the other.
				h.Sleep(time.Duration((seed>>(3*i))%8) * 70 * time.Microsecond)
				c, err := Begin(ctx, h.FS(), "index", uint64(2+i), topts(name, seed*10+uint64(i)))
				if err != nil {
					errs = append(errs, err)
					return
				}
				claims = append(claims, c)
			})
		}
		if err := s.Run(0); err != nil {
			t.Fatal(err)
		}
		for _, err := range errs {
			if !errors.Is(err, ErrBusy) {
				t.Fatalf("seed %d: a taker failed with %v, want ErrBusy", seed, err)
			}
		}
		if len(claims) != 1 {
			t.Fatalf("seed %d: %d takers hold the lock (errors %v), want exactly 1", seed, len(claims), errs)
		}
		outcomes[claims[0].opts.Host]++
		o := addHost(t, s, "o", nil).FS()
		if got := listing(t, o, "index.lock"); !slices.Equal(got, []string{entry(claims[0].id)}) {
			t.Fatalf("seed %d: lock holds %v, want only the winner's %s", seed, got, entry(claims[0].id))
		}
	}
	if len(outcomes) != 2 {
		t.Errorf("the same host won every race (%v): the interleavings did not vary", outcomes)
	}
	t.Logf("winners: %v", outcomes)
}

// TestSweepRemovesLitter: claims that never took the lock (their host
// crashed while preparing, or lost the race and crashed) are litter that
// Sweep removes once stale, and never before.
func TestSweepRemovesLitter(t *testing.T) {
	s := newSim(t, nil)
	a := addHost(t, s, "mx1", nil)
	b := addHost(t, s, "mx2", nil).FS()
	replace(t, b, "index", 1, "mx2", 1)
	holder, err := Begin(ctx, b, "index", 2, topts("mx2", 2))
	if err != nil {
		t.Fatal(err)
	}
	// mx1 prepares a claim and crashes before its claim rename.
	c := &Claim{fsys: a.FS(), n: holder.n, id: 0xabc, gen: 3, opts: topts("mx1", 3), hash: xxhash.New()}
	if err := c.prepare(ctx); err != nil {
		t.Fatal(err)
	}
	a.Crash(nfssim.Fault{})
	removed, err := Sweep(ctx, b, "index", topts("mx2", 4))
	if err != nil || len(removed) != 0 {
		t.Fatalf("sweep of fresh litter removed %v (%v)", removed, err)
	}
	s.Advance(testStaleAge + time.Second)
	removed, err = Sweep(ctx, b, "index", topts("mx2", 5))
	if err != nil || !slices.Equal(removed, []string{"index.claim.0000000000000abc"}) {
		t.Fatalf("sweep removed %v (%v)", removed, err)
	}
	if got := listing(t, b, "."); !slices.Equal(got, []string{"index", "index.lock"}) {
		t.Fatalf("directory holds %v", got)
	}
	// The claim that holds the lock is not litter: it is still there.
	if got := listing(t, b, "index.lock"); len(got) != 1 {
		t.Fatalf("lock holds %v", got)
	}
	if _, err := holder.Commit(ctx); err != nil {
		t.Fatalf("the holder, stale now but not taken over, commits: %v", err)
	}
}

// TestCorruptVersionFiles: whatever lies at the name that is not a whole
// version is ErrCorrupt, never data, and a compaction may replace it.
func TestCorruptVersionFiles(t *testing.T) {
	fsys := addHost(t, newSim(t, nil), "h", nil).FS()
	put := func(b []byte) {
		f, err := fsys.OpenFile("index", vfs.WriteOnly|vfs.Create|vfs.Truncate, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	replace(t, fsys, "index", 3, "mx1", 1)
	good := readAll(t, fsys, "index")
	cases := map[string][]byte{
		"foreign":         []byte("From: someone\r\n\r\nnot an index"),
		"empty":           {},
		"truncated":       good[:len(good)-1],
		"extended":        append(slices.Clone(good), 0),
		"payload flipped": flip(good, HeaderSize+17),
		"header flipped":  flip(good, offGeneration),
		"claimed header":  claimedHeader(t, good),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			put(b)
			_, _, err := Load(ctx, fsys, "index", Options{})
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("load: %v, want ErrCorrupt", err)
			}
			replace(t, fsys, "index", 4, "mx2", 2)
			mustLoad(t, fsys, "index", 4, "mx2")
		})
	}
}

func readAll(t *testing.T, fsys vfs.FS, name string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, 4096)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func flip(b []byte, i int) []byte {
	b = slices.Clone(b)
	b[i] ^= 0x10
	return b
}

func claimedHeader(t *testing.T, good []byte) []byte {
	h, err := decodeHeader(good)
	if err != nil {
		t.Fatal(err)
	}
	h.State = StateClaimed
	b := slices.Clone(good)
	encodeHeader(b[:HeaderSize], h)
	return b
}

func TestBadArguments(t *testing.T) {
	fsys := addHost(t, newSim(t, nil), "h", nil).FS()
	for _, name := range []string{"", "/index", "a/../index", "index/", "."} {
		if _, err := Begin(ctx, fsys, name, 1, Options{}); err == nil {
			t.Errorf("Begin(%q) succeeded", name)
		}
		if _, err := OpenLatest(ctx, fsys, name, Options{}); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenLatest(%q): %v", name, err)
		}
	}
	if _, err := Begin(ctx, fsys, "index", 0, Options{}); err == nil {
		t.Error("generation 0 accepted")
	}
	if _, err := Begin(ctx, fsys, "index", 1, Options{Host: strings.Repeat("h", MaxHostLen+1)}); err == nil {
		t.Error("a host name longer than MaxHostLen accepted")
	}
}

func TestContextCanceled(t *testing.T) {
	fsys := addHost(t, newSim(t, nil), "h", nil).FS()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Begin(cctx, fsys, "index", 1, topts("mx1", 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Begin with a canceled context: %v", err)
	}
	if got := listing(t, fsys, "."); len(got) != 0 {
		t.Fatalf("a canceled Begin left %v", got)
	}
	if _, err := OpenLatest(cctx, fsys, "index", Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenLatest with a canceled context: %v", err)
	}
}

// TestHeartbeatAfterTakeover: a claimant that was taken over learns it at
// its next Heartbeat, also on a server that keeps unlinked open files
// readable and writable (N15), where its writes still succeed.
func TestHeartbeatAfterTakeover(t *testing.T) {
	for _, preserve := range []bool{false, true} {
		s := newSim(t, func(c *nfssim.Config) {
			if preserve {
				c.Server.Unlinked = nfssim.UnlinkedPreserve
			}
		})
		v4 := func(m *nfssim.Mount) { m.Version = nfssim.V4 }
		a, b := addHost(t, s, "mx1", v4).FS(), addHost(t, s, "mx2", v4).FS()
		ca, err := Begin(ctx, a, "index", 1, topts("mx1", 1))
		if err != nil {
			t.Fatal(err)
		}
		s.Advance(testStaleAge + time.Second)
		replace(t, b, "index", 2, "mx2", 2)
		if _, err := ca.Write(payload(1, "mx1", 3000)); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "heartbeat after the takeover", ca.Heartbeat(ctx), ErrLost)
		if _, err := ca.Commit(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("preserve=%v: commit after the loss: %v", preserve, err)
		}
		mustLoad(t, a, "index", 2, "mx2")
	}
}

// TestSweptWhileClaimingIsLost: a claimant that pauses for StaleAge at any
// point of Begin before its claim rename (its private directory made, its
// file created, its header written or synced) is litter to Sweep, which
// removes its claim; when it wakes, Begin returns ErrLost, never another
// error and never a claim.
func TestSweptWhileClaimingIsLost(t *testing.T) {
	lost := 0
	for k := 0; ; k++ {
		idx, hit := 0, false
		s := newSim(t, func(c *nfssim.Config) {
			c.Fault = func(p nfssim.Point) nfssim.Fault {
				if p.Host != "mx1" || !strings.Contains(p.Path, ".claim.") {
					return nfssim.Fault{}
				}
				idx++
				if idx-1 == k {
					hit = true
					return nfssim.Fault{Kind: nfssim.PauseHost}
				}
				return nfssim.Fault{}
			}
		})
		a, b := addHost(t, s, "mx1", nil), addHost(t, s, "mx2", nil)
		var got error
		s.Go(a, "mx1", func() {
			c, err := Begin(ctx, a.FS(), "index", 2, topts("mx1", 1))
			if err == nil {
				_ = c.Abort(ctx)
			}
			got = err
		})
		var swept []string
		var sweepErr error
		s.Go(b, "mx2", func() {
			b.Sleep(time.Millisecond)
			b.Sleep(testStaleAge + time.Second)
			swept, sweepErr = Sweep(ctx, b.FS(), "index", topts("mx2", 2))
			a.Resume()
		})
		if err := s.Run(0); err != nil {
			t.Fatal(err)
		}
		if !hit {
			if k == 0 {
				t.Fatal("no fault point in the claim's preparation")
			}
			if lost == 0 {
				t.Fatal("no pause point left a claim to sweep")
			}
			t.Logf("%d pause points, %d with the claim swept", k, lost)
			return
		}
		if sweepErr != nil || len(swept) > 1 {
			t.Fatalf("point %d: Sweep removed %v (%v)", k, swept, sweepErr)
		}
		if len(swept) == 0 {
			// Paused before its directory existed: nothing was swept, and
			// the claim is made as usual.
			if got != nil {
				t.Fatalf("point %d: Begin with nothing swept returned %v", k, got)
			}
			continue
		}
		lost++
		if !errors.Is(got, ErrLost) {
			t.Fatalf("point %d: Begin after its claim was swept returned %v, want ErrLost", k, got)
		}
		if names := listing(t, b.FS(), "."); slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "index.claim.") }) {
			t.Fatalf("point %d: litter left: %v", k, names)
		}
	}
}
