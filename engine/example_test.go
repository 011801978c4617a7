package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
)

// Two mail servers share one mailbox on a simulated NFS export: mx1
// delivers, mx2 flags, and an IMAP session on mx1 syncs its view.
func Example() {
	ctx := context.Background()
	sim := nfssim.New(nfssim.DefaultConfig(1))
	open := func(host string) *engine.Mailbox {
		m, err := engine.Open(ctx, engine.Options{FS: sim.Host(host).FS(), Dir: "INBOX", Host: host,
			UIDValidity: 1700000000, Rand: rand.New(rand.NewPCG(1, uint64(len(host))))})
		if err != nil {
			panic(err)
		}
		return m
	}
	mx1, mx2 := open("mx1"), open("mx2")
	defer mx1.Close()
	defer mx2.Close()

	session := mx1.View() // an IMAP client SELECTs INBOX on mx1

	tx := mx1.Begin() // LMTP delivery on mx1
	tx.Append(engine.NewMessage{Fields: map[string][]byte{"file": []byte("1700000001.M1P1.mx1")}})
	tx.Append(engine.NewMessage{Keywords: []string{"$Forwarded"}})
	delivered, err := tx.Commit(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("delivered UIDs", delivered.UIDs)

	if err := mx2.Sync(ctx); err != nil { // another IMAP client on mx2
		panic(err)
	}
	store := mx2.Begin()
	store.SetFlags(1, engine.Seen|engine.Flagged, 0)
	flagged, err := store.Commit(ctx)
	if err != nil {
		panic(err)
	}

	changes, err := session.Sync(ctx) // NOOP on mx1
	if err != nil {
		panic(err)
	}
	fmt.Println("new", changes.Appended, "HIGHESTMODSEQ", changes.HighestModSeq, "=", flagged.Seq)
	msg, seq, _ := session.ByUID(1)
	fmt.Println("seq", seq, "UID", msg.UID, "seen+flagged", msg.Flags == engine.Seen|engine.Flagged, "MODSEQ", msg.ModSeq)
	ref, _ := msg.Field("file")
	file, _ := mx1.FieldValue(ctx, ref)
	fmt.Println("file", string(file), "UIDVALIDITY", session.Header().UIDValidity)
	// Output:
	// delivered UIDs [1 2]
	// new [1 2] HIGHESTMODSEQ 3 = 3
	// seq 1 UID 1 seen+flagged true MODSEQ 3
	// file 1700000001.M1P1.mx1 UIDVALIDITY 1700000000
}
