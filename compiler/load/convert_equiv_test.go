package load_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"weir.dev/weir/compiler"
	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

// TestQuickstartEquivalence compiles the quickstart written in each
// language in one project folder (the spec swapped, everything else the
// same) and requires byte-identical plan files once source positions are
// left out: a plan records where each step is written (Step.Source,
// Change.Source, Finding.Source), and that is the one thing that differs by
// language. The positions themselves must point into the spec's own
// language.
func TestQuickstartEquivalence(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, "../../examples/quickstart", dir)
	require.NoError(t, os.Remove(filepath.Join(dir, "weir.cue")))
	specs := map[string][]string{
		"cue":     {"../../examples/quickstart/weir.cue"},
		"jsonnet": {"../../examples/quickstart-jsonnet/weir.jsonnet", "../../examples/quickstart-jsonnet/features.libsonnet"},
		"hcl":     {"../../examples/quickstart-hcl/weir.hcl"},
	}
	var want []byte
	for _, lang := range []string{"cue", "jsonnet", "hcl"} {
		var placed []string
		for _, src := range specs[lang] {
			b, err := os.ReadFile(src)
			require.NoError(t, err)
			name := filepath.Join(dir, filepath.Base(src))
			require.NoError(t, os.WriteFile(name, b, 0o644))
			placed = append(placed, name)
		}
		res, ds := compiler.Compile(context.Background(), compiler.Options{Dir: dir, WeirVersion: "test"})
		require.False(t, ds.HasErrors(), "%s: %v", lang, ds)
		p := res.Plan
		require.NotEmpty(t, p.Steps)
		for _, s := range p.Steps {
			require.NotNil(t, s.Source, "%s: %s has no source", lang, s.Address)
			require.Equal(t, filepath.Base(specs[lang][0]), s.Source.Filename, "%s: %s", lang, s.Address)
		}
		got := encodeWithoutSources(t, p)
		if want == nil {
			want = got
		} else {
			require.Equal(t, string(want), string(got), "%s: the plan differs from the CUE spec's", lang)
		}
		for _, n := range placed {
			require.NoError(t, os.Remove(n))
		}
	}
}

func encodeWithoutSources(t *testing.T, p *schema.Plan) []byte {
	for _, s := range p.Steps {
		s.Source = nil
	}
	for i := range p.Changes {
		p.Changes[i].Source = nil
	}
	for i := range p.Findings {
		p.Findings[i].Source = nil
	}
	b, err := p.Encode()
	require.NoError(t, err)
	return b
}

// copyTree copies src into dst, following symbolic links.
func copyTree(t *testing.T, src, dst string) {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	require.NoError(t, err)
}

// TestBenchgenEquivalence plans the benchmark's generated spec written in
// each language (testdata/bench/benchgen) and requires the same plan file
// byte for byte: the front ends' timings in `make bench` compare the same
// work.
func TestBenchgenEquivalence(t *testing.T) {
	var want []byte
	dir := t.TempDir() // one folder: the plan records it
	for _, lang := range benchgen.Languages {
		require.NoError(t, benchgen.GenerateLang(dir, 3, benchgen.Single, lang, schema.CUE))
		res, ds := compiler.Compile(context.Background(), compiler.Options{Dir: dir, WeirVersion: "test"})
		require.False(t, ds.HasErrors(), "%s: %v", lang, ds)
		require.Len(t, res.Plan.Steps, 3*benchgen.StepsPerPipeline, lang)
		got, err := res.Plan.Encode()
		require.NoError(t, err)
		if want == nil {
			want = got
			continue
		}
		require.Equal(t, string(want), string(got), "%s: the plan differs from the CUE spec's", lang)
	}
}
