package osfs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// Example claims a name with an exclusive create, the namespace's
// test-and-set: the second claim fails with fs.ErrExist.
func Example() {
	dir, err := os.MkdirTemp("", "osfs-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	fsys, err := osfs.New(dir)
	if err != nil {
		panic(err)
	}
	defer fsys.Close()

	claim := func() error {
		f, err := fsys.OpenFile("index.lock", vfs.WriteOnly|vfs.Create|vfs.Excl, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt([]byte("mx1"), 0); err != nil {
			f.Close()
			return err
		}
		if err := f.Datasync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	fmt.Println("first claim:", claim())
	err = claim()
	fmt.Println("second claim:", err)
	fmt.Println("taken:", errors.Is(err, fs.ErrExist))

	_, err = fsys.Stat("../escape")
	fmt.Println(err, errors.Is(err, fs.ErrInvalid))
	// Output:
	// first claim: <nil>
	// second claim: open index.lock: file exists
	// taken: true
	// stat ../escape: invalid argument true
}
