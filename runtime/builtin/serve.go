package builtin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"weir.dev/weir/runtime/backend"
	wexec "weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/registry"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// DefaultPort is the port a model server listens on when the serving
// element names none.
const DefaultPort = 8080

// servingRun is what the first step of a serving element's rollout keeps
// for the later ones of the same apply.
type servingRun struct {
	id, rev, old string
	endpoint     string
}

type servingKey struct{ name string }

// serve applies a deploy or canary step on a backend that hosts services
// (its Description says Services): it resolves the model version the
// serving element names (its alias, else the newest version not rejected),
// places the version's artifact in the step's work folder as the input
// "model", and asks the backend to deploy a revision named after the
// version ("v3") running the element's server under the step contract
// (WEIR_INPUT_MODEL, PORT). The first step of a rollout deploys; each step
// then gives the new revision its share of the traffic and the rest to the
// revision that had the most before. A canary step after the first waits
// the canary's interval first, so each share is watched that long.
//
// The rollback SLOs (canary.rollbackOn) are not checked yet: they need the
// monitor, which is not built; the log says so.
func serve(ctx context.Context, c *wexec.Call) (*wexec.BuiltinResult, error) {
	s := c.Step
	cfg, err := config[schema.DeployConfig](s)
	if err != nil {
		return nil, err
	}
	if err := hasServer(cfg); err != nil {
		return nil, err
	}
	be := c.Run.Backend(s.Backend)
	if be == nil {
		return nil, fmt.Errorf("backend %s is not available in this weir", s.Backend)
	}
	model := strings.TrimPrefix(cfg.Model, "models.")
	mv, err := servedVersion(ctx, c.State, model, cfg.Alias)
	if err != nil {
		return nil, err
	}
	rev := fmt.Sprintf("v%d", mv.Version)
	key := servingKey{cfg.Serving}
	var run *servingRun
	if v, ok := c.Run.Value(key); ok && v.(*servingRun).rev == rev {
		run = v.(*servingRun)
		if d := interval(cfg.Spec); d > 0 {
			fmt.Fprintf(c.Log, "watching %s for %s before moving to %d%%\n", rev, d, cfg.Weight)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	} else {
		svc, err := service(ctx, c, cfg, mv)
		if err != nil {
			return nil, err
		}
		dep, err := be.Deploy(ctx, svc)
		if err != nil {
			return nil, fmt.Errorf("deploying %s %s on backend %s: %w", svc.Name, rev, s.Backend, err)
		}
		run = &servingRun{id: dep.ID, rev: rev, old: busiestOther(dep, rev), endpoint: dep.Endpoint}
		c.Run.SetValue(key, run)
		fmt.Fprintf(c.Log, "deployed %s %s (model %s v%d) as %s\n", svc.Name, rev, model, mv.Version, dep.ID)
	}
	if cfg.Spec.Canary != nil && cfg.Spec.Canary.RollbackOn != nil {
		fmt.Fprintln(c.Log, "note: canary.rollbackOn is not checked: the monitor is not built yet")
	}
	weight := cfg.Weight
	split := trafficSplit(rev, run.old, weight)
	dep, err := be.SetTraffic(ctx, run.id, split)
	if err != nil {
		return nil, fmt.Errorf("moving %d%% of %s's traffic to %s: %w", weight, run.id, rev, err)
	}
	if dep.Endpoint != "" {
		run.endpoint = dep.Endpoint
	}
	msg := rev + ": " + trafficText(dep)
	if run.endpoint != "" {
		msg += " at " + run.endpoint
	}
	if dep.Message != "" {
		msg += " (" + dep.Message + ")"
	}
	fmt.Fprintln(c.Log, msg)
	return &wexec.BuiltinResult{Message: msg}, nil
}

// servedVersion is the version an alias points at, or without one the
// newest version that was not rejected.
func servedVersion(ctx context.Context, db *state.DB, model, alias string) (*state.ModelVersion, error) {
	reg := registry.New(db)
	if alias != "" {
		mv, err := reg.Resolve(ctx, model, alias)
		if errors.Is(err, state.ErrNotFound) {
			return nil, fmt.Errorf("model %s has no version at alias %s yet: promote one (weir models promote %s VERSION --to %s)", model, alias, model, alias)
		}
		return mv, err
	}
	vs, err := reg.Versions(ctx, model)
	if err != nil {
		return nil, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Status != state.ModelRejected {
			return vs[i], nil
		}
	}
	return nil, fmt.Errorf("model %s has no version that passed its gates", model)
}

// service is the revision to deploy (DeployService) with the model
// version's artifact placed where its input "model" says.
func service(ctx context.Context, c *wexec.Call, cfg *schema.DeployConfig, mv *state.ModelVersion) (*backend.Service, error) {
	svc, err := DeployService(cfg, mv.Version, ServiceEnv{RunID: c.Run.ID, Step: c.Step.Address,
		WorkDir: filepath.Dir(c.OutDir), ProjectDir: c.ProjectDir, BaseEnv: c.Run.BaseEnv(), Secret: c.Run.Secret})
	if err != nil {
		return nil, err
	}
	isDir := false
	if mv.ExecutionID != 0 {
		if e, err := c.State.Execution(ctx, mv.ExecutionID); err == nil {
			for _, o := range e.Outputs {
				if o.Digest == mv.ArtifactDigest {
					isDir = o.IsDir
				}
			}
		}
	}
	if err := c.Store.Materialize(mv.ArtifactDigest, svc.Inputs["model"], isDir); err != nil {
		return nil, fmt.Errorf("model %s v%d: its artifact %s: %w", mv.Model, mv.Version, mv.ArtifactDigest, err)
	}
	return svc, nil
}

// ServiceEnv is where a deploy step's server is deployed from: what its
// environment and folders come from.
type ServiceEnv struct {
	// RunID and Step are the run and the step's address (WEIR_RUN_ID,
	// WEIR_STEP).
	RunID, Step string
	// WorkDir is the step's work folder: the model's artifact goes to
	// WorkDir/in/model and the server's log to WorkDir/service.log.
	WorkDir string
	// ProjectDir is the project's folder (server.code is relative to it).
	ProjectDir string
	// BaseEnv is the environment every step starts from.
	BaseEnv map[string]string
	// Secret resolves the secret references of server.env; nil resolves
	// none (a reference is then an error).
	Secret func(ref string) (string, error)
}

// DeployService is the revision a deploy or canary step deploys when it
// serves version of its model: named after the version ("v3"), running the
// serving element's server (server.command, image, env with its secrets
// resolved, resources, port, autoscale) under the step contract, with the
// input "model" at WorkDir/in/model (DeployService does not put the
// artifact there). The apply (serve) and the plan (PlanRollout) build the
// revision through it, so the plan compares with the cluster what apply
// deploys.
func DeployService(cfg *schema.DeployConfig, version int, e ServiceEnv) (*backend.Service, error) {
	if err := hasServer(cfg); err != nil {
		return nil, err
	}
	srv := cfg.Spec.Server
	work := e.WorkDir
	modelPath := filepath.Join(work, "in", "model")
	port := cfg.Spec.Port
	if port == 0 {
		port = DefaultPort
	}
	env := map[string]string{}
	for k, v := range e.BaseEnv {
		env[k] = v
	}
	for k, v := range srv.Env {
		if v.Secret == "" {
			env[k] = v.Value
			continue
		}
		if e.Secret == nil {
			return nil, fmt.Errorf("serving.%s server.env %s: no way to resolve secret %s", cfg.Serving, k, v.Secret)
		}
		val, err := e.Secret(v.Secret)
		if err != nil {
			return nil, fmt.Errorf("serving.%s server.env %s: %w", cfg.Serving, k, err)
		}
		env[k] = val
	}
	env["WEIR_RUN_ID"] = e.RunID
	env["WEIR_STEP"] = e.Step
	env["WEIR_INPUT_MODEL"] = modelPath
	env["PORT"] = strconv.Itoa(port)
	dir := work
	if srv.Code != "" {
		dir = filepath.Join(e.ProjectDir, srv.Code)
	}
	svc := &backend.Service{Name: "serving." + cfg.Serving, Revision: fmt.Sprintf("v%d", version), Argv: srv.Command, WorkDir: work, Dir: dir,
		Env: env, Inputs: map[string]string{"model": modelPath}, Image: srv.Image, Resources: srv.Resources, Port: port,
		LogPath: filepath.Join(work, "service.log")}
	if a := cfg.Spec.Autoscale; a != nil {
		svc.MaxReplicas = a.Max
		if a.Min != nil {
			svc.MinReplicas = *a.Min
		}
	}
	return svc, nil
}

func hasServer(cfg *schema.DeployConfig) error {
	if cfg.Spec == nil || cfg.Spec.Server == nil || len(cfg.Spec.Server.Command) == 0 {
		return fmt.Errorf("serving.%s names no server (server.command) to deploy", cfg.Serving)
	}
	return nil
}

// trafficSplit is the split a rollout step sets: weight to rev and the
// rest to old, the revision that had the most traffic before; with no such
// revision, rev takes all the traffic.
func trafficSplit(rev, old string, weight int) []backend.Split {
	split := []backend.Split{{Revision: rev, Weight: weight}}
	if old == "" {
		split[0].Weight = 100
	} else if weight < 100 {
		split = append(split, backend.Split{Revision: old, Weight: 100 - weight})
	}
	return split
}

// busiestOther is the revision other than rev with the most traffic.
func busiestOther(d *backend.Deployment, rev string) string {
	best, w := "", 0
	for _, r := range d.Revisions {
		if r.Name != rev && r.Weight > w {
			best, w = r.Name, r.Weight
		}
	}
	return best
}

// trafficText is "v3 50%, v2 50%": the revisions that get traffic, most
// first.
func trafficText(d *backend.Deployment) string {
	rs := append([]backend.Revision(nil), d.Revisions...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Weight > rs[j].Weight })
	var parts []string
	for _, r := range rs {
		if r.Weight > 0 {
			parts = append(parts, fmt.Sprintf("%s %d%%", r.Name, r.Weight))
		}
	}
	if len(parts) == 0 {
		return "no traffic"
	}
	return strings.Join(parts, ", ")
}

// interval is how long each canary share is watched.
func interval(s *schema.Serving) time.Duration {
	if s.Canary == nil || s.Canary.Interval == "" {
		return 0
	}
	d, err := time.ParseDuration(s.Canary.Interval)
	if err != nil {
		return 0
	}
	return d
}
