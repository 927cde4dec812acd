package load

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

// withFrontSplit sets the front ends' split thresholds for a test.
func withFrontSplit(t *testing.T, min, elems int) {
	oldMin, oldElems := frontSplitMin, frontPartElems
	frontSplitMin, frontPartElems = min, elems
	t.Cleanup(func() { frontSplitMin, frontPartElems = oldMin, oldElems })
}

// TestFrontSplitSameIR checks that an HCL or Jsonnet spec checked in parts
// gives the IR, source map and spec hash it gives checked whole, and the
// CUE spec's IR.
func TestFrontSplitSameIR(t *testing.T) {
	cueDir := t.TempDir()
	require.NoError(t, benchgen.GenerateLang(cueDir, 12, benchgen.Single, benchgen.CUE, schema.CUE))
	want, ds := Load(context.Background(), cueDir, Options{})
	require.Empty(t, ds)
	for _, lang := range []string{benchgen.HCL, benchgen.Jsonnet} {
		dir := t.TempDir()
		require.NoError(t, benchgen.GenerateLang(dir, 12, benchgen.Single, lang, schema.CUE))

		withFrontSplit(t, 1<<30, 1)
		whole, ds := Load(context.Background(), dir, Options{})
		require.Empty(t, ds, lang)

		withFrontSplit(t, 8, 5)
		before := partsEvaluated.Load()
		split, ds := Load(context.Background(), dir, Options{})
		require.Empty(t, ds, lang)
		require.Greater(t, partsEvaluated.Load()-before, int64(4), "%s: checked in parts", lang)

		require.Equal(t, whole.Project, split.Project, lang)
		require.Equal(t, whole.Sources, split.Sources, lang)
		require.Equal(t, whole.SpecHash, split.SpecHash, lang)
		require.Equal(t, want.SpecHash, split.SpecHash, "%s: the CUE spec's IR", lang)
		require.Equal(t, want.Project, split.Project, lang)
	}
}

// TestFrontSplitErrors checks that a spec whose part reports anything is
// checked whole: the diagnostics are those of the whole spec, with their
// positions.
func TestFrontSplitErrors(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, benchgen.GenerateLang(dir, 12, benchgen.Single, benchgen.HCL, schema.CUE))
	path := filepath.Join(dir, "weir.hcl")
	src := string(mustRead(t, path))
	src = strings.Replace(src, `ttl    = "24h"`, `ttl    = "24h"
  tll    = "x"`, 1)
	src = strings.Replace(src, `minRows         = 3`, `minRows         = "many"`, 1)
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))

	withFrontSplit(t, 1<<30, 1)
	_, whole := Load(context.Background(), dir, Options{})
	require.True(t, whole.HasErrors())
	withFrontSplit(t, 8, 5)
	_, split := Load(context.Background(), dir, Options{})
	require.Equal(t, whole, split)
	var codes []string
	for _, d := range split {
		require.NotNil(t, d.Range, d.Summary)
		require.Equal(t, "weir.hcl", d.Range.Filename, d.Summary)
		codes = append(codes, d.Code)
	}
	require.Len(t, codes, 2, "%v", split)
}
