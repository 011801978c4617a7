package doccheck

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/vfs/osfs"
	"github.com/nfsindex/nfsindex/vfs/vfstest"
)

var testName = regexp.MustCompile(`\b(Test|Fuzz|Benchmark|Example)[A-Za-z0-9_]*\b`)

// rowID matches the Id column of an invariants row (I1, S2, RA3, ...).
var rowID = regexp.MustCompile(`^[A-Z]{1,3}[0-9]+$`)

// TestInvariantProofsExist reads the invariants table of docs/design.md
// and fails if a proof it names is not a function in some _test.go file.
func TestInvariantProofsExist(t *testing.T) {
	root := filepath.Join("..", "..")
	funcs := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil {
				funcs[fn.Name.Name] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, named := proofsNamed(t, root)
	if rows == 0 {
		t.Fatal("docs/design.md has no invariants rows")
	}
	for _, n := range named {
		if !funcs[n] {
			t.Errorf("docs/design.md names %s as a proof, but no _test.go file defines it", n)
		}
	}
	t.Logf("%d invariant rows, %d proofs named, all defined", rows, len(named))
}

// proofsNamed returns the number of invariants rows (a table row whose
// first cell is an id) and the test names in their last cell.
func proofsNamed(t *testing.T, root string) (int, []string) {
	fsys, err := osfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	data, err := vfstest.ReadFile(fsys, "docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	var names []string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		cells := strings.Split(strings.Trim(strings.TrimSpace(sc.Text()), "|"), "|")
		if len(cells) < 3 || !rowID.MatchString(strings.TrimSpace(cells[0])) {
			continue
		}
		rows++
		names = append(names, testName.FindAllString(cells[len(cells)-1], -1)...)
	}
	return rows, names
}
