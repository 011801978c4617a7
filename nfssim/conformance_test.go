package nfssim

import (
	"testing"

	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
	"github.com/nfsindex/nfsindex/vfs/vfstest"
)

// TestConformance runs the seam's conformance suite on one simulated host
// with default caches: a single host sees its own changes, so everything a
// local POSIX file system guarantees must hold.
func TestConformance(t *testing.T) {
	vfstest.TestFS(t, func(t *testing.T) vfs.FS {
		return New(DefaultConfig(1)).Host("h").FS()
	})
}

// TestDifferentialAgainstOS: with no faults, random operation sequences
// give the same results and errors on nfssim and on the OS layer over a
// temporary directory, and leave the same trees.
func TestDifferentialAgainstOS(t *testing.T) {
	seed := uint64(0)
	vfstest.Differential(t,
		func(t *testing.T) vfs.FS {
			seed++
			return New(DefaultConfig(seed)).Host("h").FS()
		},
		func(t *testing.T) vfs.FS {
			f, err := osfs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return f
		})
}
