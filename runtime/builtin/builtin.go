// Package builtin holds the steps Weir runs itself: ingest, validate and
// profile a dataset, materialize features without user code, select the best
// trial of a search, register a model version behind its gates; and the
// resource changes apply makes (model aliases). It plugs into runtime/exec
// and never imports the compiler, CUE or OPA.
package builtin

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"weir.dev/weir/runtime/data"
	wexec "weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/registry"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// Steps returns the builtin steps by kind.
func Steps() map[string]wexec.BuiltinFunc {
	return map[string]wexec.BuiltinFunc{
		"ingest":      ingest,
		"validate":    validate,
		"profile":     profile,
		"materialize": materialize,
		"select":      selectBest,
		"register":    register,
		// deploy and canary steps have no user code: on a backend that
		// hosts services the executor runs them here (see serve).
		"deploy": serve,
		"canary": serve,
	}
}

func config[T any](s *schema.Step) (*T, error) {
	var v T
	if err := json.Unmarshal(s.Config, &v); err != nil {
		return nil, fmt.Errorf("%s: bad step config: %v", s.Address, err)
	}
	return &v, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func ingest(ctx context.Context, c *wexec.Call) (*wexec.BuiltinResult, error) {
	cfg, err := config[schema.IngestConfig](c.Step)
	if err != nil {
		return nil, err
	}
	got, err := data.Ingest(ctx, cfg.Source, c.ProjectDir, filepath.Join(c.OutDir, "data"))
	if err != nil {
		return nil, err
	}
	if cfg.SourceDigest != "" && cfg.Source.Kind == "file" && got.Digest != cfg.SourceDigest {
		return nil, fmt.Errorf("%s changed since the plan was made (plan: %s, now: %s): run weir plan again", cfg.Source.URI, cfg.SourceDigest, got.Digest)
	}
	fmt.Fprintf(c.Log, "ingested %s: %d bytes, %s\n", cfg.Source.URI, got.Size, got.Digest)
	return &wexec.BuiltinResult{Metrics: []state.Metric{{Name: "bytes", Value: float64(got.Size)}},
		Message: fmt.Sprintf("%d bytes from %s", got.Size, cfg.Source.URI)}, nil
}

func validate(ctx context.Context, c *wexec.Call) (*wexec.BuiltinResult, error) {
	cfg, err := config[schema.ValidateConfig](c.Step)
	if err != nil {
		return nil, err
	}
	rep, err := data.Validate(ctx, c.Inputs["data"], *cfg)
	if err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(c.OutDir, "report"), rep); err != nil {
		return nil, err
	}
	metrics := []state.Metric{{Name: "rows", Value: float64(rep.Rows)}, {Name: "violations", Value: float64(rep.ViolationCount)}}
	if !rep.OK() {
		var lines []string
		for i, v := range rep.Violations {
			if i == 10 {
				lines = append(lines, fmt.Sprintf("... and %d more (see the report)", rep.ViolationCount-10))
				break
			}
			lines = append(lines, violationText(v))
		}
		for _, ch := range rep.Checks {
			if !ch.OK {
				lines = append(lines, ch.Check+": "+ch.Message)
			}
		}
		for _, l := range lines {
			fmt.Fprintln(c.Log, l)
		}
		return &wexec.BuiltinResult{Metrics: metrics}, &wexec.StepError{Message: rep.Summary(), LogTail: lines}
	}
	fmt.Fprintln(c.Log, rep.Summary())
	return &wexec.BuiltinResult{Metrics: metrics, Message: rep.Summary()}, nil
}

func profile(ctx context.Context, c *wexec.Call) (*wexec.BuiltinResult, error) {
	cfg, err := config[schema.ProfileConfig](c.Step)
	if err != nil {
		return nil, err
	}
	p, err := data.Profile(ctx, c.Inputs["data"], *cfg)
	if err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(c.OutDir, "profile"), p); err != nil {
		return nil, err
	}
	return &wexec.BuiltinResult{Message: fmt.Sprintf("%d columns profiled", len(p.Columns))}, nil
}

// materialize keeps the configured columns of a CSV (all but the excluded,
// personal-data ones by default).
func materialize(ctx context.Context, c *wexec.Call) (*wexec.BuiltinResult, error) {
	cfg, err := config[schema.MaterializeConfig](c.Step)
	if err != nil {
		return nil, err
	}
	in, err := os.Open(c.Inputs["data"])
	if err != nil {
		return nil, err
	}
	defer in.Close()
	r := csv.NewReader(in)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the header: %v", err)
	}
	idx := map[string]int{}
	for i, h := range header {
		idx[h] = i
	}
	keep := cfg.Columns
	if len(keep) == 0 {
		excl := map[string]bool{}
		for _, e := range cfg.Exclude {
			excl[e] = true
		}
		for _, h := range header {
			if !excl[h] {
				keep = append(keep, h)
			}
		}
	}
	cols := make([]int, len(keep))
	for i, k := range keep {
		j, ok := idx[k]
		if !ok {
			return nil, fmt.Errorf("column %q is not in the data (columns: %s)", k, strings.Join(header, ", "))
		}
		cols[i] = j
	}
	out, err := os.Create(filepath.Join(c.OutDir, "features"))
	if err != nil {
		return nil, err
	}
	w := csv.NewWriter(out)
	w.Write(keep)
	rec := make([]string, len(cols))
	rows := 0
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			out.Close()
			return nil, err
		}
		for i, j := range cols {
			rec[i] = row[j]
		}
		w.Write(rec)
		rows++
	}
	w.Flush()
	if err := w.Error(); err != nil {
		out.Close()
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	return &wexec.BuiltinResult{Metrics: []state.Metric{{Name: "rows", Value: float64(rows)}},
		Message: fmt.Sprintf("%d rows, %d columns", rows, len(keep))}, nil
}

// lastValues keeps the last value reported for each metric.
func lastValues(ms []state.Metric) map[string]float64 {
	out := map[string]float64{}
	step := map[string]int64{}
	for _, m := range ms {
		if s, ok := step[m.Name]; !ok || m.Step >= s {
			out[m.Name], step[m.Name] = m.Value, m.Step
		}
	}
	return out
}

// selectBest picks the trial with the best objective and hands its outputs
// on unchanged.
func selectBest(ctx context.Context, c *wexec.Call) (*wexec.BuiltinResult, error) {
	cfg, err := config[schema.SelectConfig](c.Step)
	if err != nil {
		return nil, err
	}
	best, bestVal := "", 0.0
	var bestOuts []state.Output
	var bestMetrics map[string]float64
	var missing []string
	for _, t := range cfg.Trials {
		id, outs, ok := c.Run.Upstream(t)
		if !ok {
			return nil, fmt.Errorf("trial %s has no result", t)
		}
		ms, err := c.State.Metrics(ctx, id)
		if err != nil {
			return nil, err
		}
		vals := lastValues(ms)
		v, ok := vals[cfg.Objective.Metric]
		if !ok {
			missing = append(missing, t)
			continue
		}
		fmt.Fprintf(c.Log, "%s: %s = %g\n", t, cfg.Objective.Metric, v)
		better := best == "" || (cfg.Objective.Goal == "maximize" && v > bestVal) || (cfg.Objective.Goal == "minimize" && v < bestVal)
		if better {
			best, bestVal, bestOuts, bestMetrics = t, v, outs, vals
		}
	}
	if best == "" {
		return nil, &wexec.StepError{Message: fmt.Sprintf("no trial reported the objective metric %q to WEIR_METRICS", cfg.Objective.Metric)}
	}
	if len(missing) > 0 {
		fmt.Fprintf(c.Log, "trials without %s (ignored): %s\n", cfg.Objective.Metric, strings.Join(missing, ", "))
	}
	passed := map[string]state.Output{}
	for _, o := range bestOuts {
		passed[o.Name] = o
	}
	var metrics []state.Metric
	for _, k := range sortedKeys(bestMetrics) {
		metrics = append(metrics, state.Metric{Name: k, Value: bestMetrics[k]})
	}
	trial := strings.TrimPrefix(best, c.Step.Element+".")
	fmt.Fprintf(c.Log, "best: %s\n", best)
	return &wexec.BuiltinResult{Outputs: passed, Metrics: metrics,
		Message: fmt.Sprintf("best %s: %s = %.4g", trial, cfg.Objective.Metric, bestVal)}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// register creates a model version from the trained model, checks its gates
// against the evaluation's metrics (then the chosen trial's), and records its
// lineage. Registering the same model content again reuses its version.
func register(ctx context.Context, c *wexec.Call) (*wexec.BuiltinResult, error) {
	cfg, err := config[schema.RegisterConfig](c.Step)
	if err != nil {
		return nil, err
	}
	model, ok := c.InputOutputs["model"]
	if !ok {
		for _, o := range c.InputOutputs {
			model, ok = o, true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("no model to register: training %s produced no output", cfg.Training)
	}
	metrics := map[string]float64{}
	for _, in := range c.Step.Inputs {
		if id, _, ok := c.Run.Upstream(in.Step); ok {
			ms, _ := c.State.Metrics(ctx, id)
			for k, v := range lastValues(ms) {
				metrics[k] = v
			}
		}
	}
	if cfg.Evaluation != "" {
		if id, _, ok := c.Run.Upstream(cfg.Evaluation); ok {
			ms, _ := c.State.Metrics(ctx, id)
			for k, v := range lastValues(ms) {
				metrics[k] = v // held-out metrics take precedence
			}
		}
	}
	lin := state.Lineage{SpecHash: c.Run.Plan().SpecHash, GitCommit: gitCommit(c.ProjectDir)}
	for _, ds := range cfg.Datasets {
		if _, outs, ok := c.Run.Upstream(ds + ".ingest"); ok && len(outs) > 0 {
			lin.Datasets = append(lin.Datasets, state.DatasetRef{Name: ds, Digest: outs[0].Digest})
		}
	}
	for _, s := range c.Run.Plan().Steps {
		if s.Element == cfg.Training && s.Run != nil && (s.Kind == "trial" || s.Kind == "train") {
			lin.CodeDigest, lin.Image = s.Run.CodeDigest, s.Run.Image
			if s.Kind == "train" {
				lin.Params = s.Params
			}
			break
		}
	}
	if sel := c.Run.Step(cfg.Training + ".select"); sel != nil {
		// The chosen trial's parameters are those of the trial whose model
		// this is.
		for _, t := range c.Run.Plan().Steps {
			if t.Element != cfg.Training || t.Kind != "trial" {
				continue
			}
			if _, outs, ok := c.Run.Upstream(t.Address); ok {
				for _, o := range outs {
					if o.Digest == model.Digest {
						lin.Params = t.Params
					}
				}
			}
		}
	}
	reg := registry.New(c.State)
	versions, err := reg.Versions(ctx, cfg.Model)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	var mv *state.ModelVersion
	for _, v := range versions {
		if v.ArtifactDigest == model.Digest {
			mv = v
		}
	}
	if mv == nil {
		mv, err = reg.Register(ctx, registry.RegisterRequest{Model: cfg.Model, ExecutionID: c.ExecID, RunID: c.Run.ID,
			ArtifactDigest: model.Digest, Metrics: metrics, Gates: cfg.Gates, Lineage: lin, Actor: c.Run.User()})
		if err != nil {
			return nil, err
		}
	}
	var gates []string
	for _, g := range mv.Gates {
		mark := "ok"
		if !g.Passed {
			mark = "FAILED: " + g.Message
		}
		gates = append(gates, fmt.Sprintf("%s %s (%s)", g.Metric, g.Rule, mark))
		fmt.Fprintf(c.Log, "gate %s %s: value %g: %s\n", g.Metric, g.Rule, g.Value, mark)
	}
	res := &wexec.BuiltinResult{Outputs: map[string]state.Output{"model": model},
		Metrics: []state.Metric{{Name: "version", Value: float64(mv.Version)}}}
	if mv.Status == state.ModelRejected {
		return res, &wexec.StepError{Message: fmt.Sprintf("%s v%d rejected by its gates", cfg.Model, mv.Version), LogTail: gates}
	}
	res.Message = fmt.Sprintf("%s v%d %s", cfg.Model, mv.Version, mv.Status)
	if len(gates) > 0 {
		res.Message += ": " + strings.Join(gates, ", ")
	}
	return res, nil
}

func gitCommit(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// ApplyChange applies a resource change once the steps it needs are done:
// it points a model alias at the version the spec asks for. Schedules are
// reported as not applied: no scheduler runs them yet.
func ApplyChange(ctx context.Context, c *schema.Change, run *wexec.Run) (string, error) {
	switch c.Type {
	case "alias":
		return applyAlias(ctx, c, run)
	case "schedule":
		return c.Address + ": schedule " + c.After + " recorded in the plan; not applied: no scheduler runs schedules yet", nil
	}
	return "", fmt.Errorf("unknown change type %q", c.Type)
}

func applyAlias(ctx context.Context, c *schema.Change, run *wexec.Run) (string, error) {
	rest := strings.TrimPrefix(c.Address, "models.")
	model, alias, _ := strings.Cut(rest, ".alias[")
	alias = strings.TrimSuffix(alias, "]")
	approvalRequired := false
	if s := run.Step("models." + model + ".register"); s != nil {
		if cfg, err := config[schema.RegisterConfig](s); err == nil && cfg.Approval != nil {
			approvalRequired = cfg.Approval.Required
		}
	}
	reg := registry.New(run.State())
	version := 0
	if c.After == "latest" || strings.HasSuffix(c.After, "(latest)") {
		// Resolved again now: this apply may have registered a version.
		versions, err := reg.Versions(ctx, model)
		if err != nil {
			return "", err
		}
		var waiting *state.ModelVersion
		for _, v := range versions {
			switch {
			case v.Status == state.ModelApproved, v.Status == state.ModelCandidate && !approvalRequired:
				if v.Version > version {
					version = v.Version
				}
			case v.Status == state.ModelCandidate:
				if waiting == nil || v.Version > waiting.Version {
					waiting = v
				}
			}
		}
		if waiting != nil && waiting.Version > version {
			return fmt.Sprintf("%s: alias %s not moved: %s v%d waits for approval (weir models approve %s %d)",
				c.Address, alias, model, waiting.Version, model, waiting.Version), nil
		}
		if version == 0 {
			return c.Address + ": alias " + alias + " not set: no version of " + model + " passed its gates", nil
		}
	} else {
		v, err := strconv.Atoi(strings.TrimPrefix(c.After, "v"))
		if err != nil {
			return "", fmt.Errorf("bad alias target %q", c.After)
		}
		version = v
	}
	ch, err := reg.Promote(ctx, model, version, alias, run.User(), approvalRequired)
	if err != nil {
		return "", err
	}
	if ch == nil {
		return "", nil // already there: nothing to say
	}
	if ch.Previous > 0 {
		return fmt.Sprintf("alias %s of %s: v%d -> v%d", alias, model, ch.Previous, ch.Version), nil
	}
	return fmt.Sprintf("alias %s of %s -> v%d", alias, model, ch.Version), nil
}

// violationText renders a row violation the way a user reads it:
// "line 42: column tenure: -3 does not satisfy >=0 (rule: int & >=0)".
func violationText(v data.Violation) string {
	switch {
	case v.Code == data.CodeMissing:
		return fmt.Sprintf("column %s is missing from the data (rule: %s)", v.Column, v.Rule)
	case v.Failed == "":
		return fmt.Sprintf("line %d: column %s: null not allowed (rule: %s)", v.Line, v.Column, v.Rule)
	}
	return fmt.Sprintf("line %d: column %s: %q does not satisfy %s (rule: %s)", v.Line, v.Column, v.Value, v.Failed, v.Rule)
}
