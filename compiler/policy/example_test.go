package policy_test

import (
	"context"
	"fmt"

	"weir.dev/weir/compiler/policy"
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

func ExampleEngine_Eval() {
	ctx := context.Background()
	engine, ds := policy.New(ctx, policy.Options{
		Builtin:     true,
		Enforcement: map[string]string{"weir.resources.required": "off"},
	})
	if ds.HasErrors() {
		fmt.Println(ds.Err())
		return
	}
	project := &schema.Project{
		Project: "churn",
		Owner:   "team:ml",
		Tasks: map[string]*schema.Task{
			"report": {Run: schema.Run{Image: "python:3.12", Command: []string{"python", "report.py"}, Code: "../shared"}},
		},
	}
	sm := schema.SourceMap{
		"tasks.report":       {Filename: "weir.cue", Start: diag.Pos{Line: 4, Column: 8}},
		"tasks.report.image": {Filename: "weir.cue", Start: diag.Pos{Line: 5, Column: 2}},
		"tasks.report.code":  {Filename: "weir.cue", Start: diag.Pos{Line: 7, Column: 2}},
	}
	findings, _ := engine.Eval(ctx, policy.Input{Project: project}, sm)
	for _, f := range findings {
		fmt.Printf("%s: %s %s: %s\n", f.Source, f.Severity, f.Rule, f.Message)
	}
	// Output:
	// weir.cue:5:2: error weir.image.digest: image "python:3.12" is not pinned by digest (in the reference or in weir.lock)
	// weir.cue:7:2: error weir.code.in_repo: tasks.report.code "../shared" climbs out of the project with ..
}
