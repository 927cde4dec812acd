package load

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJsonnetQuickstartSameIR(t *testing.T) {
	want, ds := Load(context.Background(), "../../examples/quickstart", Options{})
	require.False(t, ds.HasErrors(), "%v", ds)
	got, ds := Load(context.Background(), "../../examples/quickstart-jsonnet", Options{})
	require.False(t, ds.HasErrors(), "%v", ds)
	require.Equal(t, want.Project, got.Project)
	require.Equal(t, want.SpecHash, got.SpecHash)
	require.Equal(t, "weir.jsonnet", got.Sources["training.classifier.search"].Filename)
	t.Log(got.Sources["training.classifier.search"], got.Sources["datasets.tumors.schema.mean_area"], got.Sources["datasets.tumors.schema.id"])
}

// FuzzLoadJsonnet evaluates arbitrary Jsonnet as a spec: it may fail, with
// diagnostics, but never panic, and every error it reports has a position.
func FuzzLoadJsonnet(f *testing.F) {
	for _, s := range []string{
		"{project: 'x'}",
		"local a = import 'b.libsonnet'; a",
		"{project: error 'no'}",
		"{datasets: {d: {source: {kind: 'file', uri: 'd.csv'}, schema: {a: 'int & >=1'}}}}",
		"{models: {m: {from: 'training.t', gates: {auc: '>=0.9', x: '>>'}}}}",
		"[1, 2]",
		"function(x) {project: x}",
		"{serving: {s: {port: 'x'}}, traning: {}}",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		sf := &specFile{name: "weir.jsonnet", path: dir + "/weir.jsonnet", src: []byte(src)}
		p, _, _, ds := evaluateJsonnet(dir, sf, Options{})
		if p == nil && !ds.HasErrors() {
			t.Fatalf("no project and no error for %q", src)
		}
		for _, d := range ds {
			if d.Range == nil || d.Range.Filename == "" {
				t.Fatalf("%q: an error without a position: %v", src, d)
			}
		}
	})
}
