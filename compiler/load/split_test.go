package load

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

// forceSplit makes every spec eligible for splitting, one element a part,
// for the rest of the test.
func forceSplit(t *testing.T) {
	t.Helper()
	minBytes, part := splitMinBytes, partBytes
	splitMinBytes, partBytes = 0, 1
	t.Cleanup(func() { splitMinBytes, partBytes = minBytes, part })
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
	return dir
}

func readSpec(t *testing.T, dir string) []*specFile {
	t.Helper()
	names, ds := specFiles(dir)
	require.False(t, ds.HasErrors(), ds)
	files, err := readSpecFiles(dir, names)
	require.NoError(t, err)
	return files
}

// everything renders what a load produced, rules and source map included.
func everything(t *testing.T, p *schema.Project, sm schema.SourceMap) string {
	t.Helper()
	rules := map[string]any{}
	for n, d := range p.Datasets {
		rules["datasets."+n] = d.Rules
	}
	for n, m := range p.Models {
		rules["models."+n] = m.GateRules
	}
	b, err := json.MarshalIndent(map[string]any{"project": p, "rules": rules, "sources": sm}, "", " ")
	require.NoError(t, err)
	return string(b)
}

const splitHeader = `package weir

import "weir.dev/schema"

project: "demo"
let _img = "python:3.12-slim"
_code: "./code"
#Base: schema.#Training & {resources: {cpu: 1, memory: "1Gi"}}
defaults: image: _img
backends: gpu: {kind: "kubernetes"}
tasks: {}
`

// splittable are specs the loader cuts into parts; the parts must decode
// to exactly what the whole spec decodes to.
var splittable = map[string]map[string]string{
	"shared declarations, several elements a struct, one a line": {
		"weir.cue": splitHeader + `
datasets: {
	d1: {source: {kind: "file", uri: "d.csv"}, schema: {id: int & >=1, k: "a" | "b"}}, d2: {source: {kind: "file", uri: "e.csv"}}
	"d-3": {source: {kind: "sql", driver: "sqlite", dsn: {secret: "env:DSN"}, query: "select 1"}}
}
training: t: #Base & {
	features: ["datasets.d1", "datasets.d2"]
	command: ["python3", "t.py"]
	code: _code
	search: {method: "grid", params: {lr: [0.1, 0.2]}, objective: {metric: "auc", goal: "maximize"}}
	let k = 3
	params: {n: k, m: params.n + 1}
}
models: m: {from: "training.t", gates: {auc: >=0.8, "p-99": <=50}, aliases: {prod: "latest", old: 2}}
`,
	},
	"an element in two files, an import only one element uses": {
		"a.cue": splitHeader + `
datasets: d: source: {kind: "file", uri: "d.csv"}
features: f: {from: "datasets.d", transform: {command: ["x"]}}
`,
		"b.cue": `package weir

import "strings"

datasets: d: schema: {id: int}
features: g: {from: "datasets.d", entity: strings.ToLower("ID")}
`,
	},
}

func TestSplitSameAsWhole(t *testing.T) {
	forceSplit(t)
	for name, files := range splittable {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, files)
			names, _ := specFiles(dir)
			want, wantSM, ds := evaluate(dir, names)
			require.Empty(t, ds)
			got, gotSM, ok := evaluateSplit(context.Background(), dir, readSpec(t, dir), "")
			require.True(t, ok, "the spec was not split")
			require.Equal(t, everything(t, want, wantSM), everything(t, got, gotSM))
		})
	}
	for _, layout := range []string{benchgen.Single, benchgen.Split} {
		t.Run("bench "+layout, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, benchgen.Generate(dir, 7, layout, schema.CUE))
			names, _ := specFiles(dir)
			want, wantSM, ds := evaluate(dir, names)
			require.Empty(t, ds)
			plan := planSplit(readSpecParsed(t, dir), partBytes, 1)
			require.NotNil(t, plan)
			require.Len(t, plan.parts, 7*4)
			got, gotSM, ok := evaluateSplit(context.Background(), dir, readSpec(t, dir), "")
			require.True(t, ok, "the spec was not split")
			require.Equal(t, everything(t, want, wantSM), everything(t, got, gotSM))
		})
	}
}

func readSpecParsed(t *testing.T, dir string) []*specFile {
	files := readSpec(t, dir)
	require.True(t, parseSpecFiles(files))
	return files
}

// TestSplitRefuses lists specs whose meaning could change if cut into
// parts: they are evaluated whole.
func TestSplitRefuses(t *testing.T) {
	const ds = `datasets: d: {source: {kind: "file", uri: "d.csv"}}
`
	for name, spec := range map[string]string{
		"element refers to another":         ds + `datasets: e: {source: datasets.d.source}`,
		"element refers to a section":       ds + `datasets: e: {source: {kind: "file", uri: "\(len(datasets))"}}`,
		"element refers to a sibling":       `datasets: {d: {source: {kind: "file", uri: "d.csv"}}, e: {source: d.source}}`,
		"top level refers to a section":     ds + `_n: len(datasets)`,
		"top-level comprehension":           ds + `for k, v in datasets {features: "\(k)": {from: "datasets.\(k)"}}`,
		"top-level embedding":               ds + `{datasets: e: {source: {kind: "file", uri: "e.csv"}}}`,
		"section pattern":                   ds + `datasets: [string]: checks: minRows: 1`,
		"section comprehension":             `datasets: {for n in ["a", "b"] {(n): {source: {kind: "file", uri: n}}}}`,
		"section is a reference":            `_all: {d: {source: {kind: "file", uri: "d.csv"}}}` + "\n" + `datasets: _all`,
		"aliased section":                   `D=datasets: d: {source: {kind: "file", uri: "d.csv"}}` + "\n" + `datasets: e: D.d`,
		"dynamic element label":             `datasets: ("d"): {source: {kind: "file", uri: "d.csv"}}`,
		"optional element":                  `datasets: d?: {source: {kind: "file", uri: "d.csv"}}`,
		"hidden field in a section":         `datasets: {_x: 1, d: {source: {kind: "file", uri: "d.csv"}}}`,
		"let in a section, used by element": `datasets: {let s = {kind: "file", uri: "d.csv"}, d: {source: s}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"weir.cue": "project: \"demo\"\n" + spec + "\n" + `datasets: z: {source: {kind: "file", uri: "z.csv"}}` + "\n"})
			require.Nil(t, planSplit(readSpecParsed(t, dir), 1, 1))
		})
	}
}

// TestSplitFailsOnErrors checks that a spec with an error is never decoded
// from parts (the whole evaluation then reports the errors).
func TestSplitFailsOnErrors(t *testing.T) {
	forceSplit(t)
	const ok = `datasets: ok: {source: {kind: "file", uri: "d.csv"}}
`
	for name, spec := range map[string]string{
		"unknown field in an element": `datasets: d: {source: {kind: "file", uri: "d.csv"}, bogus: 1}`,
		"unknown nested field":        `datasets: d: {source: {kind: "file", uri: "d.csv", bogus: 1}}`,
		"unknown top-level field":     `bogus: 1`,
		"unknown section":             `traning: t: {features: "datasets.ok", command: ["x"]}`,
		"missing required field":      `datasets: d: {schema: {id: int}}`,
		"missing required, nested":    `training: t: {features: "datasets.ok", command: ["x"], search: {method: "grid", params: {a: [1]}}}`,
		"conflict":                    `datasets: d: {source: {kind: "ftp", uri: "d.csv"}}`,
		"bound":                       `training: t: {features: "datasets.ok", command: ["x"], resources: gpu: -1}`,
		"incomplete value":            `training: t: {features: "datasets.ok", command: ["x"], image: string}`,
		"bad element name":            `datasets: "bad name": {source: {kind: "file", uri: "d.csv"}}`,
		"unsupported constraint":      `datasets: d: {source: {kind: "file", uri: "d.csv"}, schema: {id: int | string}}`,
		"empty search values":         `training: t: {features: "datasets.ok", command: ["x"], search: {method: "grid", params: {a: []}, objective: {metric: "m", goal: "maximize"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"weir.cue": "project: \"demo\"\n" + ok + spec + "\n"})
			_, _, split := evaluateSplit(context.Background(), dir, readSpec(t, dir), "")
			require.False(t, split)
			names, _ := specFiles(dir)
			_, _, ds := evaluate(dir, names)
			require.True(t, ds.HasErrors(), "the whole spec must fail too")
		})
	}
	t.Run("a file with only an unused import", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{
			"a.cue": "package weir\nproject: \"demo\"\n" + ok + `datasets: e: {source: {kind: "file", uri: "e.csv"}}` + "\n",
			"b.cue": "package weir\nimport \"strings\"\n",
		})
		_, _, split := evaluateSplit(context.Background(), dir, readSpec(t, dir), "")
		require.False(t, split)
		names, _ := specFiles(dir)
		_, _, ds := evaluate(dir, names)
		require.True(t, ds.HasErrors(), "the whole spec must fail too")
	})
	t.Run("missing project", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"weir.cue": ok + `datasets: e: {source: {kind: "file", uri: "e.csv"}}` + "\n"})
		_, _, split := evaluateSplit(context.Background(), dir, readSpec(t, dir), "")
		require.False(t, split)
	})
}

// TestLoadSplitDiagnostics checks Load end to end on a spec that would be
// split but has an error: the diagnostics are those of the whole spec.
func TestLoadSplitDiagnostics(t *testing.T) {
	forceSplit(t)
	spec := "project: \"demo\"\n" + strings.Repeat("", 0) +
		`datasets: a: {source: {kind: "file", uri: "a.csv"}}
datasets: b: {source: {kind: "file", uri: "b.csv"}, shema: {}}
`
	dir := writeFiles(t, map[string]string{"weir.cue": spec})
	_, ds := Load(context.Background(), dir, Options{})
	require.Len(t, ds, 1)
	require.Equal(t, `weir.cue:3:53: unknown field "shema" in datasets.b (did you mean "schema"?)`, ds[0].String())
}

// TestWrittenConstraints checks which constraints are compiled from their
// text alone.
func TestWrittenConstraints(t *testing.T) {
	for name, c := range map[string]struct {
		spec string
		want map[string]string
	}{
		"closed forms": {
			`datasets: d: {source: {kind: "file", uri: "d.csv"}, schema: {a: int & >=1, b:   "x"|"y", c: string & =~"^a" | null}}
models: m: {from: "training.t", gates: auc: >=0.8}`,
			map[string]string{"datasets.d.schema.a": "int & >=1", "datasets.d.schema.b": `"x"|"y"`, "datasets.d.schema.c": `string & =~"^a" | null`, "models.m.gates.auc": ">=0.8"},
		},
		"references and defaults": {
			`_min: 1
datasets: d: {source: {kind: "file", uri: "d.csv"}, schema: {a: int & >=_min, b: *"x" | "y", c: len("ab")}}`,
			map[string]string{},
		},
		"a column written twice, a shadowing let": {
			`datasets: d: {source: {kind: "file", uri: "d.csv"}, schema: {a: int, a: >=1, b: {let int = string, x: int}.x}}`,
			map[string]string{},
		},
		"an element written twice": {
			`datasets: d: {source: {kind: "file", uri: "d.csv"}, schema: {a: int}}
datasets: d: schema: a: >=1`,
			map[string]string{},
		},
		"a top-level field named like a type": {
			`int: string
datasets: d: {source: {kind: "file", uri: "d.csv"}, schema: {a: int}}`,
			nil,
		},
		"a top-level let named like a type": {
			`let number = string
datasets: d: {source: {kind: "file", uri: "d.csv"}, schema: {a: int}}`,
			nil,
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"weir.cue": "project: \"demo\"\n" + c.spec + "\n" + `datasets: z: {source: {kind: "file", uri: "z.csv"}}` + "\n"})
			files := readSpecParsed(t, dir)
			for _, f := range files {
				require.True(t, analyseFile(f))
			}
			got := writtenConstraints(files)
			if c.want == nil {
				require.Nil(t, got)
				return
			}
			require.Equal(t, c.want, got)
		})
	}
}

// TestPartCache checks that an edit to one element re-evaluates only the
// part holding it, and that the result is what a fresh load gives.
func TestPartCache(t *testing.T) {
	minBytes, part := splitMinBytes, partBytes
	splitMinBytes, partBytes = 0, 2<<10
	t.Cleanup(func() { splitMinBytes, partBytes = minBytes, part })
	dir := t.TempDir()
	require.NoError(t, benchgen.Generate(dir, 40, benchgen.Single, schema.CUE))
	cache := t.TempDir()
	before := partsEvaluated.Load()
	res, ds := Load(context.Background(), dir, Options{CacheDir: cache})
	require.Empty(t, ds)
	parts := partsEvaluated.Load() - before
	require.Greater(t, parts, int64(4), "the spec was not split")
	entries, _ := filepath.Glob(filepath.Join(cache, "part-*.bin"))
	require.Len(t, entries, int(parts))

	// Unchanged: the whole-spec entry answers.
	before = partsEvaluated.Load()
	again, ds := Load(context.Background(), dir, Options{CacheDir: cache})
	require.Empty(t, ds)
	require.True(t, again.Cached)
	require.Zero(t, partsEvaluated.Load()-before)

	// One element edited (and the lines after it moved): one part again.
	spec := filepath.Join(dir, "pipelines.cue")
	b := mustRead(t, spec)
	edited := strings.Replace(string(b), "minRows: 4\n", "minRows: 44\n\n\n", 1)
	require.NotEqual(t, string(b), edited)
	require.NoError(t, os.WriteFile(spec, []byte(edited), 0o644))
	before = partsEvaluated.Load()
	got, ds := Load(context.Background(), dir, Options{CacheDir: cache})
	require.Empty(t, ds)
	require.False(t, got.Cached)
	require.Equal(t, int64(1), partsEvaluated.Load()-before)
	fresh, ds := Load(context.Background(), dir, Options{})
	require.Empty(t, ds)
	require.Equal(t, fresh.SpecHash, got.SpecHash)
	require.Equal(t, everything(t, fresh.Project, fresh.Sources), everything(t, got.Project, got.Sources))
	require.NotEqual(t, res.SpecHash, got.SpecHash)
	entries, _ = filepath.Glob(filepath.Join(cache, "part-*.bin"))
	require.Len(t, entries, int(parts), "the replaced part's entry is pruned")

	// The header changes what every part sees.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "weir.cue"), append(mustRead(t, filepath.Join(dir, "weir.cue")), "\nlabels: extra: \"x\"\n"...), 0o644))
	before = partsEvaluated.Load()
	_, ds = Load(context.Background(), dir, Options{CacheDir: cache})
	require.Empty(t, ds)
	require.Equal(t, parts, partsEvaluated.Load()-before)
}
