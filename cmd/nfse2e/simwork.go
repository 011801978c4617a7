package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
)

// cmdSimWork runs the engine workload of "nfse2e work" (appends, flag
// changes, syncs, a Compact every few operations) from 3 hosts on nfssim,
// one seed after another, and checks the same things verify checks on the
// real run: every acknowledged commit in the final state exactly once,
// and one digest per seq. It answers whether nfssim reproduces what the
// real client showed.
func cmdSimWork(args []string) error {
	fl := flag.NewFlagSet("sim-work", flag.ExitOnError)
	seeds := fl.Int("seeds", 50, "seeds to run")
	ops := fl.Int("ops", 60, "operations per host")
	every := fl.Int("compact-every", 5, "Compact every N operations")
	opts := fl.String("opts", "vers=4.2", "mount options")
	fl.Parse(args)
	mnt, err := optsToMount(*opts)
	if err != nil {
		return err
	}
	bad := 0
	for seed := uint64(1); seed <= uint64(*seeds); seed++ {
		if msg := simWorkOnce(seed, mnt, *ops, *every); msg != "" {
			bad++
			fmt.Printf("seed %d: %s\n", seed, msg)
		}
	}
	fmt.Printf("sim-work %s: %d of %d seeds failed\n", *opts, bad, *seeds)
	if bad > 0 {
		return fmt.Errorf("%d seeds failed", bad)
	}
	return nil
}

func simWorkOnce(seed uint64, mnt nfssim.Mount, ops, every int) string {
	s := nfssim.New(nfssim.DefaultConfig(seed))
	defer s.Close()
	ctx := context.Background()
	type ack struct {
		key    engine.Key
		seq    uint64
		digest uint64
	}
	var acks []ack
	var errs []string
	for i := 1; i <= 3; i++ {
		h, err := s.AddHost(fmt.Sprintf("host%d", i), mnt)
		if err != nil {
			return err.Error()
		}
		i := i
		s.Go(h, "work", func() {
			m, err := engine.Open(ctx, engine.Options{FS: h.FS(), Dir: "mbox", Host: h.Name(), NamespaceDurable: true,
				Rand: rand.New(rand.NewPCG(seed, uint64(i)))})
			if err != nil {
				errs = append(errs, "open: "+err.Error())
				return
			}
			defer m.Close()
			rng := rand.New(rand.NewPCG(seed, uint64(100+i)))
			for n := 1; n <= ops; n++ {
				if n%every == every/2 {
					if _, err := m.Compact(ctx); err != nil {
						errs = append(errs, "compact: "+err.Error())
					}
					continue
				}
				tx := m.Begin()
				v := m.View()
				if v.Len() == 0 || rng.IntN(2) == 0 {
					tx.Append(engine.NewMessage{Fields: map[string][]byte{"file": []byte(fmt.Sprintf("h%d.%d", i, n))}})
				} else {
					msg, _ := v.BySeq(1 + rng.IntN(v.Len()))
					tx.SetFlags(msg.UID, engine.Seen, 0)
				}
				res, err := tx.Commit(ctx)
				if err != nil {
					errs = append(errs, "commit: "+err.Error())
					continue
				}
				dseq, dig := m.Digest()
				if dseq == res.Seq {
					acks = append(acks, ack{tx.Key(), res.Seq, dig})
				}
			}
		})
	}
	if err := s.Run(0); err != nil {
		return "run: " + err.Error()
	}
	insp, err := engine.Inspect(ctx, s.Host("judge").FS(), "mbox")
	if err != nil {
		return "inspect: " + err.Error()
	}
	count := map[engine.Key]int{}
	for o, ns := range insp.Keys {
		for _, n := range ns {
			count[engine.Key{Owner: o, N: n}]++
		}
	}
	digest := map[uint64]uint64{}
	for _, e := range insp.Entries {
		digest[e.Seq] = e.Digest
	}
	lost, fork := 0, 0
	seqs := map[uint64]int{}
	for _, a := range acks {
		if count[a.key] != 1 {
			lost++
		}
		if d, ok := digest[a.seq]; ok && d != a.digest {
			fork++
		}
		seqs[a.seq]++
	}
	dup := 0
	for _, c := range seqs {
		if c > 1 {
			dup++
		}
	}
	if lost+fork+dup > 0 || len(errs) > 0 {
		return fmt.Sprintf("%d acks: %d not exactly once, %d digests differ, %d seqs acknowledged twice; errors %v", len(acks), lost, fork, dup, errs)
	}
	return ""
}
