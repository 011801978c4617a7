package appendlog_test

import (
	"context"
	"fmt"

	"github.com/nfsindex/nfsindex/appendlog"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// Example creates host mx1's log, commits two records and a continuation,
// and reads them back the way another host would: with a Reader, which
// never writes the file.
func Example() {
	fsys, err := osfs.NewTemp("appendlog-example") // removed by Close
	if err != nil {
		panic(err)
	}
	defer fsys.Close()
	ctx := context.Background()
	if err := fsys.Mkdir("cache", 0o755); err != nil {
		panic(err)
	}

	w, err := appendlog.Create(ctx, fsys, "cache", "mx1", appendlog.Options{})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	envelope, _ := w.Append(1, []byte("envelope of uid 7"))
	if _, err := w.Append(1, []byte("envelope of uid 8")); err != nil {
		panic(err)
	}
	if err := w.Commit(ctx); err != nil { // one Datasync for both records
		panic(err)
	}
	// Later: more cached data for uid 7, chained to its first record.
	if _, err := w.AppendAfter(ctx, envelope, 2, []byte("bodystructure of uid 7")); err != nil {
		panic(err)
	}
	if err := w.Commit(ctx); err != nil {
		panic(err)
	}

	r, err := appendlog.OpenReader(ctx, fsys, "cache", "mx1", appendlog.Options{})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	chain, err := r.Chain(ctx, envelope)
	if err != nil {
		panic(err)
	}
	for _, rec := range chain {
		fmt.Printf("type %d: %s\n", rec.Type, rec.Payload)
	}
	info := r.Info()
	fmt.Println("records:", info.Records, "host:", info.Host, "check:", r.Check(ctx))
	names, _ := fsys.ReadDir("cache")
	fmt.Println(names)
	// Output:
	// type 1: envelope of uid 7
	// type 2: bodystructure of uid 7
	// records: 3 host: mx1 check: <nil>
	// [log.mx1]
}
