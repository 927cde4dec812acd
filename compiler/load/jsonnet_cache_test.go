package load

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJsonnetCache checks that a Jsonnet spec's evaluation is cached and
// that everything it reads invalidates it: the entry file, an imported
// file, an import that resolves elsewhere once a file appears, external
// variables and top-level arguments.
func TestJsonnetCache(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"weir.jsonnet": `function(owner='me') {
  project: std.extVar('project'),
  owner: owner,
  datasets: (import 'lib/datasets.libsonnet'),
  labels: { team: importstr 'team.txt' },
}
`,
		"lib/datasets.libsonnet": `{ d: (import 'source.libsonnet') + { schema: { id: 'int & >=1' } } }`,
		// Resolves to lib/source.libsonnet first, then to the project
		// folder's.
		"source.libsonnet": `{ source: { kind: 'file', uri: 'd.csv' } }`,
		"team.txt":         "ml",
	})
	cache := t.TempDir()
	opts := Options{CacheDir: cache, Inputs: Inputs{ExtStr: map[string]string{"project": "demo"}}}
	load := func(opts Options) *Result {
		t.Helper()
		res, ds := Load(context.Background(), dir, opts)
		require.Empty(t, ds)
		return res
	}
	cold := load(opts)
	require.False(t, cold.Cached)
	warm := load(opts)
	require.True(t, warm.Cached)
	require.Equal(t, cold.Project, warm.Project)
	require.Equal(t, cold.Sources, warm.Sources)
	require.Equal(t, cold.SpecHash, warm.SpecHash)
	require.Equal(t, "d.csv", warm.Project.Datasets["d"].Source.URI)

	miss := func(why string, opts Options, change func()) *Result {
		t.Helper()
		change()
		res := load(opts)
		require.False(t, res.Cached, why)
		require.True(t, load(opts).Cached, why+": then cached again")
		return res
	}
	write := func(name, data string) func() {
		return func() { require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)) }
	}
	res := miss("an imported file changed", opts, write("source.libsonnet", `{ source: { kind: 'file', uri: 'e.csv' } }`))
	require.Equal(t, "e.csv", res.Project.Datasets["d"].Source.URI)
	res = miss("an import now resolves to another file", opts, write("lib/source.libsonnet", `{ source: { kind: 'file', uri: 'f.csv' } }`))
	require.Equal(t, "f.csv", res.Project.Datasets["d"].Source.URI)
	res = miss("an importstr file changed", opts, write("team.txt", "risk"))
	require.Equal(t, "risk", res.Project.Labels["team"])
	opts.ExtStr = map[string]string{"project": "other"}
	res = miss("an external variable changed", opts, func() {})
	require.Equal(t, "other", res.Project.Project)
	opts.TLAStr = map[string]string{"owner": "you"}
	res = miss("a top-level argument changed", opts, func() {})
	require.Equal(t, "you", res.Project.Owner)
	opts.TLAStr, opts.TLACode = nil, map[string]string{"owner": "'them'"}
	res = miss("top-level code changed", opts, func() {})
	require.Equal(t, "them", res.Project.Owner)
	res = miss("the entry file changed", opts, write("weir.jsonnet", `{ project: 'plain' }`))
	require.Equal(t, "plain", res.Project.Project)

	// One record of imports and one entry per project.
	records, _ := filepath.Glob(filepath.Join(cache, "jsonnet-*.json"))
	require.Len(t, records, 1)
	entries, _ := filepath.Glob(filepath.Join(cache, "eval-*"))
	require.Len(t, entries, 1)
}

// TestJsonnetCacheFailedImport checks that an import that failed, and a
// file that then appears where it looked, changes the key.
func TestJsonnetCacheFailedImport(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"weir.jsonnet": `{ project: if std.extVar('local') == 'yes' then (import 'local.libsonnet') else 'shared' }`,
	})
	cache := t.TempDir()
	opts := Options{CacheDir: cache, Inputs: Inputs{ExtStr: map[string]string{"local": "no"}}}
	res, ds := Load(context.Background(), dir, opts)
	require.Empty(t, ds)
	require.Equal(t, "shared", res.Project.Project)
	opts.ExtStr["local"] = "yes"
	_, ds = Load(context.Background(), dir, opts)
	require.True(t, ds.HasErrors(), "the import fails")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "local.libsonnet"), []byte(`'mine'`), 0o644))
	res, ds = Load(context.Background(), dir, opts)
	require.Empty(t, ds)
	require.False(t, res.Cached)
	require.Equal(t, "mine", res.Project.Project)
}
