// Package benchgen writes a synthetic Weir project for benchmarks: N
// pipelines of exactly 10 steps each, deterministic (the same arguments give
// the same bytes). testdata/bench/gen is its command; the loader's and the
// graph's Go benchmarks call it directly.
//
// Each pipeline pNNNN is one dataset (ingest, validate, profile: 3 steps),
// one feature set with a transform (1), one training with a 2x2 grid search
// (4 trials and a select: 5) and one model with gates and an alias
// (register: 1, and the alias as a resource). `weir validate` on the result
// prints N*10 steps and N resources.
//
// The project folder holds:
//
//	weir.cue                     the header (project, defaults, backends)
//	pipelines.cue                every pipeline (layout "single"), or
//	pNNNN.cue                    one file per pipeline (layout "split")
//	code/                        the code folder every transform and training shares
//	data/events.csv              the file source every dataset shares
//	cue.mod/module.cue           a module, so the cue CLI resolves imports
//	cue.mod/pkg/weir.dev/schema  the schema, vendored from schema/weir.cue
//	cuecheck/check.cue           the same check for the cue CLI (see below)
//
// # A fair check for the cue CLI
//
// Weir unifies the spec with the closed definition schema.#Project and
// decodes the result. cuecheck/check.cue does the same in plain CUE: it
// imports the spec's package and the vendored schema and emits
// `schema.#Project & spec`, so `cue export ./cuecheck` checks every element
// against the same closed schema (unknown fields at every level, types,
// bounds, patterns, required fields) and prints the whole checked spec as
// JSON. Column schemas and model gates are CUE constraints by design
// (`int & >=1`), which `cue export` refuses to print as data; check.cue
// therefore also unifies every dataset with one example row and every model
// with one example metric (two pattern constraints), which makes those
// fields concrete and checks each constraint against a value. That adds six
// small unifications per pipeline to CUE's work, next to the hundreds the
// schema costs. Weir never reads cuecheck/ (it reads the .cue files at the
// top of the project folder).
//
// GenerateLang writes the same spec in HCL (weir.hcl) or Jsonnet
// (weir.jsonnet), for comparing the front ends: the three give the same
// plan file byte for byte.
package benchgen

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// StepsPerPipeline is the number of steps the graph makes of one pipeline.
const StepsPerPipeline = 10

// Layouts of the spec files.
const (
	Single = "single" // all pipelines in pipelines.cue
	Split  = "split"  // one file per pipeline, pNNNN.cue
)

// Generate writes a project of n pipelines into dir, vendoring schemaCUE
// (the text of schema/weir.cue). The .cue files at the top of dir are
// replaced, so a smaller project does not keep a larger one's pipelines.
func Generate(dir string, n int, layout string, schemaCUE []byte) error {
	if n < 1 {
		return fmt.Errorf("benchgen: %d pipelines: need at least 1", n)
	}
	if layout != Single && layout != Split {
		return fmt.Errorf("benchgen: unknown layout %q: use %q or %q", layout, Single, Split)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.cue"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	files := map[string]string{
		"weir.cue":                             header(n),
		"cue.mod/module.cue":                   "module: \"bench.example/weir\"\nlanguage: version: \"v0.17.0\"\n",
		"cue.mod/pkg/weir.dev/schema/weir.cue": string(schemaCUE),
		"cuecheck/check.cue":                   checkFile,
	}
	for name, data := range codeFiles {
		files[name] = data
	}
	for name, data := range files {
		if err := write(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	if layout == Split {
		for i := 0; i < n; i++ {
			var b strings.Builder
			b.WriteString("package bench\n\n")
			pipeline(&b, i)
			if err := write(filepath.Join(dir, fmt.Sprintf("p%04d.cue", i)), b.String()); err != nil {
				return err
			}
		}
		return nil
	}
	f, err := os.Create(filepath.Join(dir, "pipelines.cue"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "package bench\n\n// %d pipelines, written by testdata/bench/gen: do not edit.\n", n)
	for i := 0; i < n; i++ {
		var b strings.Builder
		pipeline(&b, i)
		w.WriteString("\n")
		w.WriteString(b.String())
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func write(path, data string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(data), 0o644)
}

func header(n int) string {
	return fmt.Sprintf(`package bench

// A synthetic project of %d pipelines (%d steps) for weir's benchmarks,
// written by testdata/bench/gen: do not edit.
project:     "bench"
owner:       "team:ml-platform"
description: "Benchmark spec: %d pipelines of 10 steps."
labels: {team: "ml-platform", cost_center: "cc-42"}

defaults: {
	backend: "local"
	timeout: "30m"
	retries: 1
	resources: {cpu: 1, memory: "2Gi"}
}

backends: {
	local: {kind: "local", parallelism: 2}
	gpu: {kind: "kubernetes", namespace: "ml", gpuType: "nvidia.com/gpu", prices: {gpuHour: 2.5, cpuHour: 0.05}}
}
`, n, n*StepsPerPipeline, n)
}

// pipeline writes pipeline i: 10 steps.
func pipeline(b *strings.Builder, i int) {
	p := fmt.Sprintf("p%04d", i)
	fmt.Fprintf(b, `datasets: %[1]s_events: {
	description: "Events of pipeline %[1]s."
	source: {kind: "file", uri: "data/events.csv", format: "csv"}
	schema: {
		id:    int & >=1
		score: number & >=0 & <=1
		label: 0 | 1
		kind:  string & =~"^[a-z]+$"
	}
	checks: {
		minRows: %[2]d
		maxNullFraction: {id: 0, label: 0.01}
		unique: ["id"]
	}
	pii: ["kind"]
}

features: %[1]s_features: {
	from:   "datasets.%[1]s_events"
	entity: "id"
	ttl:    "24h"
	transform: {
		command: ["python3", "transform.py", "--pipeline", "%[1]s"]
		code:    "./code"
		env: {PIPELINE: "%[1]s", LOG_LEVEL: "info"}
	}
}

training: %[1]s_model: {
	features: "features.%[1]s_features"
	command: ["python3", "train.py"]
	code: "./code"
	resources: {cpu: 2, memory: "4Gi"}
	params: {epochs: %[3]d, batch_size: 256}
	search: {
		method: "grid"
		params: {lr: [0.01, 0.1], l2: [0, 0.001]}
		objective: {metric: "auc", goal: "maximize"}
		parallelism: 2
	}
}

models: %[1]s_model: {
	from:  "training.%[1]s_model"
	gates: {auc: >=0.7, latency_ms: <=50}
	approval: {required: true, approvers: ["team:risk"]}
	aliases: production: "latest"
}
`, p, 1+i%7, 5+i%10)
}

// checkFile is the cue CLI's check of the spec: see the package comment.
const checkFile = `// The spec checked against the closed schema, as weir checks it. In the
// project folder: cue export ./cuecheck
package cuecheck

import (
	"weir.dev/schema"
	spec "bench.example/weir:bench"
)

schema.#Project & spec & {
	// One example row and one example metric make the column schemas and
	// gates concrete, so cue export can print them as data.
	datasets: [_]: schema: {id: 1, score: 0.5, label: 1, kind: "click"}
	models: [_]: gates: {auc: 0.9, latency_ms: 20}
}
`
