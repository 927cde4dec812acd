package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// parityPlan is one pipeline of the step program: data from parameters, a
// model from the data, a report from the model, and a step running its
// code folder. Every step runs on the backend named "main".
func parityPlan(image string) *schema.Plan {
	step := func(addr string, argv []string, params map[string]any, outs []string, ins ...schema.Input) *schema.Step {
		s := &schema.Step{Address: addr, Kind: "task", Element: addr, Backend: "main", Action: schema.ActionRun,
			Run: &schema.StepRun{Image: image, Command: argv}, Params: params, Outputs: outs, Inputs: ins,
			CacheKey: schema.CacheKey(map[string]string{"address": addr, "image": image})}
		for _, in := range ins {
			s.Needs = append(s.Needs, in.Step)
		}
		return s
	}
	data := step("tasks.data", []string{"step", "io"}, map[string]any{"rows": 100, "seed": 7}, []string{"data"})
	model := step("tasks.model", []string{"step", "io"}, map[string]any{"lr": 0.1}, []string{"model", "summary"},
		schema.Input{Name: "data", Step: "tasks.data", Output: "data"})
	report := step("tasks.report", []string{"step", "io"}, nil, []string{"report"},
		schema.Input{Name: "model", Step: "tasks.model", Output: "model"},
		schema.Input{Name: "data", Step: "tasks.data", Output: "data"})
	code := step("tasks.code", []string{"step", "code"}, nil, []string{"out"})
	code.Run.Code = "train"
	return &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "parity", Steps: []*schema.Step{data, model, report, code}}
}

type parityRun struct {
	keys    map[string]string         // address -> cache key recorded
	outputs map[string][]state.Output // address -> outputs
	metrics map[string][]state.Metric
}

// applyOn applies the plan in a fresh project folder with be as "main".
func applyOn(t *testing.T, p *schema.Plan, be backend.Interface, path string) parityRun {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "train"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "train", "message.txt"), []byte("the same code\n"), 0o644))
	db, err := state.Open(ctx, filepath.Join(dir, ".weir", "state.db"))
	require.NoError(t, err)
	defer db.Close()
	store, err := artifact.Open(filepath.Join(dir, ".weir", "artifacts"))
	require.NoError(t, err)
	rep, err := exec.Apply(ctx, p, exec.Options{ProjectDir: dir, WorkRoot: filepath.Join(dir, ".weir", "runs"),
		State: db, Store: store, Backends: map[string]backend.Interface{"main": be}, Parallelism: 2,
		Grace: time.Second, BaseEnv: map[string]string{"PATH": path}, RunID: "parity-run"})
	if err != nil && rep != nil {
		for _, s := range rep.Steps {
			t.Logf("%s: %s %s", s.Address, s.Status, s.Message)
		}
	}
	require.NoError(t, err)
	out := parityRun{keys: map[string]string{}, outputs: map[string][]state.Output{}, metrics: map[string][]state.Metric{}}
	for _, s := range rep.Steps {
		require.Equal(t, state.StatusSucceeded, s.Status, "%s: %s", s.Address, s.Message)
		e, err := db.Execution(ctx, s.ExecID)
		require.NoError(t, err)
		out.keys[s.Address] = e.CacheKey
		out.outputs[s.Address] = s.Outputs
		ms, err := db.Metrics(ctx, s.ExecID)
		require.NoError(t, err)
		out.metrics[s.Address] = ms
		for _, o := range s.Outputs {
			require.NoError(t, store.Check(o.Digest, o.Size), "%s is in the store", o.Digest)
		}
	}
	return out
}

// TestParityLocalAndDocker: one pipeline applied on the local backend and
// on the Docker backend gives identical cache keys, output digests and
// metrics.
func TestParityLocalAndDocker(t *testing.T) {
	b := newBackend(t, docker.Options{Project: "parity"})
	img := stepImage(t, b)
	bin := stepProgram(t)
	path := filepath.Dir(bin) + ":/usr/local/bin:/usr/bin:/bin"

	loc := applyOn(t, parityPlan(img), local.New(0), path)
	dock := applyOn(t, parityPlan(img), b, path)

	assert.Len(t, loc.keys, 4)
	assert.Equal(t, loc.keys, dock.keys)
	assert.Equal(t, loc.outputs, dock.outputs)
	assert.Equal(t, loc.metrics, dock.metrics)
	for addr, outs := range loc.outputs {
		assert.NotEmpty(t, outs, addr)
	}
}
