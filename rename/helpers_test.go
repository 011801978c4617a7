package rename

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

var ctx = context.Background()

const testStaleAge = 2 * time.Minute

// topts returns Options for host with a seeded generator.
func topts(host string, seed uint64) Options {
	return Options{Host: host, StaleAge: testStaleAge, Rand: rand.New(rand.NewPCG(seed, 7))}
}

// payload is the payload host writes for gen.
func payload(gen uint64, host string, size int) []byte {
	b := make([]byte, size)
	x := gen*0x9e3779b97f4a7c15 + uint64(len(host))
	for i := range host {
		x = x*31 + uint64(host[i])
	}
	for i := range b {
		x = x*6364136223846793005 + 1442695040888963407
		b[i] = byte(x >> 56)
	}
	return b
}

// replace installs payload(gen, host) at name through fsys.
func replace(t testing.TB, fsys vfs.FS, name string, gen uint64, host string, seed uint64) Info {
	t.Helper()
	info, err := tryReplace(fsys, name, gen, host, seed)
	if err != nil {
		t.Fatalf("replace %s generation %d on %s: %v", name, gen, host, err)
	}
	return info
}

func tryReplace(fsys vfs.FS, name string, gen uint64, host string, seed uint64) (Info, error) {
	c, err := Begin(ctx, fsys, name, gen, topts(host, seed))
	if err != nil {
		return Info{}, err
	}
	if _, err := c.Write(payload(gen, host, 5000)); err != nil {
		return Info{}, err
	}
	return c.Commit(ctx)
}

// mustLoad loads name and checks that it is whole payload(gen, host).
func mustLoad(t testing.TB, fsys vfs.FS, name string, gen uint64, host string) Info {
	t.Helper()
	info, data, err := Load(ctx, fsys, name, Options{})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if info.Generation != gen || info.Host != host {
		t.Fatalf("load %s: generation %d by %q, want %d by %q", name, info.Generation, info.Host, gen, host)
	}
	if !bytes.Equal(data, payload(gen, host, len(data))) || int64(len(data)) != info.Size {
		t.Fatalf("load %s: payload is not generation %d by %s", name, gen, host)
	}
	return info
}

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// newSim returns a simulation with default knobs changed by mutate.
func newSim(t testing.TB, mutate func(*nfssim.Config)) *nfssim.Sim {
	t.Helper()
	cfg := nfssim.DefaultConfig(1)
	if mutate != nil {
		mutate(&cfg)
	}
	s := nfssim.New(cfg)
	t.Cleanup(s.Close)
	return s
}

func addHost(t testing.TB, s *nfssim.Sim, name string, mutate func(*nfssim.Mount)) *nfssim.Host {
	t.Helper()
	m := nfssim.DefaultMount()
	m.FlushOnRename = false
	if mutate != nil {
		mutate(&m)
	}
	h, err := s.AddHost(name, m)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fsKinds are the file systems the unit tests run on: a local directory
// through osfs, and one host of nfssim.
func fsKinds(t *testing.T) map[string]func(t *testing.T) vfs.FS {
	return map[string]func(t *testing.T) vfs.FS{
		"osfs": func(t *testing.T) vfs.FS {
			fsys, err := osfs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fsys.Close() })
			return fsys
		},
		"nfssim": func(t *testing.T) vfs.FS {
			return addHost(t, newSim(t, nil), "h", nil).FS()
		},
	}
}

// listing returns a directory's names, revalidating it first.
func listing(t testing.TB, fsys vfs.FS, dir string) []string {
	t.Helper()
	revalidateDir(fsys, dir)
	names, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	return names
}

var _ = fmt.Sprint
