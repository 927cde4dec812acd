package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// TestDump: the dumped modules, data and input, loaded back as a policy
// folder, run the same query and give the same finding values as Eval.
func TestDump(t *testing.T) {
	p, plan, lock, config := generate(100)
	user := writeFiles(t, map[string]string{
		"extra/owner2.rego":      "package weir.extra.owner2\n\nwarn contains \"no description\" if not input.project.description\n",
		"extra/owner2_test.rego": "package weir.extra.owner2_test\n\ntest_x if true\n",
		"extra/limits.json":      `{"max": 3}`,
	})
	ctx := context.Background()
	e := newEngine(t, Options{Builtin: true, Config: config, Dirs: []string{user}})
	in := Input{Project: p, Plan: plan, Lock: lock}
	want, ds := e.Eval(ctx, in, nil)
	noErrors(t, ds)

	dir := t.TempDir()
	if err := e.Dump(dir, in); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(filepath.Join(dir, "policies"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	joined := strings.Join(files, " ")
	for _, f := range []string{"policies/image_digest.rego", "policies/lib/runs.rego", "policies/_dir1/extra/owner2.rego"} {
		if !strings.Contains(joined, f) {
			t.Errorf("dump lacks %s: %s", f, joined)
		}
	}
	if strings.Contains(joined, "_test.rego") {
		t.Errorf("dump holds tests: %s", joined)
	}

	back := newEngine(t, Options{Dirs: []string{filepath.Join(dir, "policies"), filepath.Join(dir, "data.json")}})
	if back.Query() != e.Query() {
		t.Errorf("query differs:\n%s\n%s", back.Query(), e.Query())
	}
	q, err := os.ReadFile(filepath.Join(dir, "query.rego"))
	if err != nil || strings.TrimSpace(string(q)) != e.Query() {
		t.Errorf("query.rego: %q, %v", q, err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "input.json"))
	if err != nil {
		t.Fatal(err)
	}
	val, err := ast.ValueFromReader(strings.NewReader(string(src)))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := back.all.query.Eval(ctx, rego.EvalParsedInput(val))
	if err != nil {
		t.Fatal(err)
	}
	got := back.collect(rs, back.targets)
	if len(got) != len(want) || len(want) == 0 {
		t.Errorf("the dump gives %d finding values, Eval %d findings", len(got), len(want))
	}
	if err := e.Dump(dir, in); err == nil {
		t.Error("a second dump into the same folder: no error")
	}
}
