package proofs

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/appendlog"
	"github.com/nfsindex/nfsindex/internal/explore"
	"github.com/nfsindex/nfsindex/nfssim"
)

// TestAppendlogRecoveredStateSurvivesServerCrash pins the schedule that
// TestRapidAppendlog found (L8, N10): the writer dies after the WRITEs
// of a commit reached the server but before their COMMIT, so the commit is
// complete there but unstable; on restart Open finds it valid and
// continues after it; the server crashes and loses it; the recovered
// writer commits again and is acknowledged. Every acknowledged record must
// then be readable by another host, and the log must check. (Open used to
// adopt the commit without making it stable: the fresh reader found a
// hole, bad magic at the lost frame.)
func TestAppendlogRecoveredStateSurvivesServerCrash(t *testing.T) {
	err := recoveredStateSurvivesServerCrash(1, false, func(lw *appendlog.Writer, _ [2]appendlog.Ref) error {
		// 6000 bytes: the lost commit spans pages the next commit does
		// not rewrite (a smaller one would come back with the next
		// commit's page-extended WRITE, N9, and hide the hole).
		_, err := lw.Append(1, []byte("op2: unstable when the writer died"+strings.Repeat(".", 6000)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAppendlogRecoveredLinkSurvivesServerCrash is the same for a next
// pointer (L7, L8): the writer dies after its commit of a continuation was
// durable and the link word in the older record was written, but before
// the link's COMMIT. Open finds the word set; unless it writes it again
// and syncs, the server's crash loses it, and once the next commit makes
// the continuation's group no longer the last, nothing repairs it: the
// acknowledged continuation is cut off its chain.
func TestAppendlogRecoveredLinkSurvivesServerCrash(t *testing.T) {
	for _, duringRecovery := range []bool{false, true} {
		if err := recoveredLinkSurvivesServerCrash(duringRecovery); err != nil {
			t.Fatalf("server crash during recovery %v: %v", duringRecovery, err)
		}
	}
}

// recoveredLinkSurvivesServerCrash: with duringRecovery, the server
// crashes at recovery's first COMMIT, after recovery read the link words
// (cached on its host) and before anything made them stable: recovery
// must write again even the words it found set.
func recoveredLinkSurvivesServerCrash(duringRecovery bool) error {
	return recoveredStateSurvivesServerCrash(2, duringRecovery, func(lw *appendlog.Writer, first [2]appendlog.Ref) error {
		// Two links on two pages: their write-back is unstable WRITEs and
		// a COMMIT (one dirty page would go as one FILE_SYNC WRITE).
		for _, ref := range first {
			if _, err := lw.AppendAfter(enumCtx, ref, 1, []byte("op2: continues op1")); err != nil {
				return err
			}
		}
		return nil
	})
}

// recoveredStateSurvivesServerCrash commits op1 (two records, a page
// apart), then appends op2 with second and crashes the writer's host at the crashAt-th COMMIT of op2's
// commit (1: the group's, 2: the links'); recovers the writer, crashes the
// server, commits op3; then a fresh reader on another host must find op1,
// op3 and, if the recovered writer adopted it, op2, with every chain
// linked (Check).
func recoveredStateSurvivesServerCrash(crashAt int, srvCrashInRecovery bool, second func(lw *appendlog.Writer, first [2]appendlog.Ref) error) error {
	p := explore.NFS()
	cfg := p.Config(1)
	if srvCrashInRecovery {
		// Linux's default rsize caches the whole small file at
		// recovery's first read, link words included, and no page
		// extension (N9) re-sends them by chance.
		p.Mount = nfssim.DefaultMount()
		p.Mount.NoAlignWrite = true
	}
	commits := -1 // not armed
	recovering := false
	cfg.Fault = func(pt nfssim.Point) nfssim.Fault {
		if recovering && pt.Host == "w" && pt.Kind == nfssim.PointRPC && pt.RPC == nfssim.COMMIT {
			recovering = false
			return nfssim.Fault{Kind: nfssim.CrashServer}
		}
		if commits >= 0 && pt.Host == "w" && pt.Kind == nfssim.PointRPC && pt.RPC == nfssim.COMMIT {
			if commits++; commits == crashAt {
				commits = -1
				return nfssim.Fault{Kind: nfssim.CrashHost}
			}
		}
		return nfssim.Fault{}
	}
	s := nfssim.New(cfg)
	defer s.Close()
	w, err := s.AddHost("w", p.Mount)
	if err != nil {
		return err
	}
	if err := w.FS().Mkdir(alDir, 0o755); err != nil {
		return err
	}
	lw, err := appendlog.Create(enumCtx, w.FS(), alDir, "w", appendlog.Options{Rand: newRand(1)})
	if err != nil {
		return err
	}
	acked := []string{"op1: acknowledged"}
	var first [2]appendlog.Ref
	for i, p := range []string{acked[0], strings.Repeat("-", 5000), acked[0] + " too"} {
		ref, err := lw.Append(1, []byte(p))
		if err != nil {
			return err
		}
		if i != 1 {
			first[i/2] = ref
		}
	}
	if err := lw.Commit(enumCtx); err != nil {
		return err
	}
	if err := second(lw, first); err != nil {
		return err
	}
	commits = 0
	if err := lw.Commit(enumCtx); err == nil {
		return fmt.Errorf("op2's commit returned nil although its host crashed before COMMIT %d", crashAt)
	}
	if commits != -1 {
		return fmt.Errorf("op2's commit made %d COMMITs, the crash at the %d-th never happened", commits, crashAt)
	}
	w.Restart()
	recovering = srvCrashInRecovery
	lw, err = appendlog.Open(enumCtx, w.FS(), alDir, "w", appendlog.Options{Rand: newRand(2)})
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	if recovering {
		return fmt.Errorf("recovery made no COMMIT: the schedule no longer crashes the server during it")
	}
	if lw.Info().Records < 4 {
		return fmt.Errorf("recovery found %+v: the schedule no longer makes it adopt op2", lw.Info())
	}
	s.CrashServer(0)
	acked = append(acked, "op3: acknowledged")
	if _, err := lw.Append(1, []byte(acked[1])); err != nil {
		return err
	}
	if err := lw.Commit(enumCtx); err != nil {
		return fmt.Errorf("op3: %w", err)
	}
	rd, err := appendlog.OpenReader(enumCtx, s.Host("fresh").FS(), alDir, "w", appendlog.Options{Rand: newRand(3)})
	if err != nil {
		return fmt.Errorf("fresh reader: %w", err)
	}
	defer rd.Close()
	var got []string
	err = rd.Scan(enumCtx, func(r appendlog.Record) error {
		got = append(got, string(r.Payload))
		return nil
	})
	if err == nil {
		err = rd.Check(enumCtx)
	}
	for _, a := range acked {
		if err == nil && !slices.Contains(got, a) {
			err = fmt.Errorf("acknowledged record %q is missing from %q", a, got)
		}
	}
	for _, ref := range first {
		if err != nil {
			break
		}
		if ch, cerr := rd.Chain(enumCtx, ref); cerr != nil {
			err = cerr
		} else if len(ch) != crashAt { // op2 continues op1 in the crashAt = 2 schedule
			err = fmt.Errorf("op1's chain at %d has %d records, want %d", ref, len(ch), crashAt)
		}
	}
	return err
}
