package atomicrec_test

import (
	"context"
	"fmt"
	"os"

	"github.com/nfsindex/nfsindex/atomicrec"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// Example writes a page-aligned record twice, reads it back from a second
// handle (as another host would), and sets a set-once word.
func Example() {
	dir, err := os.MkdirTemp("", "atomicrec-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	fsys, err := osfs.New(dir)
	if err != nil {
		panic(err)
	}
	defer fsys.Close()
	ctx := context.Background()

	f, err := fsys.OpenFile("header", vfs.ReadWrite|vfs.Create, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	layout := atomicrec.PageAligned(0, 64, 0) // two copies, one page each
	w, err := atomicrec.New(f, layout, atomicrec.Options{})
	if err != nil {
		panic(err)
	}
	for _, p := range []string{"uidnext=10", "uidnext=11"} {
		if _, err := w.Update(ctx, []byte(p)); err != nil { // one WriteAt + one Datasync
			panic(err)
		}
	}

	g, err := fsys.OpenFile("header", vfs.ReadOnly, 0)
	if err != nil {
		panic(err)
	}
	defer g.Close()
	r, err := atomicrec.New(g, layout, atomicrec.Options{})
	if err != nil {
		panic(err)
	}
	v, err := r.Read(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("generation %d: %s (slot %d)\n", v.Gen, v.Payload, v.Slot)

	once := atomicrec.NewSetOnce(f, layout.End()) // 16 bytes after the record
	if err := once.Set(ctx, 42); err != nil {
		panic(err)
	}
	x, set, err := atomicrec.NewSetOnce(g, layout.End()).Get(ctx)
	fmt.Println("set-once:", x, set, err)
	// Output:
	// generation 2: uidnext=11 (slot 1)
	// set-once: 42 true <nil>
}
