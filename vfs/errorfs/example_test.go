package errorfs_test

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/errorfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// Example fails the second Datasync with EIO, and counts the injected
// errors to check that the code under test reported each one.
func Example() {
	base, err := osfs.NewTemp("errorfs-example")
	if err != nil {
		panic(err)
	}
	defer base.Close()

	counter := &errorfs.Counter{Injector: errorfs.Inject(errorfs.Errno(syscall.EIO),
		errorfs.OnKind(errorfs.OpDatasync), errorfs.AtNth(2))}
	fsys := errorfs.Wrap(base, counter)

	f, err := fsys.OpenFile("log", vfs.WriteOnly|vfs.Create|vfs.Append, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	reported := 0
	for _, rec := range []string{"one;", "two;", "three;"} {
		if _, err := f.Write([]byte(rec)); err != nil {
			panic(err)
		}
		if err := f.Datasync(); err != nil {
			reported++
			fmt.Println(err)
			fmt.Println("injected:", errors.Is(err, errorfs.ErrInjected), "EIO:", errors.Is(err, syscall.EIO))
		}
	}
	fmt.Println("injected", counter.Count(), "reported", reported)
	// Output:
	// datasync log: errorfs: injected input/output error
	// injected: true EIO: true
	// injected 1 reported 1
}
