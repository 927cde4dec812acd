package view

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// golden compares got with testdata/name, or rewrites the file when
// WEIR_UPDATE is set (WEIR_UPDATE=1 go test ./cmd/weir/internal/view/).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if os.Getenv("WEIR_UPDATE") != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run WEIR_UPDATE=1 go test ./cmd/weir/internal/view/ to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (WEIR_UPDATE=1 rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func at(line, col, endLine, endCol int) *diag.Range {
	return &diag.Range{Filename: "weir.cue", Start: diag.Pos{Line: line, Column: col}, End: diag.Pos{Line: endLine, Column: endCol}}
}

// sampleFindings covers every case a renderer must handle: each severity,
// a waiver, a finding without a source (and one without an address), and
// a message with characters each format escapes.
func sampleFindings() ([]schema.Finding, []RuleMeta) {
	findings := []schema.Finding{
		{Rule: "weir.image.digest", Severity: diag.Error, Message: `image "python:3.12" is not pinned by digest (in the reference or in weir.lock)`,
			Address: "training.churn_model", Path: "training.churn_model.image", Source: at(13, 3, 13, 28)},
		{Rule: "weir.pii.features", Severity: diag.Error, Message: `feature set churn_v1 keeps column "email", which datasets.customers marks as PII`,
			Address: "features.churn_v1", Path: "features.churn_v1.columns[1]", Source: at(18, 23, 18, 23), Waived: "approved by the DPO, ticket PRIV-12"},
		{Rule: "acme.naming", Severity: diag.Warning, Message: "100% | <odd> & \"quoted\", with: colons\nand a second line",
			Address: "tasks.report", Path: "tasks.report", Source: at(30, 2, 30, 2)},
		{Rule: "acme.style", Severity: diag.Info, Message: "consider a description", Address: "models.churn_model", Path: "models.churn_model.description", Source: at(40, 2, 40, 2)},
		{Rule: "weir.budget.cost", Severity: diag.Error, Message: "the plan is estimated to cost 50, above the budget of 10",
			Address: "policy.data", Path: "policy.data.budget.cost"},
		{Rule: "weir.owner", Severity: diag.Error, Message: "project churn names no owner (owner or governance.owners)"},
	}
	rules := []RuleMeta{
		{ID: "weir.image.digest", Title: "Images are pinned by digest", Description: "Every container image is pinned to a content digest.",
			Severity: "error", Remediation: "Run `weir plan` with registry access so weir.lock pins the tag."},
		{ID: "weir.pii.features", Title: "PII columns are not used as features", Description: "Columns a dataset lists in pii do not reach training.",
			Severity: "error", Remediation: "Drop the PII column from columns."},
		{ID: "weir.budget.cost", Title: "The plan fits the cost budget", Severity: "error", Remediation: "Narrow the plan or raise budget.cost."},
		{ID: "weir.owner", Title: "The project has an owner", Severity: "error", Remediation: "Add owner at the top of the spec."},
		{ID: "weir.resources.required", Title: "Resources are set for user code", Severity: "warning", Remediation: "Add resources."},
		{ID: "weir.secrets.env", Title: "Secrets are references, not values", Severity: "off"},
	}
	return findings, rules
}

func TestRenderFindingsGolden(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	findings, rules := sampleFindings()
	for _, format := range FindingFormats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderFindings(&buf, format, findings, rules, "weir.cue"); err != nil {
				t.Fatal(err)
			}
			golden(t, "findings."+format+".golden", buf.Bytes())
		})
	}
}

func TestRenderNoFindingsGolden(t *testing.T) {
	_, rules := sampleFindings()
	var all bytes.Buffer
	for _, format := range FindingFormats {
		var buf bytes.Buffer
		if err := RenderFindings(&buf, format, nil, rules, "weir.cue"); err != nil {
			t.Fatal(err)
		}
		all.WriteString("== " + format + "\n")
		all.Write(buf.Bytes())
	}
	golden(t, "findings.none.golden", all.Bytes())
}

func TestRenderFindingsUnknownFormat(t *testing.T) {
	err := RenderFindings(&bytes.Buffer{}, "yaml", nil, nil, "weir.cue")
	if err == nil || !strings.Contains(err.Error(), "sarif") {
		t.Errorf("err = %v, want one listing the formats", err)
	}
}

// TestSARIF checks what code scanning relies on: a result per finding at a
// line (line 1 of the spec without a source), rule indexes that point at
// the right descriptor, fingerprints that are stable and distinct, and
// waivers as suppressions.
func TestSARIF(t *testing.T) {
	findings, rules := sampleFindings()
	render := func(fs []schema.Finding) map[string]any {
		var buf bytes.Buffer
		if err := RenderFindings(&buf, "sarif", fs, rules, "weir.cue"); err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	doc := render(findings)
	if doc["version"] != "2.1.0" {
		t.Errorf("version %v", doc["version"])
	}
	run := doc["runs"].([]any)[0].(map[string]any)
	descs := run["tool"].(map[string]any)["driver"].(map[string]any)["rules"].([]any)
	results := run["results"].([]any)
	if len(results) != len(findings) {
		t.Fatalf("%d results for %d findings", len(results), len(findings))
	}
	prints := map[string]bool{}
	for i, r := range results {
		res := r.(map[string]any)
		desc := descs[int(res["ruleIndex"].(float64))].(map[string]any)
		if desc["id"] != res["ruleId"] {
			t.Errorf("result %d: ruleIndex points at %v, not %v", i, desc["id"], res["ruleId"])
		}
		region := res["locations"].([]any)[0].(map[string]any)["physicalLocation"].(map[string]any)["region"].(map[string]any)
		if region["startLine"].(float64) < 1 {
			t.Errorf("result %d has no line", i)
		}
		fp := res["partialFingerprints"].(map[string]any)["weirFinding/v1"].(string)
		if prints[fp] {
			t.Errorf("fingerprint %s repeats", fp)
		}
		prints[fp] = true
		_, suppressed := res["suppressions"]
		if suppressed != (findings[i].Waived != "") {
			t.Errorf("result %d: suppressed %v, waived %q", i, suppressed, findings[i].Waived)
		}
	}
	// Moving a finding to another line keeps its fingerprint.
	moved := append([]schema.Finding(nil), findings...)
	moved[0].Source = at(99, 1, 99, 1)
	again := render(moved)["runs"].([]any)[0].(map[string]any)["results"].([]any)
	fp := func(r any) any { return r.(map[string]any)["partialFingerprints"].(map[string]any)["weirFinding/v1"] }
	if fp(again[0]) != fp(results[0]) {
		t.Error("the fingerprint changed with the line")
	}
}

// TestGitHubAlwaysHasALine: every workflow command names a file and a line,
// or GitHub drops the annotation from the diff.
func TestGitHubAlwaysHasALine(t *testing.T) {
	findings, rules := sampleFindings()
	var buf bytes.Buffer
	if err := RenderFindings(&buf, "github", findings, rules, "weir.cue"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(findings) {
		t.Fatalf("%d commands for %d findings:\n%s", len(lines), len(findings), buf.String())
	}
	for i, l := range lines {
		if !strings.Contains(l, " file=weir.cue,line=") {
			t.Errorf("command %d has no file and line: %s", i, l)
		}
	}
	if !strings.HasPrefix(lines[1], "::notice ") || !strings.Contains(lines[1], "waived: approved by the DPO") {
		t.Errorf("waived finding: %s", lines[1])
	}
}

func TestJUnitIsValidXML(t *testing.T) {
	findings, rules := sampleFindings()
	var buf bytes.Buffer
	if err := RenderFindings(&buf, "junit", findings, rules, "weir.cue"); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Suites[0]
	// 6 findings and the one active rule that found nothing.
	if s.Tests != 7 || s.Failures != 3 || s.Skipped != 1 {
		t.Errorf("tests %d failures %d skipped %d", s.Tests, s.Failures, s.Skipped)
	}
}
