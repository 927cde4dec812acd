package load

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

// TestCacheRoundTrip checks that a cached evaluation reads back as exactly
// what was evaluated: the IR with its rules, typed parameters, the source
// map with offsets, the spec hash.
func TestCacheRoundTrip(t *testing.T) {
	dir := writeFiles(t, map[string]string{"weir.cue": `project: "demo"
backends: k: {kind: "kubernetes", config: {replicas: 3, labels: {a: "b"}, list: [1, "x", true, 2.5]}}
datasets: d: {source: {kind: "file", uri: "d.csv"}, schema: {id: int & >=1, k: "a" | "b" | null}}
training: t: {
	features: "datasets.d"
	command: ["python3", "t.py"]
	params: {n: 3, big: 9007199254740993, lr: 0.1, name: "x", on: true, l: [1, 2], m: {a: 1}}
	search: {method: "grid", params: {lr: [0.1, 0.2], k: {min: 1, max: 2}}, objective: {metric: "auc", goal: "maximize"}}
}
models: m: {from: "training.t", gates: {auc: >=0.8}, aliases: {prod: "latest", old: 2}}
`})
	cache := t.TempDir()
	cold, ds := Load(context.Background(), dir, Options{CacheDir: cache})
	require.Empty(t, ds)
	require.False(t, cold.Cached)
	warm, ds := Load(context.Background(), dir, Options{CacheDir: cache})
	require.Empty(t, ds)
	require.True(t, warm.Cached)
	require.Equal(t, cold.SpecHash, warm.SpecHash)
	require.Equal(t, cold.Sources, warm.Sources)
	require.Equal(t, cold.Project, warm.Project) // rules and int64 parameters included
	require.Equal(t, int64(9007199254740993), warm.Project.Training["t"].Params["big"])
	require.NotEmpty(t, warm.Project.Datasets["d"].Rules)
	require.NotEmpty(t, warm.Project.Models["m"].GateRules)

	// One entry per project; a spec change is a miss and replaces it.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "weir.cue"), append(mustRead(t, filepath.Join(dir, "weir.cue")), "\nowner: \"me\"\n"...), 0o644))
	again, ds := Load(context.Background(), dir, Options{CacheDir: cache})
	require.Empty(t, ds)
	require.False(t, again.Cached)
	entries, _ := filepath.Glob(filepath.Join(cache, "eval-*"))
	require.Len(t, entries, 1)
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// TestCacheCorrupt checks that a damaged entry is a miss, not an error.
func TestCacheCorrupt(t *testing.T) {
	dir := writeFiles(t, map[string]string{"weir.cue": `project: "demo"` + "\n"})
	cache := t.TempDir()
	_, ds := Load(context.Background(), dir, Options{CacheDir: cache})
	require.Empty(t, ds)
	entries, _ := filepath.Glob(filepath.Join(cache, "eval-*"))
	require.Len(t, entries, 1)
	b := mustRead(t, entries[0])
	for _, cut := range []int{0, 5, len(b) / 2, len(b) - 1} {
		require.NoError(t, os.WriteFile(entries[0], b[:cut], 0o644))
		res, ds := Load(context.Background(), dir, Options{CacheDir: cache})
		require.Empty(t, ds)
		require.False(t, res.Cached)
	}
}

func TestIRShape(t *testing.T) {
	shape := irShape()
	for _, want := range []string{"schema.Project{", "Rules map[string]schema.ColumnRule", "schema.Range{", "Params map[string]interface {}"} {
		require.Contains(t, shape, want)
	}
}

func TestSourceMapEncoding(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, benchgen.Generate(dir, 3, benchgen.Split, schema.CUE))
	res, ds := Load(context.Background(), dir, Options{})
	require.Empty(t, ds)
	got, err := decodeSourceMap(encodeSourceMap(res.Sources))
	require.NoError(t, err)
	require.Equal(t, res.Sources, got)
	empty, err := decodeSourceMap(encodeSourceMap(schema.SourceMap{}))
	require.NoError(t, err)
	require.Empty(t, empty)
	b, _ := json.Marshal(got)
	require.NotEmpty(t, b)
}
