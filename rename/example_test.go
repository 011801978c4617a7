package rename_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/rename"
)

// Two mail servers share one NFS export (simulated). mx1 compacts the
// index; mx2, which wants to compact at the same time, is told at once
// that the claim is taken and goes on; any host then reads the new
// version. A compaction of an older generation is fenced. When mx1 stops
// in the middle of a compaction, mx2 takes the claim over once the
// server's clock says it is stale, and mx1's late commit installs nothing.
func Example() {
	ctx := context.Background()
	sim := nfssim.New(nfssim.DefaultConfig(1))
	defer sim.Close()
	mx1, _ := sim.AddHost("mx1", nfssim.DefaultMount())
	mx2, _ := sim.AddHost("mx2", nfssim.DefaultMount())
	opts := func(host string, seed uint64) rename.Options {
		return rename.Options{Host: host, Rand: rand.New(rand.NewPCG(seed, 1))}
	}

	// mx1 claims the index for a snapshot of sequence number 7.
	c, err := rename.Begin(ctx, mx1.FS(), "index", 7, opts("mx1", 1))
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Write([]byte("records up to sequence 7"))

	// mx2 does not wait for it.
	_, err = rename.Begin(ctx, mx2.FS(), "index", 8, opts("mx2", 2))
	fmt.Println("mx2 busy:", errors.Is(err, rename.ErrBusy))

	info, err := c.Commit(ctx)
	fmt.Println("mx1 installed generation", info.Generation, err)

	got, data, err := rename.Load(ctx, mx2.FS(), "index", opts("mx2", 3))
	fmt.Printf("mx2 reads generation %d by %s: %q %v\n", got.Generation, got.Host, data, err)

	// A compaction built from older state is fenced.
	old, _ := rename.Begin(ctx, mx2.FS(), "index", 6, opts("mx2", 4))
	_, err = old.Commit(ctx)
	fmt.Println("generation 6 fenced:", errors.Is(err, rename.ErrFenced))

	// mx1 claims again and stops; after StaleAge by the server's clock
	// mx2 takes over.
	stuck, _ := rename.Begin(ctx, mx1.FS(), "index", 9, opts("mx1", 5))
	stuck.Write([]byte("records up to sequence 9"))
	sim.Advance(rename.DefaultStaleAge + time.Second)
	c, err = rename.Begin(ctx, mx2.FS(), "index", 10, opts("mx2", 6))
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Write([]byte("records up to sequence 10"))
	info, err = c.Commit(ctx)
	fmt.Println("mx2 installed generation", info.Generation, err)
	_, err = stuck.Commit(ctx)
	fmt.Println("mx1's late commit lost:", errors.Is(err, rename.ErrLost))

	got, data, _ = rename.Load(ctx, mx1.FS(), "index", opts("mx1", 7))
	fmt.Printf("mx1 reads generation %d by %s: %q\n", got.Generation, got.Host, data)
	// Output:
	// mx2 busy: true
	// mx1 installed generation 7 <nil>
	// mx2 reads generation 7 by mx1: "records up to sequence 7" <nil>
	// generation 6 fenced: true
	// mx2 installed generation 10 <nil>
	// mx1's late commit lost: true
	// mx1 reads generation 10 by mx2: "records up to sequence 10"
}
