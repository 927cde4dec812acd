// Package depcheck holds the test that enforces Weir's import graph
// (DESIGN section 10, STYLE rule 8): imports go one way, the runtime never
// reaches the compiler, CUE or OPA, and each foreign engine has one importer.
package depcheck

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "weir.dev/weir/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

const mod = "weir.dev/weir/"

func under(path, prefix string) bool {
	return path == strings.TrimSuffix(prefix, "/") || strings.HasPrefix(path, prefix)
}

func TestImportGraph(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	// Transitive rules: a package under the key must not depend on any of
	// the values.
	forbidden := map[string][]string{
		mod + "runtime/":        {mod + "compiler", mod + "cmd", "cuelang.org/go", "github.com/open-policy-agent/opa", "google.golang.org/grpc", "github.com/hashicorp/go-plugin"},
		mod + "schema":          {mod + "compiler", mod + "runtime", mod + "plugins", mod + "cmd", "cuelang.org/go", "github.com/open-policy-agent/opa"},
		mod + "internal/diag":   {mod},
		mod + "compiler/graph":  {"cuelang.org/go", "github.com/open-policy-agent/opa", mod + "runtime", mod + "plugins"},
		mod + "compiler/":       {mod + "runtime", mod + "plugins", mod + "cmd"},
		mod + "plugins/":        {mod + "compiler", "cuelang.org/go", "github.com/open-policy-agent/opa"},
		mod + "plugins/sdk":     {mod + "runtime/exec", mod + "runtime/state"},
		mod + "runtime/backend": {mod + "runtime/exec", mod + "runtime/state", mod + "plugins"},
		mod + "plugins/proto":   {mod},
	}
	// Direct rules: only these packages may import the engine themselves.
	sole := map[string]string{
		"cuelang.org/go":                   mod + "compiler/load",
		"github.com/open-policy-agent/opa": mod + "compiler/policy",
	}
	for _, p := range pkgs {
		for prefix, bans := range forbidden {
			if !under(p.ImportPath, prefix) {
				continue
			}
			for _, d := range p.Deps {
				for _, ban := range bans {
					if ban == mod && strings.HasPrefix(d, mod) && d != p.ImportPath {
						t.Errorf("%s must import no other Weir package, but depends on %s", p.ImportPath, d)
					} else if ban != mod && under(d, ban) {
						t.Errorf("%s must not depend on %s (it does through %s)", p.ImportPath, ban, d)
					}
				}
			}
		}
		for _, imp := range p.Imports {
			for engine, owner := range sole {
				if under(imp, engine) && !under(p.ImportPath, owner) {
					t.Errorf("%s imports %s directly; only %s may", p.ImportPath, imp, owner)
				}
			}
		}
	}
}
