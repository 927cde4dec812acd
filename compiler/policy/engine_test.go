package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

var lock = Lock{Images: map[string]string{"python:3.12": "sha256:" + strings.Repeat("ab", 32)}}

func fixedNow() time.Time { return time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) }

func newEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	e, ds := New(context.Background(), opts)
	if ds.HasErrors() {
		t.Fatalf("New: %v", ds.Err())
	}
	return e
}

func evalFixture(t *testing.T, opts Options) ([]schema.Finding, diag.Diagnostics) {
	t.Helper()
	p, plan, sm := fixture()
	opts.Builtin = true
	if opts.Config == nil {
		opts.Config = p.Policy.Data
	}
	e := newEngine(t, opts)
	return e.Eval(context.Background(), Input{Project: p, Plan: plan, Lock: lock}, sm)
}

// key renders what a test asserts of a finding: rule, severity, address,
// source line, and the waiver.
func key(f schema.Finding) string {
	line := 0
	if f.Source != nil {
		line = f.Source.Start.Line
	}
	s := fmt.Sprintf("%s %s %s :%d", f.Rule, f.Severity, f.Address, line)
	if f.Waived != "" {
		s += " waived=" + f.Waived
	}
	return s
}

func keys(fs []schema.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = key(f)
	}
	return out
}

func assertKeys(t *testing.T, got []schema.Finding, want ...string) {
	t.Helper()
	g := keys(got)
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n\t%s\nwant:\n\t%s", strings.Join(g, "\n\t"), strings.Join(want, "\n\t"))
		for _, f := range got {
			t.Logf("%s: %s (%s)", f.Rule, f.Message, f.Path)
		}
	}
}

func noErrors(t *testing.T, ds diag.Diagnostics) {
	t.Helper()
	for _, d := range ds {
		if d.Severity == diag.Error {
			t.Errorf("unexpected diagnostic: %s (%s)", d, d.Code)
		}
	}
}

func TestEvalBuiltin(t *testing.T) {
	findings, ds := evalFixture(t, Options{})
	noErrors(t, ds)
	assertKeys(t, findings,
		"weir.owner error project :1",
		"weir.pii.features error features.churn_v1 :10",
		"weir.resources.required warning tasks.report :20",
		"weir.image.digest error tasks.report :21",
		"weir.image.latest error tasks.report :21",
		"weir.code.in_repo error tasks.report :23",
		"weir.budget.cost error policy.data :28",
	)
	for _, f := range findings {
		if f.Rule == "weir.pii.features" && (f.Path != "features.churn_v1.columns[1]" || f.Source.Start.Column != 23) {
			t.Errorf("pii finding at %s %v, want the column's element", f.Path, f.Source)
		}
		if f.Rule == "weir.budget.cost" && f.Message != "the plan is estimated to cost 50, above the budget of 10" {
			t.Errorf("budget message: %q", f.Message)
		}
	}
}

func TestEvalIsRepeatable(t *testing.T) {
	p, plan, sm := fixture()
	e := newEngine(t, Options{Builtin: true, Config: p.Policy.Data})
	first, _ := e.Eval(context.Background(), Input{Project: p, Plan: plan, Lock: lock}, sm)
	for range 3 {
		again, _ := e.Eval(context.Background(), Input{Project: p, Plan: plan, Lock: lock}, sm)
		if strings.Join(keys(first), "|") != strings.Join(keys(again), "|") {
			t.Fatalf("findings differ between evaluations:\n%v\n%v", keys(first), keys(again))
		}
	}
}

func TestEnforcement(t *testing.T) {
	findings, ds := evalFixture(t, Options{Enforcement: map[string]string{
		"weir.resources.required": "deny",
		"weir.owner":              "off",
		"weir.image.latest":       "warn",
		"weir.imgae.digest":       "off",
	}})
	noErrors(t, ds)
	assertKeys(t, findings,
		"weir.pii.features error features.churn_v1 :10",
		"weir.resources.required error tasks.report :20",
		"weir.image.digest error tasks.report :21",
		"weir.image.latest warning tasks.report :21",
		"weir.code.in_repo error tasks.report :23",
		"weir.budget.cost error policy.data :28",
	)
	var typo *diag.Diagnostic
	for i := range ds {
		if ds[i].Code == "policy-unknown-rule" {
			typo = &ds[i]
		}
	}
	if typo == nil || !strings.Contains(typo.Summary, `did you mean "weir.image.digest"`) || typo.Range == nil || typo.Range.Start.Line != 29 {
		t.Errorf("want a policy-unknown-rule warning at line 29 suggesting weir.image.digest, got %v", ds)
	}
}

func TestWaiver(t *testing.T) {
	findings, ds := evalFixture(t, Options{Waivers: []schema.Waiver{
		{Rule: "weir.image.latest", Address: "tasks.report", Reason: "busybox is vendored", Expires: "2026-06-01"},
		{Rule: "weir.pii.features", Address: "*", Reason: "approved by DPO", Expires: "2027-01-01"},
		{Rule: "weir.model.gate", Address: "models.other", Reason: "old", Expires: "2027-01-01"},
	}})
	noErrors(t, ds)
	assertKeys(t, findings,
		"weir.owner error project :1",
		"weir.pii.features error features.churn_v1 :10 waived=approved by DPO",
		"weir.resources.required warning tasks.report :20",
		"weir.image.digest error tasks.report :21",
		"weir.image.latest error tasks.report :21 waived=busybox is vendored",
		"weir.code.in_repo error tasks.report :23",
		"weir.budget.cost error policy.data :28",
	)
	unused := 0
	for _, d := range ds {
		if d.Code == "policy-waiver-unused" {
			unused++
			if d.Address != "policy.waivers[2]" {
				t.Errorf("unused waiver diagnostic on %s", d.Address)
			}
		}
	}
	if unused != 1 {
		t.Errorf("want one policy-waiver-unused, got %v", ds)
	}
}

func TestExpiredWaiver(t *testing.T) {
	findings, ds := evalFixture(t, Options{Waivers: []schema.Waiver{
		{Rule: "weir.image.latest", Address: "tasks.report", Reason: "busybox is vendored", Expires: "2026-05-31"},
	}})
	noErrors(t, ds)
	assertKeys(t, findings,
		"weir.owner error project :1",
		"weir.pii.features error features.churn_v1 :10",
		"weir.resources.required warning tasks.report :20",
		"weir.image.digest error tasks.report :21",
		"weir.image.latest error tasks.report :21",
		"weir.code.in_repo error tasks.report :23",
		"weir.budget.cost error policy.data :28",
		"weir.waiver.expired error policy.waivers[0] :31",
	)
}

func TestBadWaiverDate(t *testing.T) {
	_, ds := evalFixture(t, Options{Waivers: []schema.Waiver{
		{Rule: "weir.owner", Address: "project", Reason: "later", Expires: "2026-13-45"},
	}})
	if len(ds) != 1 || ds[0].Code != "policy-waiver" || ds[0].Severity != diag.Error {
		t.Errorf("want one policy-waiver error, got %v", ds)
	}
}

func TestNoPoliciesStillChecksWaivers(t *testing.T) {
	e := newEngine(t, Options{Waivers: []schema.Waiver{{Rule: WaiverExpiredRule, Address: "*", Reason: "x", Expires: "2020-01-01"}}})
	findings, _ := e.Eval(context.Background(), Input{}, nil)
	assertKeys(t, findings, "weir.waiver.expired error policy.waivers[0] :0")
}

// writeFiles creates files (name -> content) under a new temporary folder.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func assertDiag(t *testing.T, ds diag.Diagnostics, code, file string, line, col int) diag.Diagnostic {
	t.Helper()
	for _, d := range ds {
		if d.Code == code && d.Range != nil && d.Range.Filename == file {
			if d.Range.Start.Line != line || d.Range.Start.Column != col {
				t.Errorf("%s at %v, want %s:%d:%d", code, d.Range, file, line, col)
			}
			return d
		}
	}
	t.Fatalf("no %s diagnostic in %s among %v", code, file, ds)
	return diag.Diagnostic{}
}

func TestSyntaxError(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"ok.rego":      "package weir.ok\n\ndeny contains \"x\" if false\n",
		"sub/bad.rego": "package weir.bad\n\ndeny contains msg if {\n\tmsg := \n}\n",
	})
	e, ds := New(context.Background(), Options{Builtin: true, Dirs: []string{dir}})
	if e != nil {
		t.Error("New returned an engine despite a syntax error")
	}
	d := assertDiag(t, ds, "policy-syntax", filepath.Join(dir, "sub", "bad.rego"), 5, 1)
	if d.Severity != diag.Error {
		t.Errorf("severity %s", d.Severity)
	}
}

func TestCompileError(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"unsafe.rego": "package weir.unsafe\n\ndeny contains msg if {\n\tcount(input.x) > 0\n\tmsg == 1\n}\n",
	})
	_, ds := New(context.Background(), Options{Dirs: []string{dir}})
	assertDiag(t, ds, "policy-compile", filepath.Join(dir, "unsafe.rego"), 5, 2)

	// Policies cannot reach the network.
	dir = writeFiles(t, map[string]string{
		"net.rego": "package weir.net\n\ndeny contains r if {\n\tr := http.send({\"method\": \"get\", \"url\": \"http://example.com\"})\n}\n",
	})
	_, ds = New(context.Background(), Options{Dirs: []string{dir}})
	d := assertDiag(t, ds, "policy-compile", filepath.Join(dir, "net.rego"), 4, 7)
	if !strings.Contains(d.Summary, "http.send") {
		t.Errorf("summary %q", d.Summary)
	}
}

func TestPolicyErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"conflict.rego": `# METADATA
# title: Conflicting
# custom:
#   id: acme.conflict
package weir.conflict

deny := "a" if input.project.project
deny := "b" if input.project.project
`,
		"types.rego": `package weir.types

deny contains msg if {
	n := input.project.project + 1
	msg := sprintf("%d", [n])
}
`,
		"fine.rego": `package weir.fine

warn contains {"msg": "fine", "path": "training.churn_model.image", "severity": "info"} if input.project
`,
	})
	p, plan, sm := fixture()
	e := newEngine(t, Options{Builtin: true, Dirs: []string{dir}, Config: p.Policy.Data})
	findings, ds := e.Eval(context.Background(), Input{Project: p, Plan: plan, Lock: lock}, sm)
	conflict := assertDiag(t, ds, "policy-error", filepath.Join(dir, "conflict.rego"), 8, 1)
	if !strings.HasPrefix(conflict.Summary, "policy error in rule acme.conflict: ") {
		t.Errorf("summary %q does not name the rule", conflict.Summary)
	}
	types := assertDiag(t, ds, "policy-error", filepath.Join(dir, "types.rego"), 4, 7)
	types2 := ""
	for _, d := range ds {
		if d.Code == "policy-error" && strings.Contains(d.Summary, "weir.types") {
			types2 = d.Summary
		}
	}
	if types2 == "" {
		t.Errorf("no policy error names weir.types: %v (%v)", ds, types)
	}
	// The other policies still report.
	var rules []string
	for _, f := range findings {
		rules = append(rules, f.Rule)
		if f.Rule == "weir.fine" && (f.Severity != diag.Info || f.Address != "training.churn_model" || f.Source.Start.Line != 13) {
			t.Errorf("weir.fine finding: %+v", f)
		}
	}
	for _, want := range []string{"weir.owner", "weir.fine", "weir.image.digest"} {
		if !strings.Contains(strings.Join(rules, " "), want) {
			t.Errorf("findings lack %s: %v", want, rules)
		}
	}
}

func TestTimeout(t *testing.T) {
	dir := writeFiles(t, map[string]string{"slow.rego": `package weir.slow

deny contains "never" if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`})
	e := newEngine(t, Options{Dirs: []string{dir}, Timeout: 50 * time.Millisecond})
	start := time.Now()
	_, ds := e.Eval(context.Background(), Input{}, nil)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("evaluation took %s after a 50ms timeout", took)
	}
	if len(ds) != 1 || ds[0].Code != "policy-timeout" || !strings.Contains(ds[0].Summary, "50ms") {
		t.Fatalf("want one policy-timeout naming 50ms, got %v", ds)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, ds = e.Eval(ctx, Input{}, nil)
	if len(ds) != 1 || ds[0].Code != "policy-cancelled" {
		t.Fatalf("want policy-cancelled, got %v", ds)
	}
}

func TestUserDataAndConfig(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"teams.rego": `# METADATA
# title: Owner is a known team
# description: The owner is one of data.teams.known.
# custom:
#   id: acme.team
#   severity: warning
#   remediation: Use a known team.
package weir.acme.team

deny contains {"msg": sprintf("owner %s is not a known team (limit %d)", [input.project.owner, data.weir.config.limit]), "path": "project"} if {
	not input.project.owner in data.teams.known
}
`,
		"teams/data.yaml":           "known: [\"team:ml\"]\n",
		"weir/config/defaults.json": `{"limit": 1, "other": true}`,
	})
	e := newEngine(t, Options{Dirs: []string{dir}, Config: map[string]any{"limit": int64(3)}})
	findings, ds := e.Eval(context.Background(), Input{Project: &schema.Project{Project: "x", Owner: "team:web"}}, nil)
	noErrors(t, ds)
	if len(findings) != 1 || findings[0].Message != "owner team:web is not a known team (limit 3)" || findings[0].Rule != "acme.team" {
		t.Fatalf("findings: %+v", findings)
	}
	rules := e.Rules()
	if len(rules) != 2 || rules[0].ID != "acme.team" || rules[0].Severity != "warning" || rules[0].File != filepath.Join(dir, "teams.rego") {
		t.Errorf("rules: %+v", rules)
	}
}

func TestBadDataFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"data.json": `{"a": `})
	_, ds := New(context.Background(), Options{Dirs: []string{dir}})
	if len(ds) != 1 || ds[0].Code != "policy-data" {
		t.Errorf("want a policy-data error, got %v", ds)
	}
	_, ds = New(context.Background(), Options{Dirs: []string{filepath.Join(dir, "missing")}})
	if len(ds) != 1 || ds[0].Code != "policy-load" {
		t.Errorf("want a policy-load error, got %v", ds)
	}
}

func TestRulesAndDocs(t *testing.T) {
	e := newEngine(t, Options{Builtin: true, Enforcement: map[string]string{"weir.resources.required": "deny"}})
	rules := e.Rules()
	byID := map[string]RuleInfo{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	d := byID["weir.image.digest"]
	if d.Title != "Images are pinned by digest" || d.Severity != "error" || d.File != "@builtin/image_digest.rego" || !d.Builtin || d.Remediation == "" {
		t.Errorf("weir.image.digest: %+v", d)
	}
	if r := byID["weir.resources.required"]; r.Severity != "warning" || r.Level() != "error" {
		t.Errorf("enforced rule: %+v level %s", r, r.Level())
	}
	if _, ok := byID[WaiverExpiredRule]; !ok {
		t.Error("Rules lacks " + WaiverExpiredRule)
	}
	if len(rules) < 15 {
		t.Errorf("%d rules", len(rules))
	}
	doc := Docs(rules)
	for _, want := range []string{
		"| [`weir.image.digest`](#weirimagedigest) | error | Images are pinned by digest |",
		"## weir.resources.required\n\n**Resources are set for user code**\n\nSeverity: warning (enforced as error)",
		"**Remediation:** Run `weir plan`",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("Docs lacks %q", want)
		}
	}
}

func TestTestRunner(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"limit.rego": `package weir.limit

deny contains "too many" if count(input.project.training) > data.weir.config.max

warn contains "none" if count(input.project.training) == 0
`,
		"limit_test.rego": `package weir.limit_test

import data.weir.limit

test_over if {
	limit.deny == {"too many"} with input as {"project": {"training": {"a": {}, "b": {}}}}
}

test_wrong if {
	count(limit.deny) == 0 with input as {"project": {"training": {"a": {}, "b": {}}}}
}

test_error if {
	x := 1 / 0
	x == 1
}
`,
		"untested.rego": "package weir.untested\n\nwarn contains \"x\" if input.nothing\n",
	})
	report, ds := Test(context.Background(), Options{Dirs: []string{dir}, Config: map[string]any{"max": 1}})
	if report == nil {
		t.Fatalf("no report: %v", ds)
	}
	assertDiag(t, ds, "policy-untested", filepath.Join(dir, "untested.rego"), 0, 0)
	got := map[string]bool{}
	for _, r := range report.Results {
		got[r.Name] = r.Passed
		if r.File != filepath.Join(dir, "limit_test.rego") || r.Line == 0 {
			t.Errorf("%s at %s:%d", r.Name, r.File, r.Line)
		}
		if r.Name == "test_error" && !strings.Contains(r.Error, "divide by zero") {
			t.Errorf("test_error: error %q", r.Error)
		}
	}
	if len(got) != 3 || !got["test_over"] || got["test_wrong"] || got["test_error"] {
		t.Errorf("results: %v", got)
	}
	if report.Passed() != 1 || report.Failed() != 2 || report.OK() {
		t.Errorf("passed %d failed %d ok %v", report.Passed(), report.Failed(), report.OK())
	}
	if len(report.Files) != 2 {
		t.Fatalf("coverage files: %+v", report.Files)
	}
	limit := report.Files[0]
	if limit.File != filepath.Join(dir, "limit.rego") || limit.Coverage <= 0 || limit.Coverage >= 100 || len(limit.NotCovered) == 0 {
		t.Errorf("limit.rego coverage: %+v", limit)
	}
	if report.Files[1].Coverage != 0 {
		t.Errorf("untested.rego coverage: %+v", report.Files[1])
	}
}

func TestAddressOf(t *testing.T) {
	for path, want := range map[string]string{
		"training.churn_model.image":            "training.churn_model",
		"training.churn_model":                  "training.churn_model",
		"training.m.trial[lr=0.1,l2=0].outputs": "training.m",
		"serving.api.canary[10]":                "serving.api",
		"models.m@production.gates":             "models.m@production",
		"project":                               "project",
		"policy.waivers[0].rule":                "policy.waivers[0]",
		"":                                      "",
	} {
		if got := addressOf(path); got != want {
			t.Errorf("addressOf(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestValueMatchesJSON holds the direct conversion to what encoding/json
// and a JSON decode give, minus the fields policies do not see.
func TestValueMatchesJSON(t *testing.T) {
	p, plan, _ := fixture()
	in := Input{Project: p, Plan: plan, Lock: lock, Changes: map[string]any{"added": []string{"training.x"}, "n": 2},
		Context: Context{User: "ana", Git: Git{Commit: "abc", Branch: "main"}, Environment: "ci"}}
	got, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}

	var planDoc map[string]any
	roundTrip(t, plan, &planDoc)
	delete(planDoc, "findings")
	delete(planDoc, "checksum")
	for _, s := range planDoc["steps"].([]any) {
		delete(s.(map[string]any), "task")
		delete(s.(map[string]any), "source")
	}
	var projectDoc, changes, ctx any
	roundTrip(t, p, &projectDoc)
	roundTrip(t, in.Changes, &changes)
	roundTrip(t, in.Context, &ctx)
	want, err := ast.InterfaceToValue(map[string]any{
		"project": projectDoc, "plan": planDoc,
		"lock":    map[string]any{"images": map[string]any{"python:3.12": lock.Images["python:3.12"]}},
		"changes": changes, "context": ctx,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Compare(want) != 0 {
		t.Errorf("input differs from the JSON round trip:\n got %s\nwant %s", got, want)
	}
}

func roundTrip(t *testing.T, v any, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(out); err != nil {
		t.Fatal(err)
	}
}

func TestConverterEdgeCases(t *testing.T) {
	type Inner struct {
		A string `json:"a"`
		B int    `json:"b,omitempty"`
	}
	type Outer struct {
		Inner
		A     string            `json:"a"` // shadows Inner.A
		P     *Inner            `json:"p"`
		N     *Inner            `json:"n,omitempty"`
		Raw   json.RawMessage   `json:"raw,omitempty"`
		Sev   diag.Severity     `json:"sev"`
		Bytes []byte            `json:"bytes"`
		M     map[int]string    `json:"m"`
		Z     time.Time         `json:"z,omitzero"`
		Skip  string            `json:"-"`
		priv  string            //nolint:unused
		Nil   map[string]string `json:"nil"`
		F     float64           `json:"f"`
	}
	v := Outer{Inner: Inner{A: "inner", B: 2}, A: "outer", P: &Inner{A: "p"}, Raw: json.RawMessage(`{"k":[1,2.5]}`),
		Sev: diag.Warning, Bytes: []byte("hi"), M: map[int]string{3: "x"}, Skip: "no", F: 0.1}
	got, err := (&converter{}).value(v)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	roundTrip(t, v, &doc)
	want, _ := ast.InterfaceToValue(doc)
	if got.Compare(want) != 0 {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestEvalConcurrent: an Engine serves evaluations from many goroutines,
// including the fallback that evaluates policies one by one.
func TestEvalConcurrent(t *testing.T) {
	dir := writeFiles(t, map[string]string{"types.rego": "package weir.types\n\ndeny contains \"x\" if input.project.project + 1 > 0\n"})
	p, plan, sm := fixture()
	e := newEngine(t, Options{Builtin: true, Dirs: []string{dir}, Config: p.Policy.Data})
	want, _ := e.Eval(context.Background(), Input{Project: p, Plan: plan, Lock: lock}, sm)
	done := make(chan []string)
	for range 4 {
		go func() {
			fs, _ := e.Eval(context.Background(), Input{Project: p, Plan: plan, Lock: lock}, sm)
			done <- keys(fs)
		}()
	}
	for range 4 {
		if got := <-done; strings.Join(got, "|") != strings.Join(keys(want), "|") {
			t.Errorf("concurrent evaluation gave %v, want %v", got, keys(want))
		}
	}
}
