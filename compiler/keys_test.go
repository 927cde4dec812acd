package compiler

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const keySpec = `project: "keys"
datasets: d: source: {kind: "file", uri: "d.csv"}
training: t: {
	features: "datasets.d"
	command: ["python3", "train.py"]
	code: "./train"
	params: {epochs: 10, verbose: true}
	cacheIgnore: ["verbose"]
	search: {method: "grid", params: {lr: [0.1, 0.2], l2: [0, 1]}, objective: {metric: "auc", goal: "maximize"}}
}
models: m: from: "training.t"
`

// project writes a project and returns a function that compiles it into
// address -> cache key.
func project(t *testing.T, spec string) (string, func() map[string]string) {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "weir.cue", spec)
	write(t, dir, "d.csv", "a\n1\n")
	write(t, dir, "train/train.py", "print('train')\n")
	write(t, dir, "train/helper.py", "X = 1\n")
	return dir, func() map[string]string {
		res, ds := Compile(context.Background(), Options{Dir: dir, StopAfter: "graph"})
		require.False(t, ds.HasErrors(), "%v", ds)
		keys := map[string]string{}
		for _, s := range res.Plan.Steps {
			keys[s.Address] = s.CacheKey
		}
		return keys
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

// changed lists the addresses whose key differs.
func changed(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		if a[k] != v {
			out = append(out, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k+" (gone)")
		}
	}
	return sortStrings(out)
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestChangingOneSearchValueRekeysThatTrialAndDownstream(t *testing.T) {
	dir, keys := project(t, keySpec)
	before := keys()
	write(t, dir, "weir.cue", strings.Replace(keySpec, "l2: [0, 1]", "l2: [0, 2]", 1))
	after := keys()
	assert.Equal(t, []string{
		"models.m.register",
		"training.t.select",
		"training.t.trial[l2=1,lr=0.1] (gone)",
		"training.t.trial[l2=1,lr=0.2] (gone)",
		"training.t.trial[l2=2,lr=0.1]",
		"training.t.trial[l2=2,lr=0.2]",
	}, changed(before, after))
	assert.Equal(t, before["training.t.trial[l2=0,lr=0.1]"], after["training.t.trial[l2=0,lr=0.1]"])
}

func TestFormattingAndCommentsRekeyNothing(t *testing.T) {
	dir, keys := project(t, keySpec)
	before := keys()
	reformatted := "// A comment.\n" + strings.ReplaceAll(keySpec, ": ", ":   ") + "\n// trailing\n"
	write(t, dir, "weir.cue", reformatted)
	assert.Empty(t, changed(before, keys()))
}

func TestCodeChangesRekeyOnlyItsSteps(t *testing.T) {
	dir, keys := project(t, keySpec)
	before := keys()

	// A helper file in the code folder counts.
	write(t, dir, "train/helper.py", "X = 2\n")
	after := keys()
	assert.NotEqual(t, before["training.t.trial[l2=0,lr=0.1]"], after["training.t.trial[l2=0,lr=0.1]"])
	assert.Equal(t, before["datasets.d.ingest"], after["datasets.d.ingest"])

	// Bytecode caches, .git and .weirignore'd files do not.
	write(t, dir, "train/__pycache__/helper.cpython-311.pyc", "junk")
	write(t, dir, "train/.git/HEAD", "ref")
	write(t, dir, "train/.weirignore", "*.log\nscratch/\n")
	base := keys() // .weirignore itself is part of the code
	write(t, dir, "train/run.log", "noise")
	write(t, dir, "train/scratch/tmp.txt", "noise")
	assert.Empty(t, changed(base, keys()))
}

func TestCacheIgnoreAndDataContent(t *testing.T) {
	dir, keys := project(t, keySpec)
	before := keys()
	write(t, dir, "weir.cue", strings.Replace(keySpec, "verbose: true", "verbose: false", 1))
	assert.Empty(t, changed(before, keys()), "a cacheIgnore'd parameter re-keys nothing")

	write(t, dir, "weir.cue", keySpec)
	write(t, dir, "d.csv", "a\n2\n")
	after := keys()
	assert.NotEqual(t, before["datasets.d.ingest"], after["datasets.d.ingest"], "the data's content is in the key")
	assert.NotEqual(t, before["models.m.register"], after["models.m.register"])
}

func TestImageIsInTheKey(t *testing.T) {
	spec := strings.Replace(keySpec, `command: ["python3", "train.py"]`, `image: "python:3.12-slim"
	command: ["python3", "train.py"]`, 1)
	dir, keys := project(t, spec)
	before := keys()
	write(t, dir, "weir.cue", strings.Replace(spec, "python:3.12-slim", "python:3.13-slim", 1))
	assert.NotEqual(t, before["training.t.trial[l2=0,lr=0.1]"], keys()["training.t.trial[l2=0,lr=0.1]"])
}

func TestRandomSearchIsReproducible(t *testing.T) {
	spec := strings.Replace(keySpec, `search: {method: "grid", params: {lr: [0.1, 0.2], l2: [0, 1]}`,
		`search: {method: "random", seed: 3, budget: 4, params: {lr: {min: 0.001, max: 1, log: true}, depth: [2, 4, 8]}`, 1)
	_, keys := project(t, spec)
	a, b := keys(), keys()
	assert.Equal(t, a, b)
	n := 0
	for k := range a {
		if strings.Contains(k, ".trial[") {
			n++
		}
	}
	assert.Equal(t, 4, n)
}
