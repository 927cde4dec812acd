package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"weir.dev/weir/schema"
)

// TestLargeInputMatchesJSON: a plan large enough to be converted in
// parallel chunks gives what the JSON round trip gives, steps in order.
func TestLargeInputMatchesJSON(t *testing.T) {
	p, plan, lock, _ := generate(parallelSteps/10 + 7)
	if len(plan.Steps) < parallelSteps {
		t.Fatalf("%d steps, fewer than %d", len(plan.Steps), parallelSteps)
	}
	got, err := Input{Project: p, Plan: plan, Lock: lock}.Value()
	if err != nil {
		t.Fatal(err)
	}
	var planDoc map[string]any
	roundTrip(t, plan, &planDoc)
	delete(planDoc, "findings")
	delete(planDoc, "checksum")
	for _, s := range planDoc["steps"].([]any) {
		delete(s.(map[string]any), "task")
	}
	var projectDoc, lockDoc any
	roundTrip(t, p, &projectDoc)
	roundTrip(t, lock, &lockDoc)
	want, err := ast.InterfaceToValue(map[string]any{
		"project": projectDoc, "plan": planDoc, "lock": lockDoc, "changes": nil,
		"context": map[string]any{"user": "", "git": map[string]any{"commit": "", "branch": ""}, "environment": ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Compare(want) != 0 {
		t.Fatal("the input of a large plan differs from the JSON round trip")
	}
	if got.Hash() != want.Hash() {
		t.Error("equal inputs with different hashes")
	}
}

// TestRawJSON: step configs (json.RawMessage) parse as encoding/json
// decodes them, escapes, numbers, duplicate keys and invalid UTF-8
// included; invalid text is an error.
func TestRawJSON(t *testing.T) {
	type S struct {
		R json.RawMessage `json:"r"`
	}
	for _, raw := range []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e3`, `-12E-2`, `123456789012345678901234567890`,
		`"plain"`, `"tab\there \"quoted\" back\\slash \/ \b\f\n\r"`, `"\u00e9\ud83d\ude00 \u0000"`, "\"caf\xc3\xa9\"", "\"bad \xff utf8\"",
		` { "a" : [ 1 , { "b" : null } ] , "c" : "d" } `, `{"k":1,"k":2}`, `{"a":{"x":1},"b":{"x":1},"a":3}`,
		`[[],[[]],{"":""}]`,
	} {
		got, err := (&converter{}).value(S{R: json.RawMessage(raw)})
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		var doc any
		roundTrip(t, S{R: json.RawMessage(raw)}, &doc)
		want, _ := ast.InterfaceToValue(doc)
		if got.Compare(want) != 0 {
			t.Errorf("%s: got %s, want %s", raw, got, want)
		}
		if got.Hash() != want.Hash() {
			t.Errorf("%s: hash differs", raw)
		}
	}
	for _, raw := range []string{`{`, `{"a"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `-`, `"open`, "\"ctl\x01\"", `tru`, `{"a":1} x`, `nul`} {
		if _, err := (&converter{}).value(S{R: json.RawMessage(raw)}); err == nil {
			t.Errorf("%s: no error", raw)
		}
	}
}

// TestLazySteps: evaluation over the lazy input converts the plan's steps
// only for policies that read them, and Eval's findings are those of the
// whole input either way: reading input.plan.steps, iterating input.plan,
// walking input or hashing the plan.
func TestLazySteps(t *testing.T) {
	p, plan, sm := fixture()
	in := Input{Project: p, Plan: plan, Lock: lock}
	if len(plan.Steps) == 0 {
		t.Fatal("the fixture has no steps")
	}
	n := len(plan.Steps)
	readers := map[string]string{
		"ref.rego": `package weir.ref

deny contains sprintf("ref %d", [count(input.plan.steps)])
`,
		"iter.rego": `package weir.iter

deny contains sprintf("iter %d", [count(v)]) if {
	some k, v in input.plan
	k == "steps"
}
`,
		"walk.rego": `package weir.walk

deny contains sprintf("walk %d", [count(v)]) if {
	walk(input, [["plan", "steps"], v])
}
`,
		"hash.rego": `package weir.hash

deny contains sprintf("hash %d", [count(plans)]) if {
	plans := {input.plan, input.plan}
}
`,
	}
	for name, src := range readers {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, Options{Builtin: true, Config: p.Policy.Data, Dirs: []string{writeFiles(t, map[string]string{name: src})}})
			if !touches(t, e, in) {
				t.Error("the policy read the steps without converting them")
			}
			findings, ds := e.Eval(context.Background(), in, sm)
			noErrors(t, ds)
			want := map[string]string{"ref.rego": fmt.Sprintf("ref %d", n), "iter.rego": fmt.Sprintf("iter %d", n),
				"walk.rego": fmt.Sprintf("walk %d", n), "hash.rego": "hash 1"}[name]
			found := false
			for _, f := range findings {
				found = found || f.Message == want
			}
			if !found {
				t.Errorf("no finding %q in %v", want, keys(findings))
			}
			eager := newEngine(t, Options{Builtin: true, Config: p.Policy.Data, Dirs: []string{writeFiles(t, map[string]string{name: src})}})
			assertSame(t, e, eager, in, sm)
		})
	}
	// The built-in policies read input.plan.steps only for a project GPU
	// quota, which the fixture does not set.
	e := newEngine(t, Options{Builtin: true, Config: p.Policy.Data})
	if touches(t, e, in) {
		t.Error("the built-in policies converted the steps with no GPU quota set")
	}
	assertSame(t, e, e, in, sm)
	cfg := map[string]any{"gpu_quota": map[string]any{"project": 1}}
	maps.Copy(cfg, p.Policy.Data)
	if e := newEngine(t, Options{Builtin: true, Config: cfg}); !touches(t, e, in) {
		t.Error("the project GPU quota policy did not read the steps")
	}
}

// touches evaluates e's query over the lazy input and reports whether the
// steps were converted.
func touches(t *testing.T, e *Engine, in Input) bool {
	t.Helper()
	touched := false
	lv, err := in.lazy(func() { touched = true })
	if err != nil {
		t.Fatal(err)
	}
	val := lv.value()
	// An evaluation that read the stand-in may fail: Eval discards it.
	_, err = e.all.query.Eval(context.Background(), rego.EvalParsedInput(val))
	if err != nil && !touched {
		t.Fatal(err)
	}
	return touched
}

// assertSame checks that lazy.Eval finds what eager's query finds over
// the whole input.
func assertSame(t *testing.T, lazy, eager *Engine, in Input, sm schema.SourceMap) {
	t.Helper()
	got, _ := lazy.Eval(context.Background(), in, sm)
	val, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := eager.all.query.Eval(context.Background(), rego.EvalParsedInput(val))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := eager.finish(eager.collect(rs, eager.targets), sm)
	if strings.Join(keys(got), "\n") != strings.Join(keys(want), "\n") {
		t.Errorf("lazy input finds\n\t%s\nthe whole input\n\t%s", strings.Join(keys(got), "\n\t"), strings.Join(keys(want), "\n\t"))
	}
}

// TestLargeProjectMatchesJSON: a project large enough for its sections to
// be converted on several goroutines gives what the JSON round trip gives.
func TestLargeProjectMatchesJSON(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	p, plan, lock, _ := generate(parallelElements/4 + 3)
	if !largeProject(p) {
		t.Fatal("the project is too small to be converted in parallel")
	}
	lv, err := Input{Project: p, Plan: plan, Lock: lock}.lazy(func() {})
	if err != nil {
		t.Fatal(err)
	}
	val := lv.value()
	got := val.(ast.Object).Get(ast.StringTerm("project"))
	var doc any
	roundTrip(t, p, &doc)
	want, err := ast.InterfaceToValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Value.Compare(want) != 0 || got.Value.Hash() != want.Hash() {
		t.Fatal("a large project converted in parallel differs from the JSON round trip")
	}
}

// TestParallelEval: over a large input, the policies evaluated one by one
// on several goroutines give the findings and diagnostics of the one query
// on one (a failing policy a diagnostic, the others their findings), and
// a timeout stops them.
func TestParallelEval(t *testing.T) {
	p, plan, lock, config := generate(parallelElements/4 + 3)
	in := Input{Project: p, Plan: plan, Lock: lock}
	if !in.large() {
		t.Fatal("the input is too small for the policies to be evaluated in parallel")
	}
	dir := writeFiles(t, map[string]string{
		"conflict.rego": "package weir.conflict\n\ndeny := \"a\" if input.project.project\ndeny := \"b\" if input.project.project\n",
		"steps.rego":    "package weir.steps\n\nwarn contains sprintf(\"%d steps\", [count(input.plan.steps)])\n",
	})
	e := newEngine(t, Options{Builtin: true, Dirs: []string{dir}, Config: config})
	eval := func(procs int) string {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		findings, ds := e.Eval(context.Background(), in, nil)
		var b strings.Builder
		for _, f := range findings {
			fmt.Fprintf(&b, "%s %s %s %s\n", f.Rule, f.Severity, f.Path, f.Message)
		}
		for _, d := range ds {
			fmt.Fprintf(&b, "%s %s\n", d.Code, d.Summary)
		}
		return b.String()
	}
	one, par := eval(1), eval(4)
	if one != par {
		t.Errorf("one query finds\n%s\nin parallel\n%s", one, par)
	}
	for _, want := range []string{"policy-error policy error in rule weir.conflict", fmt.Sprintf("weir.steps warning  %d steps", len(plan.Steps)), "weir.image.digest error"} {
		if !strings.Contains(par, want) {
			t.Errorf("no %q in\n%s", want, par)
		}
	}

	slow := writeFiles(t, map[string]string{"slow.rego": "package weir.slow\n\ndeny contains \"never\" if {\n\tsome i in numbers.range(1, 100000)\n\tsome j in numbers.range(1, 100000)\n\ti * j == -1\n}\n"})
	e = newEngine(t, Options{Builtin: true, Dirs: []string{slow}, Config: config, Timeout: 50 * time.Millisecond})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	if _, ds := e.Eval(context.Background(), in, nil); len(ds) != 1 || ds[0].Code != "policy-timeout" {
		t.Errorf("want one policy-timeout, got %v", ds)
	}
}

// TestShare: the built-in policies that read the run sites of
// data.weir.lib.runs (computed once per query) share one group; the others
// fill the second.
func TestShare(t *testing.T) {
	e := newEngine(t, Options{Builtin: true})
	groups, err := e.share(e.all, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || len(groups[0].targets) == 0 || len(groups[1].targets) == 0 {
		t.Fatalf("%d groups, want 2 non-empty", len(groups))
	}
	in := map[string]int{}
	n := 0
	for gi, g := range groups {
		for i, tg := range g.targets {
			in[tg.id] = gi
			if e.targets[g.index[i]] != tg {
				t.Errorf("group %d: index %d is not %s", gi, g.index[i], tg.id)
			}
			n++
		}
	}
	if n != len(e.targets) {
		t.Errorf("%d targets in groups, want %d", n, len(e.targets))
	}
	sites := []string{"weir.code.in_repo", "weir.gpu.quota.backend", "weir.image.digest", "weir.image.latest", "weir.image.registry", "weir.resources.required", "weir.secrets.env"}
	for _, id := range sites {
		if in[id] != in[sites[0]] {
			t.Errorf("%s is not in the group of %s: %v", id, sites[0], in)
		}
	}
	if in["weir.pii.features"] == in[sites[0]] {
		t.Errorf("weir.pii.features shares the run sites' group: %v", in)
	}
}

// TestWithSteps: the lazy input made whole is the input Value gives, for a
// plan converted on one goroutine and one converted on several.
func TestWithSteps(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	p, plan, _ := fixture()
	bp, bplan, block, _ := generate(parallelSteps/10 + 7)
	for _, in := range []Input{{Project: p, Plan: plan, Lock: lock}, {Project: bp, Plan: bplan, Lock: block}} {
		lv, err := in.lazy(func() { t.Error("the stand-in was converted") })
		if err != nil {
			t.Fatal(err)
		}
		whole, err := in.withSteps(lv)
		if err != nil {
			t.Fatal(err)
		}
		want, err := in.Value()
		if err != nil {
			t.Fatal(err)
		}
		if got := whole.value(); got.Compare(want) != 0 || got.Hash() != want.Hash() {
			t.Errorf("%d steps: the lazy input made whole differs from Value", len(in.Plan.Steps))
		}
	}
}

// TestStepReaders: a target may read the plan's steps when a rule it
// reads refers to input, input.plan or input.plan.steps, through a
// variable or not; the built-in project GPU quota does, the image digest
// policy does not.
func TestStepReaders(t *testing.T) {
	for src, want := range map[string]bool{
		"x if input.plan.steps[_].kind":     true,
		"x if input.plan[k]":                true,
		"x if input[k].steps":               true,
		"x if walk(input, _)":               true,
		"x if input.plan.estimate.cost > 1": false,
		"x if input.project.datasets[_]":    false,
		"x if input.plan":                   true,
	} {
		m := ast.MustParseModuleWithOpts("package p\n\n"+src+"\n", ast.ParserOptions{RegoVersion: ast.RegoV1})
		if got := readsSteps(m.Rules[0]); got != want {
			t.Errorf("%s: reads steps %v, want %v", src, got, want)
		}
	}
	e := newEngine(t, Options{Builtin: true})
	readers := map[string]bool{}
	for _, tg := range e.at(e.readers.index) {
		readers[tg.id] = true
	}
	if len(readers) != 1 || !readers["weir.gpu.quota.project"] {
		t.Errorf("the built-in policies that may read the steps are %v, want weir.gpu.quota.project", readers)
	}
	if len(e.readers.index)+len(e.others.index) != len(e.targets) {
		t.Errorf("%d readers and %d others of %d targets", len(e.readers.index), len(e.others.index), len(e.targets))
	}
}
