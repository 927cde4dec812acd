package compiler

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as weir.cue through every pass: they may report
// diagnostics, never panic. Run it with: go test -fuzz FuzzLoad ./compiler
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"../examples/quickstart/weir.cue", "../testdata/complete/weir.cue"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`project: "x"`))
	f.Add([]byte(`project: "x", training: t: {features: "datasets.d", command: ["a"]}`))
	f.Add([]byte(`import "weir.dev/schema"
training: t: schema.#Training & {}`))
	f.Add([]byte(`datasets: d: schema: {a: int & >=0 | null}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "weir.cue"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		res, ds := Compile(context.Background(), Options{Dir: dir})
		if res.Plan == nil && !ds.HasErrors() {
			t.Fatalf("no result and no error")
		}
		for _, d := range ds {
			if d.Summary == "" {
				t.Fatalf("diagnostic without a message: %+v", d)
			}
		}
	})
}
