package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestCompiledCache: engines over the same modules share one compilation
// (Warm's too), whatever their data; a module whose text changes is
// compiled again, and a syntax error is reported every time.
func TestCompiledCache(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.rego": "package weir.a\n\ndeny contains \"one\" if input.project\n"})
	Warm(Options{Builtin: true, Dirs: []string{dir}})
	first := newEngine(t, Options{Builtin: true, Dirs: []string{dir}})
	again := newEngine(t, Options{Builtin: true, Dirs: []string{dir}, Config: map[string]any{"budget": map[string]any{"cost": 1}}})
	if first.compiler != again.compiler {
		t.Error("two engines over the same modules compiled them twice")
	}
	if other := newEngine(t, Options{Dirs: []string{dir}}); other.compiler == first.compiler {
		t.Error("engines over different modules share a compilation")
	}
	p, plan, sm := fixture()
	in := Input{Project: p, Plan: plan, Lock: lock}
	messages := func(e *Engine) map[string]bool {
		fs, ds := e.Eval(context.Background(), in, sm)
		noErrors(t, ds)
		out := map[string]bool{}
		for _, f := range fs {
			if f.Rule == "weir.a" {
				out[f.Message] = true
			}
		}
		return out
	}
	if got := messages(again); !got["one"] || len(got) != 1 {
		t.Errorf("weir.a finds %v, want one", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.rego"), []byte("package weir.a\n\ndeny contains \"two\" if input.project\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := newEngine(t, Options{Builtin: true, Dirs: []string{dir}})
	if changed.compiler == first.compiler {
		t.Error("a changed module was not compiled again")
	}
	if got := messages(changed); !got["two"] || len(got) != 1 {
		t.Errorf("weir.a finds %v after the change, want two", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.rego"), []byte("package weir.a\n\ndeny contains \"x\" if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		e, ds := New(context.Background(), Options{Builtin: true, Dirs: []string{dir}})
		if e != nil || !ds.HasErrors() || ds[0].Code != "policy-syntax" {
			t.Errorf("a syntax error gives %v, %v", e, ds)
		}
	}
}
