package load

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHCLQuickstartSameIR(t *testing.T) {
	want, ds := Load(context.Background(), "../../examples/quickstart", Options{})
	require.False(t, ds.HasErrors(), "%v", ds)
	got, ds := Load(context.Background(), "../../examples/quickstart-hcl", Options{})
	require.False(t, ds.HasErrors(), "%v", ds)
	require.Equal(t, want.Project, got.Project)
	require.Equal(t, want.SpecHash, got.SpecHash)
	r := got.Sources["training.classifier.search"]
	require.Equal(t, "weir.hcl", r.Filename)
}

// FuzzLoadHCL reads arbitrary HCL as a spec: it may fail, with
// diagnostics, but never panic, and every error it reports has a position.
func FuzzLoadHCL(f *testing.F) {
	for _, s := range []string{
		`project = "x"`,
		"dataset \"d\" {\n  source { kind = \"file\"\n uri = \"d.csv\" }\n schema = { a = \"int & >=1\" }\n}",
		"model \"m\" {\n from = training.t\n gates = { auc = \">=0.9\", x = \">>\" }\n}",
		"variable \"n\" {\n type = number\n default = 2\n}\nbackend \"b\" {\n kind = \"local\"\n parallelism = var.n\n}",
		"locals {\n a = local.b\n b = local.a\n}",
		"datset \"d\" {}",
		"serving \"s\" {\n port = \"x\"\n}\ntraning \"t\" {}",
		"defaults {\n timeout = upper(\"1m\")\n}",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		sf := &specFile{name: "weir.hcl", path: dir + "/weir.hcl", src: []byte(src)}
		p, _, ds := evaluateHCL(dir, []*specFile{sf}, Options{})
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
