package builtin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/builtin"
	"weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/registry"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// services is a backend that hosts services in memory: it records what
// it is asked and keeps the traffic split as a real one would. The
// kubernetes backend's tests do the same against a real API server.
type services struct {
	backend.NoServices
	mu        sync.Mutex
	calls     []string
	revisions []backend.Revision
	deployed  *backend.Service
}

func (b *services) Describe(context.Context) (*backend.Description, error) {
	return &backend.Description{Name: "services", Services: true}, nil
}
func (b *services) Lower(context.Context, *schema.Step) (json.RawMessage, error) { return nil, nil }
func (b *services) Submit(context.Context, *backend.Task) (string, error) {
	return "", backend.ErrUnsupported
}
func (b *services) Watch(context.Context, string, func(backend.Event)) (*backend.Result, error) {
	return nil, backend.ErrNotFound
}
func (b *services) Cancel(context.Context, string, time.Duration) error { return backend.ErrNotFound }

func (b *services) Deploy(_ context.Context, s *backend.Service) (*backend.Deployment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "deploy "+s.Revision)
	b.deployed = s
	w := 0
	if len(b.revisions) == 0 {
		w = 100
	}
	found := false
	for _, r := range b.revisions {
		found = found || r.Name == s.Revision
	}
	if !found {
		b.revisions = append(b.revisions, backend.Revision{Name: s.Revision, Weight: w, Ready: true})
	}
	return &backend.Deployment{ID: s.Name, Endpoint: "http://127.0.0.1:9/" + s.Name, Revisions: append([]backend.Revision(nil), b.revisions...)}, nil
}

func (b *services) SetTraffic(_ context.Context, id string, split []backend.Split) (*backend.Deployment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var parts []string
	for _, s := range split {
		parts = append(parts, fmt.Sprintf("%s=%d", s.Revision, s.Weight))
	}
	b.calls = append(b.calls, "traffic "+strings.Join(parts, ","))
	for i := range b.revisions {
		b.revisions[i].Weight = 0
		for _, s := range split {
			if s.Revision == b.revisions[i].Name {
				b.revisions[i].Weight = s.Weight
			}
		}
	}
	return &backend.Deployment{ID: id, Revisions: append([]backend.Revision(nil), b.revisions...)}, nil
}

// rollout is a serving element with a canary of the given traffic steps.
func rollout(stages ...int) []*schema.Step {
	spec := &schema.Serving{Model: "models.m@production", Port: 9000,
		Server: &schema.Run{Command: []string{"serve"}, Env: map[string]schema.EnvVar{"MODE": {Value: "fast"}}},
		Canary: &schema.Canary{Steps: stages, Interval: "20ms"}}
	var steps []*schema.Step
	prev := []string{}
	for _, w := range stages {
		cfg, _ := json.Marshal(&schema.DeployConfig{Serving: "api", Model: "models.m", Alias: "production", Weight: w, Spec: spec})
		s := &schema.Step{Address: fmt.Sprintf("serving.api.canary[%d]", w), Kind: "canary", Element: "serving.api",
			Backend: "k8s", NoCache: true, Action: schema.ActionRun, Needs: prev, Config: cfg}
		steps = append(steps, s)
		prev = []string{s.Address}
	}
	return steps
}

func TestServeRollsOutACanary(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := state.Open(ctx, filepath.Join(dir, ".weir", "state.db"))
	require.NoError(t, err)
	defer db.Close()
	store, err := artifact.Open(filepath.Join(dir, ".weir", "artifacts"))
	require.NoError(t, err)
	reg := registry.New(db)
	be := &services{}
	apply := func(content string) *exec.Report {
		d, _, err := store.Put(strings.NewReader(content))
		require.NoError(t, err)
		mv, err := reg.Register(ctx, registry.RegisterRequest{Model: "m", ArtifactDigest: d})
		require.NoError(t, err)
		_, err = reg.Promote(ctx, "m", mv.Version, "production", "test", false)
		require.NoError(t, err)
		p := &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "t", Steps: rollout(10, 100)}
		rep, err := exec.Apply(ctx, p, exec.Options{ProjectDir: dir, WorkRoot: filepath.Join(dir, ".weir", "runs"),
			State: db, Store: store, Backends: map[string]backend.Interface{"k8s": be}, Builtins: builtin.Steps(),
			BaseEnv: map[string]string{"PATH": "/bin"}, RunID: fmt.Sprintf("run-%d", mv.Version)})
		require.NoError(t, err)
		return rep
	}

	rep := apply("weights v1")
	// The first revision takes all the traffic at once.
	assert.Equal(t, []string{"deploy v1", "traffic v1=100", "traffic v1=100"}, be.calls)
	assert.Equal(t, "v1: v1 100% at http://127.0.0.1:9/serving.api", rep.Steps[0].Message)
	svc := be.deployed
	assert.Equal(t, "serving.api", svc.Name)
	assert.Equal(t, []string{"serve"}, svc.Argv)
	assert.Equal(t, 9000, svc.Port)
	assert.Equal(t, "9000", svc.Env["PORT"])
	assert.Equal(t, "fast", svc.Env["MODE"])
	model, err := os.ReadFile(svc.Env["WEIR_INPUT_MODEL"])
	require.NoError(t, err)
	assert.Equal(t, "weights v1", string(model), "the model version's artifact is the input model")

	// A second version rolls out 10% then 100%, watched for the interval
	// in between; the old revision keeps the rest meanwhile.
	be.calls = nil
	start := time.Now()
	rep = apply("weights v2")
	assert.Equal(t, []string{"deploy v2", "traffic v2=10,v1=90", "traffic v2=100"}, be.calls)
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond, "the second share waits the canary's interval")
	assert.Equal(t, "v2: v1 90%, v2 10% at http://127.0.0.1:9/serving.api", rep.Steps[0].Message)
	assert.Equal(t, "v2: v2 100% at http://127.0.0.1:9/serving.api", rep.Steps[1].Message)
	for _, s := range rep.Steps {
		assert.Equal(t, state.StatusSucceeded, s.Status, s.Address)
	}
}

func TestServeNeedsAVersionAtTheAlias(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := state.Open(ctx, filepath.Join(dir, ".weir", "state.db"))
	require.NoError(t, err)
	defer db.Close()
	store, err := artifact.Open(filepath.Join(dir, ".weir", "artifacts"))
	require.NoError(t, err)
	p := &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "t", Steps: rollout(100)}
	rep, err := exec.Apply(ctx, p, exec.Options{ProjectDir: dir, WorkRoot: filepath.Join(dir, ".weir", "runs"),
		State: db, Store: store, Backends: map[string]backend.Interface{"k8s": &services{}}, Builtins: builtin.Steps(), RunID: "r"})
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Contains(t, rep.Steps[0].Message, "model m has no version at alias production yet: promote one (weir models promote m VERSION --to production)")
}
