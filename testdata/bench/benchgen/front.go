package benchgen

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Languages a project can be generated in: the spec is the same in each
// (the same IR, the same plan file), written as a hand-written spec in
// that language would be.
const (
	CUE     = "cue"
	HCL     = "hcl"
	Jsonnet = "jsonnet"
)

// Languages lists the languages GenerateLang writes.
var Languages = []string{CUE, HCL, Jsonnet}

// GenerateLang writes a project of n pipelines into dir in the language
// lang. CUE is Generate (with layout). HCL is one weir.hcl: a block per
// element, references to elements as HCL traversals (from =
// datasets.p0000_events), column schemas and gates as strings holding the
// CUE constraint ("int & >=1", ">=0.7"). Jsonnet is one weir.jsonnet: one
// object literal, its sections written one after another, references as
// address strings. HCL and Jsonnet take only the single layout; they get
// the code/ and data/ folders but no cue.mod or cuecheck/. The spec files
// of the other languages at the top of dir are removed, so the folder
// holds one spec.
func GenerateLang(dir string, n int, layout, lang string, schemaCUE []byte) error {
	if n < 1 {
		return fmt.Errorf("benchgen: %d pipelines: need at least 1", n)
	}
	switch lang {
	case CUE, HCL, Jsonnet:
	default:
		return fmt.Errorf("benchgen: unknown language %q: use %s", lang, strings.Join(Languages, ", "))
	}
	if lang != CUE && layout != Single {
		return fmt.Errorf("benchgen: %s specs are generated in the %q layout only", lang, Single)
	}
	for _, pat := range []string{"*.cue", "*.hcl", "weir.jsonnet"} {
		old, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	if lang == CUE {
		return Generate(dir, n, layout, schemaCUE)
	}
	for name, data := range codeFiles {
		if err := write(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	name, body := "weir.hcl", writeHCL
	if lang == Jsonnet {
		name, body = "weir.jsonnet", writeJsonnet
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	body(w, n)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// codeFiles are the files every language's project holds besides its spec.
var codeFiles = map[string]string{
	"code/transform.py": "# transform: reads WEIR_INPUT_DATA, writes WEIR_OUTPUT_FEATURES\n",
	"code/train.py":     "# train: reads WEIR_INPUT_FEATURES, writes WEIR_OUTPUT_MODEL\n",
	"data/events.csv":   "id,score,label,kind\n1,0.5,1,click\n2,0.25,0,view\n",
}

func writeHCL(w *bufio.Writer, n int) {
	fmt.Fprintf(w, `# A synthetic project of %d pipelines (%d steps) for weir's benchmarks,
# written by testdata/bench/gen: do not edit.
project     = "bench"
owner       = "team:ml-platform"
description = "Benchmark spec: %d pipelines of 10 steps."

labels {
  team        = "ml-platform"
  cost_center = "cc-42"
}

defaults {
  backend   = "local"
  timeout   = "30m"
  retries   = 1
  resources = { cpu = 1, memory = "2Gi" }
}

backend "local" {
  kind        = "local"
  parallelism = 2
}

backend "gpu" {
  kind      = "kubernetes"
  namespace = "ml"
  gpuType   = "nvidia.com/gpu"
  prices    = { gpuHour = 2.5, cpuHour = 0.05 }
}
`, n, n*StepsPerPipeline, n)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, `
dataset "%[1]s_events" {
  description = "Events of pipeline %[1]s."
  source      = { kind = "file", uri = "data/events.csv", format = "csv" }
  schema = {
    id    = "int & >=1"
    score = "number & >=0 & <=1"
    label = "0 | 1"
    kind  = "string & =~\"^[a-z]+$\""
  }
  checks = {
    minRows         = %[2]d
    maxNullFraction = { id = 0, label = 0.01 }
    unique          = ["id"]
  }
  pii = ["kind"]
}

feature "%[1]s_features" {
  from   = datasets.%[1]s_events
  entity = "id"
  ttl    = "24h"
  transform {
    command = ["python3", "transform.py", "--pipeline", "%[1]s"]
    code    = "./code"
    env     = { PIPELINE = "%[1]s", LOG_LEVEL = "info" }
  }
}

training "%[1]s_model" {
  features  = features.%[1]s_features
  command   = ["python3", "train.py"]
  code      = "./code"
  resources = { cpu = 2, memory = "4Gi" }
  params    = { epochs = %[3]d, batch_size = 256 }
  search {
    method      = "grid"
    params      = { lr = [0.01, 0.1], l2 = [0, 0.001] }
    objective   = { metric = "auc", goal = "maximize" }
    parallelism = 2
  }
}

model "%[1]s_model" {
  from     = training.%[1]s_model
  gates    = { auc = ">=0.7", latency_ms = "<=50" }
  approval = { required = true, approvers = ["team:risk"] }
  aliases  = { production = "latest" }
}
`, pipelineName(i), 1+i%7, 5+i%10)
	}
}

func writeJsonnet(w *bufio.Writer, n int) {
	fmt.Fprintf(w, `// A synthetic project of %d pipelines (%d steps) for weir's benchmarks,
// written by testdata/bench/gen: do not edit.
{
  project: 'bench',
  owner: 'team:ml-platform',
  description: 'Benchmark spec: %d pipelines of 10 steps.',
  labels: { team: 'ml-platform', cost_center: 'cc-42' },
  defaults: {
    backend: 'local',
    timeout: '30m',
    retries: 1,
    resources: { cpu: 1, memory: '2Gi' },
  },
  backends: {
    'local': { kind: 'local', parallelism: 2 },
    gpu: { kind: 'kubernetes', namespace: 'ml', gpuType: 'nvidia.com/gpu', prices: { gpuHour: 2.5, cpuHour: 0.05 } },
  },
`, n, n*StepsPerPipeline, n)
	section := func(name string, elem func(i int)) {
		fmt.Fprintf(w, "  %s: {\n", name)
		for i := 0; i < n; i++ {
			elem(i)
		}
		w.WriteString("  },\n")
	}
	section("datasets", func(i int) {
		fmt.Fprintf(w, `    %[1]s_events: {
      description: 'Events of pipeline %[1]s.',
      source: { kind: 'file', uri: 'data/events.csv', format: 'csv' },
      schema: {
        id: 'int & >=1',
        score: 'number & >=0 & <=1',
        label: '0 | 1',
        kind: 'string & =~"^[a-z]+$"',
      },
      checks: {
        minRows: %[2]d,
        maxNullFraction: { id: 0, label: 0.01 },
        unique: ['id'],
      },
      pii: ['kind'],
    },
`, pipelineName(i), 1+i%7)
	})
	section("features", func(i int) {
		fmt.Fprintf(w, `    %[1]s_features: {
      from: 'datasets.%[1]s_events',
      entity: 'id',
      ttl: '24h',
      transform: {
        command: ['python3', 'transform.py', '--pipeline', '%[1]s'],
        code: './code',
        env: { PIPELINE: '%[1]s', LOG_LEVEL: 'info' },
      },
    },
`, pipelineName(i))
	})
	section("training", func(i int) {
		fmt.Fprintf(w, `    %[1]s_model: {
      features: 'features.%[1]s_features',
      command: ['python3', 'train.py'],
      code: './code',
      resources: { cpu: 2, memory: '4Gi' },
      params: { epochs: %[2]d, batch_size: 256 },
      search: {
        method: 'grid',
        params: { lr: [0.01, 0.1], l2: [0, 0.001] },
        objective: { metric: 'auc', goal: 'maximize' },
        parallelism: 2,
      },
    },
`, pipelineName(i), 5+i%10)
	})
	section("models", func(i int) {
		fmt.Fprintf(w, `    %[1]s_model: {
      from: 'training.%[1]s_model',
      gates: { auc: '>=0.7', latency_ms: '<=50' },
      approval: { required: true, approvers: ['team:risk'] },
      aliases: { production: 'latest' },
    },
`, pipelineName(i))
	})
	w.WriteString("}\n")
}

func pipelineName(i int) string { return fmt.Sprintf("p%04d", i) }
