package proofs

import (
	"fmt"
	"testing"

	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/internal/explore"
	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
)

// TestAtomicrecLoadedCopySurvivesServerCrash pins a schedule of three
// faults (A10, N10): generation 2 is acknowledged; the writer dies after
// generation 3's WRITE reached the server but before its COMMIT, so the
// copy is whole there but unstable; the restarted writer's Record Loads
// it as the newest durable copy; the server crashes and loses it; the
// next Update goes to the other slot, the one holding the acknowledged
// generation 2, and the writer dies again after the first of its two
// page WRITEs. A reader must still find generation 2 (or newer). Found
// by the crash enumeration; fixed in 8791c80 (Load makes the copy it
// adopts durable before the next Write overwrites the other copy).
func TestAtomicrecLoadedCopySurvivesServerCrash(t *testing.T) {
	if err := loadedCopySurvivesServerCrash(); err != nil {
		t.Fatal(err)
	}
}

func loadedCopySurvivesServerCrash() error {
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
	l := atomicrec.PageAligned(0, 5000, 4096) // each copy is two pages: two WRITEs
	f, err := w.FS().OpenFile(arFile, vfs.ReadWrite|vfs.Create|vfs.Excl, 0o644)
	if err != nil {
		return err
	}
	rec, err := atomicrec.New(f, l, atomicrec.Options{Rand: newRand(1)})
	if err != nil {
		return err
	}
	if _, err := rec.Update(enumCtx, []byte("gen1")); err != nil {
		return err
	}
	acked, err := rec.Update(enumCtx, []byte("gen2: acknowledged"))
	if err != nil {
		return err
	}
	crashAtCommit = true
	if _, err := rec.Update(enumCtx, []byte("gen3: unstable when the writer died")); err == nil {
		return fmt.Errorf("gen3's Update returned nil although its host crashed before COMMIT")
	}
	w.Restart()
	if f, err = w.FS().OpenFile(arFile, vfs.ReadWrite, 0); err != nil {
		return err
	}
	if rec, err = atomicrec.New(f, l, atomicrec.Options{Rand: newRand(2)}); err != nil {
		return err
	}
	c, err := rec.Load(enumCtx, nil)
	if err != nil {
		return err
	}
	t3 := c.Value.Gen == 3 // Load adopted the dead writer's copy
	s.CrashServer(0)
	// The next Update, cut after its first page reached the server.
	if _, err := rec.Write(enumCtx, []byte("gen4")); err != nil {
		return err
	}
	w.Crash(nfssim.Fault{Keep: 0b1})
	v, err := arRead(s.Host("fresh").FS(), l)
	if err == nil && v.Gen < acked.Gen {
		err = fmt.Errorf("a reader finds generation %d %q: the acknowledged generation %d is lost", v.Gen, v.Payload, acked.Gen)
	}
	if err != nil {
		return fmt.Errorf("Load adopted generation 3: %v; %w", t3, err)
	}
	return nil
}
