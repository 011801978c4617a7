package nfssim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// runWorkload runs a random multi-host workload under the scheduler, with
// background write-back, lost replies, a host crash and a server crash,
// all chosen from seed, and returns a transcript: every result every task
// observed, the RPC counts of every host and the final server contents.
func runWorkload(seed uint64) string {
	cfg := DefaultConfig(seed)
	cfg.WritebackProb = 0.2
	cfg.Latency.Jitter = 150 * time.Microsecond
	prng := rand.New(rand.NewPCG(seed, 99))
	crashAt := 20 + prng.IntN(200)
	cfg.Fault = func(p Point) Fault {
		switch {
		case p.Seq == crashAt:
			return Fault{Kind: CrashHost, RandomKeep: true}
		case p.Kind == PointRPC && p.Seq%37 == 5:
			return Fault{Kind: DropReply}
		case p.Seq == crashAt+50:
			return Fault{Kind: CrashServer}
		}
		return Fault{}
	}
	s := New(cfg)
	defer s.Close()
	var log bytes.Buffer
	names := []string{"a", "b", "c", "d/x", "d/y"}
	hosts := []*Host{s.Host("mx1"), s.Host("mx2"), s.Host("mx3")}
	if err := hosts[0].FS().Mkdir("d", 0o755); err != nil {
		return err.Error()
	}
	for i, h := range hosts {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		fsys, name := h.FS(), h.Name()
		s.Go(h, name, func() {
			for step := range 30 {
				n := names[r.IntN(len(names))]
				var res string
				switch r.IntN(6) {
				case 0, 1:
					fd, err := fsys.OpenFile(n, vfs.ReadWrite|vfs.Create, 0o644)
					if err == nil {
						_, err = fd.WriteAt([]byte(fmt.Sprintf("%s-%d", name, step)), int64(r.IntN(6000)))
						if r.IntN(2) == 0 {
							err = fd.Sync()
						}
						err = fd.Close()
					}
					res = fmt.Sprint(err)
				case 2:
					fd, err := fsys.OpenFile(n, vfs.ReadOnly, 0)
					if err == nil {
						b := make([]byte, 64)
						k, _ := fd.ReadAt(b, 0)
						res = fmt.Sprintf("%q", b[:k])
						fd.Close()
					} else {
						res = err.Error()
					}
				case 3:
					res = fmt.Sprint(fsys.Rename(n, names[r.IntN(len(names))]))
				case 4:
					res = fmt.Sprint(fsys.Link(n, names[r.IntN(len(names))]))
				case 5:
					l, err := fsys.ReadDir("d")
					res = fmt.Sprint(l, err)
				}
				fmt.Fprintf(&log, "%v %s %d %s\n", s.Now(), name, step, res)
			}
		})
	}
	if err := s.Run(0); err != nil {
		fmt.Fprintf(&log, "run: %v\n", err)
	}
	for _, h := range hosts {
		fmt.Fprintf(&log, "%s %v retrans=%d down=%v\n", h.Name(), h.RPCs(), h.Retransmissions(), h.Down())
	}
	judge := s.Host("judge").FS()
	for _, n := range names {
		b, err := readAll(judge, n)
		fmt.Fprintf(&log, "%s %q %v\n", n, b, err)
	}
	return log.String()
}

func readAll(f vfs.FS, name string) ([]byte, error) {
	fd, err := f.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	b := make([]byte, 1<<16)
	n, _ := fd.ReadAt(b, 0)
	return b[:n], nil
}

// TestDeterministicReplay: a run is a function of its seed. The same seed
// gives the same transcript (results, RPC counts per host and type, final
// contents), and different seeds give different runs.
func TestDeterministicReplay(t *testing.T) {
	seeds := []uint64{1, 2, 3, 42, 1234567}
	if *seedFlag != 0 {
		seeds = []uint64{*seedFlag}
	}
	distinct := map[string]bool{}
	for _, seed := range seeds {
		a, b := runWorkload(seed), runWorkload(seed)
		if a != b {
			t.Fatalf("seed %d: two runs differ (replay: go test ./nfssim -run TestDeterministicReplay -seed=%d)\nfirst:\n%s\nsecond:\n%s", seed, seed, a, b)
		}
		distinct[a] = true
	}
	if len(seeds) > 1 && len(distinct) < 2 {
		t.Fatalf("every seed gave the same run: the seed does not drive the simulation")
	}
}
