package data

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// allowedImports are the packages of this module the data steps may use;
// everything else must be the standard library. The runtime never imports
// the compiler, CUE or OPA.
var allowedImports = map[string]bool{
	"weir.dev/weir/schema":        true,
	"weir.dev/weir/internal/diag": true,
}

// TestImports checks every non-test Go file of this package and its
// internal packages.
func TestImports(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			std := !strings.Contains(strings.SplitN(p, "/", 2)[0], ".")
			if !std && !allowedImports[p] && !strings.HasPrefix(p, "weir.dev/weir/runtime/data/") {
				t.Errorf("%s imports %s: the data steps use only the standard library, schema and internal/diag", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
