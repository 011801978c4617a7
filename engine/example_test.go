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

// A host reclaims the space of its expunged messages' cached fields: the
// values still referenced move to a new log, and a session that synced
// reads them there. A reference from before the move gives ErrFieldMoved
// once the old log is gone; Sync and read the message's reference again.
func ExampleMailbox_CompactFields() {
	ctx := context.Background()
	sim := nfssim.New(nfssim.DefaultConfig(1))
	mx1, err := engine.Open(ctx, engine.Options{FS: sim.Host("mx1").FS(), Dir: "INBOX", Host: "mx1",
		Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		panic(err)
	}
	defer mx1.Close()
	for i := range 10 {
		tx := mx1.Begin()
		tx.Append(engine.NewMessage{Fields: map[string][]byte{"file": fmt.Appendf(nil, "1700000%03d.M%dP1.mx1", i, i)}})
		if _, err := tx.Commit(ctx); err != nil {
			panic(err)
		}
	}
	tx := mx1.Begin()
	for uid := uint32(1); uid <= 8; uid++ {
		tx.Expunge(uid)
	}
	if _, err := tx.Commit(ctx); err != nil {
		panic(err)
	}
	rewrote, err := mx1.CompactFields(ctx)
	if err != nil {
		panic(err)
	}
	session := mx1.View()
	msg, _, _ := session.ByUID(10)
	ref, _ := msg.Field("file")
	file, err := mx1.FieldValue(ctx, ref)
	fmt.Println("rewrote", rewrote, "moved", ref.Host != "mx1", "file", string(file), err)
	// Output:
	// rewrote true moved true file 1700000009.M9P1.mx1 <nil>
}
