package nfssim

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// TestSeamRPCCosts measures what each call of the seam costs in RPCs on
// a default mount (v3 and v4.2), from a warm state where the names are
// cached, and pins the figures docs/design.md quotes. Print the table
// with: go test ./nfssim -run TestSeamRPCCosts -v
func TestSeamRPCCosts(t *testing.T) {
	// v4's CLOSE is sent by Close, which is not part of the measured call.
	want := map[Version]map[string]string{
		V3: {
			"open (cached name)":                       "GETATTR=1",
			"exclusive create":                         "CREATE=1 SETATTR=1",
			"readdir":                                  "GETATTR=1 READDIRPLUS=1",
			"read 1 MiB (cold)":                        "READ=1",
			"write 4 KiB + fsync":                      "WRITE=1",
			"write 64 KiB + fsync (4 KiB wsize)":       "COMMIT=1 WRITE=16",
			"link":                                     "LINK=1",
			"rename (target name cached)":              "RENAME=1",
			"rename (target name not cached)":          "RENAME=1",
			"stat (attributes fresh)":                  "none",
			"stat (file attributes expired)":           "GETATTR=1",
			"stat (directory attributes expired too)":  "LOOKUP=1",
			"syncdir":                                  "GETATTR=1",
			"statfresh (attributes fresh)":             "GETATTR=1",
			"statfresh (directory attributes expired)": "GETATTR=1 LOOKUP=1",
			"statfresh (negative entry cached)":        "none",
		},
		V4: {
			"open (cached name)":                       "OPEN_NOATTR=1",
			"exclusive create":                         "OPEN=1 SETATTR=1",
			"readdir":                                  "GETATTR=1 READDIR=1",
			"read 1 MiB (cold)":                        "READ=1",
			"write 4 KiB + fsync":                      "WRITE=1",
			"write 64 KiB + fsync (4 KiB wsize)":       "COMMIT=1 WRITE=16",
			"link":                                     "LINK=1",
			"rename (target name cached)":              "RENAME=1",
			"rename (target name not cached)":          "RENAME=1",
			"stat (attributes fresh)":                  "none",
			"stat (file attributes expired)":           "GETATTR=1",
			"stat (directory attributes expired too)":  "LOOKUP=1",
			"syncdir":                                  "GETATTR=1",
			"statfresh (attributes fresh)":             "GETATTR=1",
			"statfresh (directory attributes expired)": "GETATTR=1 LOOKUP=1",
			"statfresh (negative entry cached)":        "none",
		},
	}
	for _, v := range []Version{V3, V4} {
		s := New(DefaultConfig(1))
		h := addHost(t, s, "h", func(m *Mount) { m.Version = v })
		small := addHost(t, s, "small", func(m *Mount) { m.Version = v; m.WSize = 4096 })
		fsys := h.FS()
		mib := make([]byte, 1<<20)
		writeFile(t, addHost(t, s, "other", nil).FS(), "big", mib)
		writeFile(t, fsys, "f", []byte("x"))
		readFile(t, fsys, "f")
		_, err := fsys.Stat("big") // names cached
		must(t, "stat", err)
		var rows []string
		// measure counts the RPCs of do alone; setup and teardown are not
		// counted.
		measure := func(host *Host, name string, setup, do, teardown func()) {
			if setup != nil {
				setup()
			}
			before := host.RPCs()
			do()
			got := host.RPCs().Sub(before).String()
			if teardown != nil {
				teardown()
			}
			rows = append(rows, fmt.Sprintf("  %-40s %s", name, got))
			if got != want[v][name] {
				t.Errorf("vers=%v %s: %s, want %s", v, name, got, want[v][name])
			}
		}
		var fd vfs.File
		closeFD := func() { must(t, "close", fd.Close()) }
		measure(h, "open (cached name)", nil, func() { fd = openFile(t, fsys, "f", vfs.ReadOnly) }, closeFD)
		measure(h, "read 1 MiB (cold)", func() { fd = openFile(t, fsys, "big", vfs.ReadOnly) }, func() {
			_, err := fd.ReadAt(make([]byte, 1<<20), 0)
			must(t, "read", err)
		}, closeFD)
		writeFsync := func(host *Host, n int) (func(), func()) {
			return func() { fd = openFile(t, host.FS(), "w", vfs.ReadWrite|vfs.Create) }, func() {
				_, err := fd.WriteAt(make([]byte, n), 0)
				must(t, "write", err)
				must(t, "fsync", fd.Sync())
			}
		}
		setup, do := writeFsync(h, 4096)
		measure(h, "write 4 KiB + fsync", setup, do, closeFD)
		setup, do = writeFsync(small, 64<<10)
		measure(small, "write 64 KiB + fsync (4 KiB wsize)", setup, do, closeFD)
		measure(h, "link", nil, func() { must(t, "link", fsys.Link("f", "g")) }, nil)
		measure(h, "rename (target name cached)", func() { writeFile(t, fsys, "f2", nil) },
			func() { must(t, "rename", fsys.Rename("f2", "g")) }, nil)
		measure(h, "rename (target name not cached)", nil, func() { must(t, "rename", fsys.Rename("g", "h2")) }, nil)
		measure(h, "stat (attributes fresh)", nil, func() { _, err := fsys.Stat("f"); must(t, "stat", err) }, nil)
		measure(h, "stat (file attributes expired)", func() { s.Advance(4 * time.Second) },
			func() { _, err := fsys.Stat("f"); must(t, "stat", err) }, nil)
		measure(h, "stat (directory attributes expired too)", func() { s.Advance(time.Minute) },
			func() { _, err := fsys.Stat("f"); must(t, "stat", err) }, nil)
		measure(h, "statfresh (attributes fresh)", nil, func() { _, err := fsys.StatFresh("f"); must(t, "statfresh", err) }, nil)
		measure(h, "statfresh (directory attributes expired)", func() { s.Advance(time.Minute) },
			func() { _, err := fsys.StatFresh("f"); must(t, "statfresh", err) }, nil)
		measure(h, "statfresh (negative entry cached)", func() { _, _ = fsys.Stat("nope") },
			func() { _, err := fsys.StatFresh("nope"); wantErr(t, "statfresh", err, fs.ErrNotExist) }, nil)
		measure(h, "exclusive create", nil, func() { fd = openFile(t, fsys, "lock", vfs.WriteOnly|vfs.Create|vfs.Excl) }, closeFD)
		measure(h, "readdir", nil, func() { _, err := fsys.ReadDir("."); must(t, "readdir", err) }, nil)
		measure(h, "syncdir", nil, func() { must(t, "syncdir", fsys.SyncDir(".")) }, nil)
		t.Logf("RPCs per call, vers=%v, default mount:\n%s", v, strings.Join(rows, "\n"))
	}
}
