package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"weir.dev/weir/schema"
)

// generate builds a project of n pipelines (a dataset, a feature set, a
// training with a 4-trial search, a model; every tenth pipeline also a
// serving entry and its monitoring) and a plan of 10 steps per pipeline:
// ingest, validate, profile, materialize, 4 trials, select, register. A few
// pipelines break rules so the policies have findings to report.
func generate(n int) (*schema.Project, *schema.Plan, Lock, map[string]any) {
	one := 100
	p := &schema.Project{
		Project: "bench", Owner: "team:ml",
		Defaults: &schema.Defaults{Backend: "gpu", Resources: &schema.Resources{CPU: 1, Memory: "1Gi"}},
		Backends: map[string]*schema.Backend{"gpu": {Kind: "kubernetes", Prices: &schema.Prices{GPUHour: 2}}},
		Datasets: map[string]*schema.Dataset{}, Features: map[string]*schema.FeatureSet{},
		Training: map[string]*schema.Training{}, Models: map[string]*schema.Model{},
		Serving: map[string]*schema.Serving{}, Monitoring: map[string]*schema.Monitoring{},
	}
	lock := Lock{Images: map[string]string{}}
	plan := &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "bench", Estimate: &schema.Estimate{CPUHours: 2000, GPUHours: 4000, Cost: 8000}}
	for i := range n {
		name := fmt.Sprintf("p%04d", i)
		ds, fs, tr, md := "datasets."+name, "features."+name, "training."+name, "models."+name
		d := &schema.Dataset{
			Source: schema.Source{Kind: "file", URI: "data/" + name + ".csv", Format: "csv"},
			Schema: map[string]string{"id": "string", "x": "number", "y": "int", "email": "string"},
			Checks: &schema.Checks{MinRows: &one},
			PII:    []string{"email"},
		}
		if i%50 == 7 {
			d.Checks = nil
		}
		p.Datasets[name] = d
		cols := []string{"x", "y"}
		if i%100 == 3 {
			cols = append(cols, "email")
		}
		p.Features[name] = &schema.FeatureSet{From: []string{ds}, Entity: []string{"id"}, Columns: cols}
		image := fmt.Sprintf("registry.example.com/ml/%s:1.%d", name, i)
		if i%20 != 5 {
			lock.Images[image] = fmt.Sprintf("sha256:%064x", i)
		}
		t := &schema.Training{
			Run: schema.Run{
				Image: image, Command: []string{"python", "train.py"}, Code: "./pipelines/" + name,
				Resources: &schema.Resources{CPU: 4, Memory: "8Gi", GPU: 1},
				Env:       map[string]schema.EnvVar{"SEED": {Value: "1"}, "API_TOKEN": {Secret: "env:API_TOKEN"}},
			},
			Features: []string{fs},
			Search: &schema.Search{Method: "grid", Parallelism: 2,
				Params:    map[string]schema.SearchParam{"lr": {Values: []any{0.01, 0.1}}, "l2": {Values: []any{0, 0.001}}},
				Objective: schema.Objective{Metric: "auc", Goal: "maximize"}},
		}
		p.Training[name] = t
		gates := map[string]string{"auc": ">=0.8"}
		if i%100 == 9 {
			gates = map[string]string{"f1": ">=0.5"}
		}
		p.Models[name] = &schema.Model{From: tr, Gates: gates, Approval: &schema.Approval{Required: true}}
		if i%10 == 0 {
			p.Serving[name] = &schema.Serving{Model: md + "@production", Canary: &schema.Canary{Steps: []int{10, 100}}, RequestLog: &schema.RequestLog{Sample: 0.1}}
			p.Monitoring[name] = &schema.Monitoring{
				Drift:  &schema.Drift{Reference: ds, Threshold: 0.2},
				Alerts: []schema.Alert{{Metric: "error_rate", Above: 0.01, Notify: "slack:#ml"}},
			}
		}

		step := func(suffix, kind string, builtin bool, needs ...string) *schema.Step {
			s := &schema.Step{
				Address: ds + "." + suffix, Kind: kind, Element: ds, Backend: "local", Builtin: builtin,
				Needs: needs, Action: schema.ActionRun, Reason: "new", CacheKey: fmt.Sprintf("sha256:%064x", i*16+len(plan.Steps)%16),
			}
			return s
		}
		ingest := step("ingest", "ingest", true)
		ingest.Config = json.RawMessage(fmt.Sprintf(`{"dataset":%q,"source":{"kind":"file","uri":"data/%s.csv"}}`, name, name))
		validate := step("validate", "validate", true, ingest.Address)
		profile := step("profile", "profile", true, ingest.Address)
		mat := &schema.Step{Address: fs, Kind: "materialize", Element: fs, Backend: "local", Builtin: true, Needs: []string{validate.Address},
			Action: schema.ActionCached, Reason: "cached", CacheKey: fmt.Sprintf("sha256:%064x", i*16+4)}
		plan.Steps = append(plan.Steps, ingest, validate, profile, mat)
		var trials []string
		for j, lr := range []string{"0.01", "0.1"} {
			for k, l2 := range []string{"0", "0.001"} {
				addr := fmt.Sprintf("%s.trial[l2=%s,lr=%s]", tr, l2, lr)
				trials = append(trials, addr)
				plan.Steps = append(plan.Steps, &schema.Step{
					Address: addr, Kind: "trial", Element: tr, Backend: "gpu",
					Run: &schema.StepRun{Image: image, Command: t.Command, Code: t.Code, CodeDigest: fmt.Sprintf("sha256:%064x", i),
						Resources: t.Resources, Retries: 1, Timeout: "1h", Env: t.Env},
					Params: map[string]any{"lr": lr, "l2": l2},
					Inputs: []schema.Input{{Name: "features", Step: fs, Output: "features"}},
					Needs:  []string{fs}, Outputs: []string{"model", "metrics"},
					Action: schema.ActionRun, Reason: "new", CacheKey: fmt.Sprintf("sha256:%064x", i*16+5+j*2+k),
					Task: json.RawMessage(`{"apiVersion":"batch/v1","kind":"Job"}`),
				})
			}
		}
		sel := &schema.Step{Address: tr + ".select", Kind: "select", Element: tr, Backend: "local", Builtin: true, Needs: trials,
			Action: schema.ActionRun, Reason: "new", CacheKey: fmt.Sprintf("sha256:%064x", i*16+9)}
		reg := &schema.Step{Address: md + ".register", Kind: "register", Element: md, Backend: "local", Builtin: true, Needs: []string{sel.Address},
			NoCache: true, Action: schema.ActionRun, Reason: "new", CacheKey: fmt.Sprintf("sha256:%064x", i*16+10)}
		plan.Steps = append(plan.Steps, sel, reg)
	}
	plan.Tally()
	config := map[string]any{
		"allowed_registries": []any{"registry.example.com/ml"},
		"budget":             map[string]any{"cost": 10000, "gpu_hours": 5000},
		"gpu_quota":          map[string]any{"project": 4096, "backends": map[string]any{"gpu": 8}},
	}
	return p, plan, lock, config
}

func BenchmarkEval10k(b *testing.B) {
	p, plan, lock, config := generate(1000)
	if len(plan.Steps) != 10000 {
		b.Fatalf("%d steps", len(plan.Steps))
	}
	ctx := context.Background()
	e, ds := New(ctx, Options{Builtin: true, Config: config})
	if ds.HasErrors() {
		b.Fatal(ds.Err())
	}
	in := Input{Project: p, Plan: plan, Lock: lock}
	sm := schema.SourceMap{}
	findings, ds := e.Eval(ctx, in, sm)
	if ds.HasErrors() {
		b.Fatal(ds.Err())
	}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, ds := e.Eval(ctx, in, sm); ds.HasErrors() {
			b.Fatal(ds.Err())
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(len(findings)), "findings")
}

// BenchmarkInput10k is the input conversion alone, part of Eval.
func BenchmarkInput10k(b *testing.B) {
	p, plan, lock, _ := generate(1000)
	in := Input{Project: p, Plan: plan, Lock: lock}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := in.Value(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// TestGeneratedFindings checks the benchmark's project gives the findings
// it is built to give, so the benchmark measures real work.
func TestGeneratedFindings(t *testing.T) {
	p, plan, lock, config := generate(100)
	e := newEngine(t, Options{Builtin: true, Config: config})
	findings, ds := e.Eval(context.Background(), Input{Project: p, Plan: plan, Lock: lock}, nil)
	noErrors(t, ds)
	count := map[string]int{}
	for _, f := range findings {
		count[f.Rule]++
	}
	want := map[string]int{
		"weir.image.digest":      5, // i%20 == 5
		"weir.data.contract":     2, // i%50 == 7
		"weir.pii.features":      1, // i%100 == 3
		"weir.model.gate":        1, // i%100 == 9
		"weir.gpu.quota.project": 0,
		"weir.budget.cost":       0,
	}
	for rule, n := range want {
		if count[rule] != n {
			t.Errorf("%s: %d findings, want %d", rule, count[rule], n)
		}
	}
	if len(findings) != 9 {
		t.Errorf("%d findings: %v", len(findings), count)
	}
}

// TestDumpBenchInput writes what Eval evaluates for the benchmark's
// project (Engine.Dump) when WEIR_POLICY_BENCH_DIR names a folder, so the
// opa CLI can evaluate the same thing:
//
//	opa eval -d $DIR/policies -d $DIR/data.json -i $DIR/input.json \
//		--format=raw "$(cat $DIR/query.rego)"
//
// (make bench does this on a generated spec through weir policy check
// --dump-input; see testdata/bench/run-policy.sh.)
func TestDumpBenchInput(t *testing.T) {
	dir := os.Getenv("WEIR_POLICY_BENCH_DIR")
	if dir == "" {
		t.Skip("WEIR_POLICY_BENCH_DIR is not set")
	}
	p, plan, lock, config := generate(1000)
	e := newEngine(t, Options{Builtin: true, Config: config})
	if err := e.Dump(dir, Input{Project: p, Plan: plan, Lock: lock}); err != nil {
		t.Fatal(err)
	}
}
