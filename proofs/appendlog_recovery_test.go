package proofs

import (
	"errors"
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
// then be readable by another host, and the log must check.
func TestAppendlogRecoveredStateSurvivesServerCrash(t *testing.T) {
	if err := recoveredStateSurvivesServerCrash(); err != nil {
		if errors.Is(err, errKnownBug) {
			knownBug(t, err)
		}
		t.Fatal(err)
	}
}

func recoveredStateSurvivesServerCrash() error {
	p := explore.NFS()
	cfg := p.Config(1)
	crashAtCommit := false
	cfg.Fault = func(pt nfssim.Point) nfssim.Fault {
		if crashAtCommit && pt.Host == "w" && pt.Kind == nfssim.PointRPC && pt.RPC == nfssim.COMMIT {
			crashAtCommit = false
			return nfssim.Fault{Kind: nfssim.CrashHost}
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
	lw.Append(1, []byte(acked[0]))
	if err := lw.Commit(enumCtx); err != nil {
		return err
	}
	// 6000 bytes: the lost commit spans pages the next commit does not
	// rewrite (a smaller one would come back with the next commit's
	// page-extended WRITE, N9, and hide the hole).
	lw.Append(1, []byte("op2: unstable when the writer died"+strings.Repeat(".", 6000)))
	crashAtCommit = true
	if err := lw.Commit(enumCtx); err == nil {
		return fmt.Errorf("op2's commit returned nil although its host crashed before COMMIT")
	}
	w.Restart()
	lw, err = appendlog.Open(enumCtx, w.FS(), alDir, "w", appendlog.Options{Rand: newRand(2)})
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	adopted := lw.Info().Records == 2 // op1 and the dead writer's op2
	s.CrashServer(0)
	acked = append(acked, "op3: acknowledged")
	lw.Append(1, []byte(acked[1]))
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
	if err != nil && adopted {
		// Open had adopted the unstable op2: the bug's signature.
		return fmt.Errorf("%w (%s): %w", errKnownBug, bugRecoveryTrustsUnstable, err)
	}
	return err
}
