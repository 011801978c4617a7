// Package lint holds tests that keep the module's code on its rules, in
// the style of pebble's internal/lint: they parse every .go file of the
// module with go/parser and fail on a forbidden import or call.
//
// The rules, and why:
//
//   - seam: engine code does all its I/O through vfs.FS (docs/design.md,
//     "The seam"), so that the same code runs on osfs and in nfssim. Only
//     vfs/osfs, cmd/... and this package may import os, os/..., io/ioutil,
//     syscall or golang.org/x/sys/.... Every package may import syscall
//     for the errno values of the seam's error contract (syscall.Errno and
//     syscall.E...: nfssim returns them, vfstest and errorfs check and make
//     them), and package vfs also for the open flags (syscall.O_...).
//   - rand: all randomness comes from a seeded *rand.Rand that is passed
//     in, so that a run replays from its seed. Non-test files may not
//     import math/rand (v1). No file, test files included (a failure must
//     replay from the seed it prints), may use the global functions of
//     math/rand/v2 or math/rand: only their constructors and types
//     (rand.New, rand.NewPCG, *rand.Rand, ...).
//   - clock: nothing reads the wall clock or sleeps (nfssim runs on
//     simulated time; tests must not time anything): time.Now, time.Since,
//     time.Until, time.Sleep, time.After, time.AfterFunc, time.Tick,
//     time.NewTimer and time.NewTicker are for vfs/osfs and cmd/... only.
//     Test files are held to this rule too.
//
// allowlist lists the exceptions, each with its reason; an entry that no
// longer matches anything fails the test, so the list stays small.
package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// exception exempts the files under Path (a file, or a directory and
// everything below it, slash-separated from the module root) from Rule.
type exception struct {
	Path   string
	Rule   string
	Reason string
}

// exempt are the places a rule does not apply to by design.
var exempt = []exception{
	{Path: "vfs/osfs", Rule: ruleSeam, Reason: "the OS implementation of vfs.FS is the one place that calls the OS"},
	{Path: "vfs/osfs", Rule: ruleClock, Reason: "the OS layer may time real calls"},
	{Path: "cmd", Rule: ruleSeam, Reason: "commands (nfsbench) open real mounts and read their environment"},
	{Path: "cmd", Rule: ruleClock, Reason: "nfsbench measures real latencies"},
	{Path: "internal/lint", Rule: ruleSeam, Reason: "the lint tests read the module's files"},
}

// allowlist are the exceptions to fix some day, each with its reason. An
// entry that matches nothing fails TestLint: remove it.
var allowlist = []exception{
	{Path: "atomicrec/golden_test.go", Rule: ruleSeam, Reason: "reads and rewrites (-update) its testdata golden files; could use osfs.New(\"testdata\")"},
	{Path: "atomicrec/example_test.go", Rule: ruleSeam, Reason: "makes a temporary directory for its Example; osfs.NewTemp does that now"},
}

// Rule names.
const (
	ruleSeam  = "seam"
	ruleRand  = "rand"
	ruleClock = "clock"
)

// seamImports are the import paths of the seam rule: exactly these, or
// below them.
var seamImports = []string{"os", "io/ioutil", "syscall", "golang.org/x/sys"}

// errnoSelector matches what every package may use of syscall: errno
// values and their type.
var errnoSelector = regexp.MustCompile(`^(Errno|E[A-Z0-9]+)$`)

// vfsFlagSelector matches what package vfs may use of syscall besides
// errnos: the open(2) flags its Flag constants are made of.
var vfsFlagSelector = regexp.MustCompile(`^O_[A-Z0-9_]+$`)

// randV2Allowed is what non-test files may use of math/rand/v2: the
// constructors and types of a generator to pass around.
var randV2Allowed = []string{"New", "NewPCG", "NewChaCha8", "NewZipf", "Rand", "Source", "PCG", "ChaCha8", "Zipf"}

// randV1Allowed is what test files may use of math/rand (v1), which
// non-test files may not import at all.
var randV1Allowed = []string{"New", "NewSource", "NewZipf", "Rand", "Source", "Source64", "Zipf"}

// clockFuncs are the functions of package time that read the wall clock or
// wait for it.
var clockFuncs = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"}

// violation is one broken rule at one place.
type violation struct {
	Path string // slash-separated, from the module root
	Line int
	Rule string
	What string
}

func (v violation) String() string {
	return fmt.Sprintf("%s:%d: [%s] %s", v.Path, v.Line, v.Rule, v.What)
}

// check returns the violations of the file at rel (slash-separated, from
// the module root), whose source is src (nil to read the file).
func check(fset *token.FileSet, rel string, src any) ([]violation, error) {
	// Mode 0 resolves identifiers to the objects declared in the file,
	// which pkgRefs needs: no SkipObjectResolution.
	file, err := parser.ParseFile(fset, rel, src, 0)
	if err != nil {
		return nil, err
	}
	isTest := strings.HasSuffix(rel, "_test.go")
	dir := path.Dir(rel)
	var out []violation
	report := func(pos token.Pos, rule, format string, args ...any) {
		out = append(out, violation{Path: rel, Line: fset.Position(pos).Line, Rule: rule, What: fmt.Sprintf(format, args...)})
	}

	for _, imp := range file.Imports {
		ipath, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: bad import %s", rel, imp.Path.Value)
		}
		local := path.Base(ipath)
		if ipath == "math/rand/v2" {
			local = "rand"
		}
		if imp.Name != nil {
			local = imp.Name.Name
		}

		switch {
		case ipath == "syscall":
			// Allowed if every use is an errno (or, in vfs, a flag).
			if local == "." || local == "_" {
				report(imp.Pos(), ruleSeam, "imports syscall as %s", local)
				continue
			}
			for _, sel := range pkgRefs(file, local) {
				name := sel.Sel.Name
				if errnoSelector.MatchString(name) || (dir == "vfs" && vfsFlagSelector.MatchString(name)) {
					continue
				}
				report(sel.Pos(), ruleSeam, "uses syscall.%s: only errno values go past the seam (vfs.FS)", name)
			}
		case slices.ContainsFunc(seamImports, func(p string) bool { return ipath == p || strings.HasPrefix(ipath, p+"/") }):
			report(imp.Pos(), ruleSeam, "imports %q: do I/O through vfs.FS", ipath)

		case ipath == "math/rand" && !isTest:
			report(imp.Pos(), ruleRand, `imports "math/rand": use a *rand.Rand of math/rand/v2 that is passed in`)
		case ipath == "math/rand" || ipath == "math/rand/v2":
			allowed := randV2Allowed
			if ipath == "math/rand" {
				allowed = randV1Allowed
			}
			if local == "." {
				report(imp.Pos(), ruleRand, "dot-imports %s", ipath)
				continue
			}
			for _, sel := range pkgRefs(file, local) {
				if !slices.Contains(allowed, sel.Sel.Name) {
					report(sel.Pos(), ruleRand, "uses the global rand.%s: use a seeded *rand.Rand", sel.Sel.Name)
				}
			}

		case ipath == "time":
			if local == "." {
				report(imp.Pos(), ruleClock, "dot-imports time")
				continue
			}
			for _, sel := range pkgRefs(file, local) {
				if slices.Contains(clockFuncs, sel.Sel.Name) {
					report(sel.Pos(), ruleClock, "uses time.%s: no wall clock and no sleeping outside vfs/osfs and cmd", sel.Sel.Name)
				}
			}
		}
	}
	return out, nil
}

// pkgRefs returns the selector expressions pkg.X in file where pkg is the
// imported package called local, not a local variable of that name: the
// parser resolves identifiers declared in the file (Obj != nil) but leaves
// package names unresolved.
func pkgRefs(file *ast.File, local string) []*ast.SelectorExpr {
	var refs []*ast.SelectorExpr
	ast.Inspect(file, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && id.Obj == nil {
			refs = append(refs, sel)
		}
		return true
	})
	return refs
}

// covers reports whether e applies to v.
func (e exception) covers(v violation) bool {
	return e.Rule == v.Rule && (v.Path == e.Path || strings.HasPrefix(v.Path, e.Path+"/"))
}

// allowed reports whether an exemption or an allowlist entry covers v, and
// marks the allowlist entry used.
func allowed(v violation, used map[int]bool) bool {
	for _, e := range exempt {
		if e.covers(v) {
			return true
		}
	}
	for i, e := range allowlist {
		if e.covers(v) {
			used[i] = true
			return true
		}
	}
	return false
}

// moduleRoot returns the directory of go.mod above the working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for range 64 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatal("no go.mod above the working directory")
	return ""
}

// goFiles returns the module's .go files, slash-separated from root,
// skipping what the go tool skips: testdata, vendor, and directories
// whose names start with "." or "_".
func goFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			// A nested module is not this module's code.
			if p != root {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "_") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestLint checks every .go file of the module.
func TestLint(t *testing.T) {
	root := moduleRoot(t)
	files := goFiles(t, root)
	if !slices.Contains(files, "vfs/vfs.go") || !slices.Contains(files, "internal/lint/lint_test.go") {
		t.Fatalf("the walk from %s missed the module's files: %d found", root, len(files))
	}
	fset := token.NewFileSet()
	used := map[int]bool{}
	for _, rel := range files {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		vs, err := check(fset, rel, src)
		if err != nil {
			t.Errorf("parsing: %v", err)
			continue
		}
		for _, v := range vs {
			if !allowed(v, used) {
				t.Error(v)
			}
		}
	}
	for i, e := range allowlist {
		if !used[i] {
			t.Errorf("allowlist entry %+v matches nothing: remove it", e)
		}
	}
}

// TestRules checks the checker on planted sources, in both directions:
// each bad source must give exactly the violations listed, each good one
// none.
func TestRules(t *testing.T) {
	tests := []struct {
		name string
		path string
		src  string
		want []string // "rule:line"
	}{
		{"OsInEngine", "appendlog/log.go", `package appendlog
import "os"
var _ = os.Getpid`, []string{"seam:2"}},
		{"OsSubpackage", "appendlog/log.go", `package appendlog
import "os/exec"
var _ = exec.Command`, []string{"seam:2"}},
		{"OsInEngineTest", "appendlog/log_test.go", `package appendlog
import "os"
var _ = os.TempDir`, []string{"seam:2"}},
		{"Unix", "nfssim/host.go", `package nfssim
import "golang.org/x/sys/unix"
var _ = unix.Fsync`, []string{"seam:2"}},
		{"Ioutil", "engine/e.go", `package engine
import "io/ioutil"
var _ = ioutil.ReadFile`, []string{"seam:2"}},
		{"RenamedOs", "engine/e.go", `package engine
import sys "os"
var _ = sys.Exit`, []string{"seam:2"}},
		{"SyscallCall", "engine/e.go", `package engine
import "syscall"
func f() { syscall.Fsync(3); _ = syscall.O_RDONLY }`, []string{"seam:3", "seam:3"}},
		{"SyscallErrno", "nfssim/err.go", `package nfssim
import "syscall"
var errs = []syscall.Errno{syscall.EEXIST, syscall.ENOENT, syscall.ESTALE}`, nil},
		{"SyscallFlagsInVfs", "vfs/vfs.go", `package vfs
import "syscall"
const a = syscall.O_RDWR | syscall.O_CREAT
var e error = syscall.ESTALE`, nil},
		{"SyscallFlagsInVfsChild", "vfs/errorfs/x.go", `package errorfs
import "syscall"
const a = syscall.O_RDWR`, []string{"seam:3"}},
		{"OsInOsfs", "vfs/osfs/osfs.go", `package osfs
import ("os"; "golang.org/x/sys/unix"; "syscall")
var _, _, _ = os.NewFile, unix.Openat, syscall.Getpid`, nil},
		{"OsInCmd", "cmd/nfsbench/main.go", `package main
import ("os"; "time")
func main() { os.Exit(0); time.Sleep(0); _ = time.Now() }`, nil},

		{"RandV1", "appendlog/log.go", `package appendlog
import "math/rand"
var _ = rand.Intn`, []string{"rand:2"}},
		{"RandV1SeededInTest", "appendlog/log_test.go", `package appendlog
import "math/rand"
var r = rand.New(rand.NewSource(1))
var _ = r.Intn(3)`, nil},
		{"RandV1GlobalInTest", "appendlog/log_test.go", `package appendlog
import "math/rand"
var _ = rand.Intn`, []string{"rand:3"}},
		{"RandV2GlobalInTest", "appendlog/log_test.go", `package appendlog
import "math/rand/v2"
var _ = rand.N[int]`, []string{"rand:3"}},
		{"RandV2Global", "engine/e.go", `package engine
import "math/rand/v2"
func f() int { return rand.IntN(3) + int(rand.Uint64()) }
var g = rand.Shuffle`, []string{"rand:3", "rand:3", "rand:4"}},
		{"RandV2Seeded", "engine/e.go", `package engine
import "math/rand/v2"
func f(seed uint64) *rand.Rand { r := rand.New(rand.NewPCG(seed, 1)); r.IntN(3); return r }
func g(rand *rand.Rand) int { return rand.IntN(4) }`, nil},
		{"RandV2Renamed", "engine/e.go", `package engine
import mr "math/rand/v2"
var _ = mr.Int64`, []string{"rand:3"}},
		{"RandV2Dot", "engine/e.go", `package engine
import . "math/rand/v2"
var _ = IntN`, []string{"rand:2"}},

		{"Now", "readahead/cache.go", `package readahead
import "time"
func f() time.Duration { t := time.Now(); return time.Since(t) }`, []string{"clock:3", "clock:3"}},
		{"SleepInTest", "readahead/cache_test.go", `package readahead
import ("testing"; "time")
func TestX(t *testing.T) { time.Sleep(time.Millisecond) }`, []string{"clock:3"}},
		{"TimerAsValue", "nfssim/sim.go", `package nfssim
import "time"
var after = time.After`, []string{"clock:3"}},
		{"DurationsAndDates", "nfssim/sim.go", `package nfssim
import "time"
var d = 3 * time.Second
var epoch = time.Unix(0, 0).Add(d)
type clock struct{}
func (clock) Now() time.Time { return epoch }
func f(time clock) int { return time.Now().Year() }`, nil},
		{"ClockInOsfs", "vfs/osfs/osfs.go", `package osfs
import "time"
var _ = time.Now`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := check(token.NewFileSet(), tc.path, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				if !allowed(v, map[int]bool{}) {
					got = append(got, fmt.Sprintf("%s:%d", v.Rule, v.Line))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations %q, want %q; all: %v", got, tc.want, vs)
			}
		})
	}
}
