package policy

import (
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

const specFile = "weir.cue"

// fixture is a small project with known problems, its plan, and a source
// map placing each field on a line of an imaginary weir.cue.
func fixture() (*schema.Project, *schema.Plan, schema.SourceMap) {
	one := 1
	p := &schema.Project{
		Project: "churn",
		Backends: map[string]*schema.Backend{
			"gpu": {Kind: "kubernetes", GPUType: "nvidia.com/gpu", Prices: &schema.Prices{GPUHour: 2.5}},
		},
		Datasets: map[string]*schema.Dataset{
			"customers": {
				Source: schema.Source{Kind: "file", URI: "data/customers.csv", Format: "csv"},
				Schema: map[string]string{"customer_id": "string", "tenure": "int & >=0", "email": "string"},
				Checks: &schema.Checks{MinRows: &one, MaxNullFraction: map[string]float64{"tenure": 0}},
				PII:    []string{"email"},
			},
		},
		Features: map[string]*schema.FeatureSet{
			"churn_v1": {From: []string{"datasets.customers"}, Entity: []string{"customer_id"}, Columns: []string{"tenure", "email"}},
		},
		Training: map[string]*schema.Training{
			"churn_model": {
				Run: schema.Run{
					Image: "python:3.12", Command: []string{"python", "train.py"}, Code: "./train",
					Resources: &schema.Resources{CPU: 2, Memory: "4Gi", GPU: 1}, Backend: "gpu",
				},
				Features: []string{"features.churn_v1"},
				Search: &schema.Search{
					Method:    "grid",
					Params:    map[string]schema.SearchParam{"lr": {Values: []any{0.01, 0.1}}},
					Objective: schema.Objective{Metric: "auc", Goal: "maximize"},
				},
			},
		},
		Models: map[string]*schema.Model{
			"churn_model": {From: "training.churn_model", Gates: map[string]string{"auc": ">=0.80"}, Approval: &schema.Approval{Required: true}},
		},
		Serving: map[string]*schema.Serving{
			"churn_api": {
				Model:      "models.churn_model",
				Canary:     &schema.Canary{Steps: []int{10, 100}, Interval: "10m"},
				RequestLog: &schema.RequestLog{Sample: 1},
			},
		},
		Monitoring: map[string]*schema.Monitoring{
			"churn_api": {
				Drift:  &schema.Drift{Reference: "datasets.customers", Method: "psi", Threshold: 0.2},
				Alerts: []schema.Alert{{Metric: "latency_p99", Above: "250ms", Notify: "webhook:https://hooks.example.com/ml"}},
			},
		},
		Tasks: map[string]*schema.Task{
			"report": {Run: schema.Run{Image: "busybox", Command: []string{"sh", "report.sh"}, Code: "../outside"}},
		},
		Policy: &schema.Policy{Data: map[string]any{"budget": map[string]any{"cost": 10}}},
	}
	plan := &schema.Plan{
		FormatVersion: schema.PlanFormatVersion,
		Project:       "churn",
		Steps: []*schema.Step{
			{Address: "datasets.customers.ingest", Kind: "ingest", Element: "datasets.customers", Backend: "local", Builtin: true,
				Config: []byte(`{"dataset":"customers","source":{"kind":"file","uri":"data/customers.csv"}}`), Action: schema.ActionRun, Reason: "new"},
			{Address: "training.churn_model.trial[lr=0.01]", Kind: "trial", Element: "training.churn_model", Backend: "gpu",
				Run:    &schema.StepRun{Image: "python:3.12", Command: []string{"python", "train.py"}, Resources: &schema.Resources{GPU: 1}},
				Params: map[string]any{"lr": 0.01}, Needs: []string{"datasets.customers.ingest"}, Action: schema.ActionRun, Reason: "new",
				Task: []byte(`{"kind":"Job"}`), Source: &diag.Range{Filename: specFile, Start: diag.Pos{Line: 12, Column: 1}}},
		},
		Changes:  []*schema.Change{{Address: "serving.churn_api", Type: "deployment", Action: schema.ActionCreate}},
		Estimate: &schema.Estimate{GPUHours: 4, Cost: 50},
		Findings: []schema.Finding{{Rule: "old", Message: "stale"}},
	}
	plan.Tally()
	at := func(line, col int) diag.Range {
		return diag.Range{Filename: specFile, Start: diag.Pos{Line: line, Column: col}, End: diag.Pos{Line: line, Column: col}}
	}
	sm := schema.SourceMap{
		"project":                      at(1, 1),
		"datasets.customers":           at(3, 11),
		"features.churn_v1":            at(9, 11),
		"features.churn_v1.columns":    at(10, 2),
		"features.churn_v1.columns[1]": at(10, 23),
		"training.churn_model":         at(12, 11),
		"training.churn_model.image":   at(13, 2),
		"tasks.report":                 at(20, 8),
		"tasks.report.image":           at(21, 2),
		"tasks.report.code":            at(23, 2),
		"policy":                       at(27, 1),
		"policy.data":                  at(28, 2),
		"policy.enforcement":           at(29, 2),
		"policy.waivers":               at(30, 2),
		"policy.waivers[0]":            at(31, 3),
	}
	return p, plan, sm
}
