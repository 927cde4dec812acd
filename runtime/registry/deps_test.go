package registry_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the layering of the runtime's record keeping: from
// this repository the state, artifact and registry packages import only each
// other, schema and internal/diag; they never import the compiler, CUE or OPA.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	pkgs := []string{"weir.dev/weir/runtime/state", "weir.dev/weir/runtime/artifact", "weir.dev/weir/runtime/registry"}
	out, err := exec.Command(goTool, append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	ours := map[string]bool{"weir.dev/weir/schema": true, "weir.dev/weir/internal/diag": true}
	for _, p := range pkgs {
		ours[p] = true
	}
	forbidden := []string{"cuelang.org/", "github.com/open-policy-agent/"}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "weir.dev/weir/") && !ours[p] {
			t.Errorf("runtime state/artifact/registry depend on %s", p)
		}
		for _, f := range forbidden {
			if strings.HasPrefix(p, f) {
				t.Errorf("runtime state/artifact/registry depend on %s", p)
			}
		}
	}
}
