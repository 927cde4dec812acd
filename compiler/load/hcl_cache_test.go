package load

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHCLCache checks that an HCL spec's evaluation is cached, and that a
// change to a file or to a variable's value is a miss.
func TestHCLCache(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"weir.hcl": `variable "owner" { default = "me" }
project = "demo"
owner   = var.owner
`,
		"datasets.hcl": `dataset "d" {
  source = { kind = "file", uri = "d.csv" }
  schema = { id = "int & >=1" }
}
`,
	})
	cache := t.TempDir()
	load := func(in Inputs) *Result {
		t.Helper()
		res, ds := Load(context.Background(), dir, Options{CacheDir: cache, Inputs: in})
		require.Empty(t, ds)
		return res
	}
	cold := load(Inputs{})
	require.False(t, cold.Cached)
	warm := load(Inputs{})
	require.True(t, warm.Cached)
	require.Equal(t, cold.Project, warm.Project)
	require.Equal(t, cold.Sources, warm.Sources)
	require.Equal(t, "datasets.hcl", warm.Sources["datasets.d"].Filename)

	res := load(Inputs{Vars: map[string]string{"owner": "you"}})
	require.False(t, res.Cached)
	require.Equal(t, "you", res.Project.Owner)
	res = load(Inputs{EnvVars: map[string]string{"owner": "env"}})
	require.False(t, res.Cached)
	require.Equal(t, "env", res.Project.Owner)
	require.True(t, load(Inputs{EnvVars: map[string]string{"owner": "env"}}).Cached)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "datasets.hcl"), []byte(`dataset "d" {
  source = { kind = "file", uri = "e.csv" }
}
`), 0o644))
	res = load(Inputs{EnvVars: map[string]string{"owner": "env"}})
	require.False(t, res.Cached)
	require.Equal(t, "e.csv", res.Project.Datasets["d"].Source.URI)
}
