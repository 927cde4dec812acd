package policy

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"weir.dev/weir/internal/diag"
)

// TestReport is the outcome of the policies' unit tests.
type TestReport struct {
	// Results of every test_ rule, sorted by file and line.
	Results []TestResult `json:"results"`
	// Files is the coverage of each module that is not a test, sorted by
	// file name.
	Files []FileCoverage `json:"files"`
	// Coverage is the percentage of the modules' lines that tests evaluate.
	Coverage float64 `json:"coverage"`
}

// TestResult is one test rule's outcome.
type TestResult struct {
	Package string `json:"package"`
	Name    string `json:"name"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	// Passed is true when the rule evaluated to true; Skipped for todo_
	// tests.
	Passed  bool `json:"passed"`
	Skipped bool `json:"skipped,omitempty"`
	// Error is why the test could not be evaluated (a conflict, a built-in
	// function's error, a timeout); empty when it ran.
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
	// Output is what print() wrote.
	Output string `json:"output,omitempty"`
}

// FileCoverage is one module's test coverage.
type FileCoverage struct {
	File            string  `json:"file"`
	Coverage        float64 `json:"coverage"`
	CoveredLines    int     `json:"covered_lines"`
	NotCoveredLines int     `json:"not_covered_lines"`
	// NotCovered are the line ranges [first, last] no test evaluated.
	NotCovered [][2]int `json:"not_covered,omitempty"`
}

// Passed counts the tests that passed.
func (r *TestReport) Passed() int {
	n := 0
	for _, t := range r.Results {
		if t.Passed {
			n++
		}
	}
	return n
}

// Failed counts the tests that failed or could not run.
func (r *TestReport) Failed() int {
	n := 0
	for _, t := range r.Results {
		if !t.Passed && !t.Skipped {
			n++
		}
	}
	return n
}

// OK reports whether there were tests and none failed.
func (r *TestReport) OK() bool { return len(r.Results) > 0 && r.Failed() == 0 }

// Test runs the policies' unit tests (test_ rules in _test.rego modules)
// of the built-in bundle (when opts.Builtin) and opts.Dirs with OPA's test
// runner, with opts.Config as data.weir.config and coverage per file. A
// module that is not a test and has no _test.rego beside it gives a
// "policy-untested" warning. Parse and compile errors are diagnostics as
// in New, and the report is then nil.
func Test(ctx context.Context, opts Options) (*TestReport, diag.Diagnostics) {
	b, ds := load(opts, true)
	if ds.HasErrors() {
		return nil, ds
	}
	ds = append(ds, untested(b)...)
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cov := cover.New()
	runner := tester.NewRunner().
		SetCompiler(newCompiler(true)).
		SetStore(inmem.NewFromObject(b.data)).
		SetModules(b.modules).
		SetCoverageQueryTracer(cov).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(true).
		SetTimeout(timeout)
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return nil, append(ds, regoErrors("policy-compile", err, "")...)
	}
	report := &TestReport{}
	for r := range ch {
		tr := TestResult{
			Package:  strings.TrimPrefix(r.Package, "data."),
			Name:     r.Name,
			Passed:   r.Pass(),
			Skipped:  r.Skip,
			Duration: r.Duration,
			Output:   string(r.Output),
		}
		if r.Location != nil {
			tr.File, tr.Line = r.Location.File, r.Location.Row
		}
		if r.Error != nil {
			tr.Error = r.Error.Error()
			tr.Passed = false
		}
		report.Results = append(report.Results, tr)
	}
	sort.Slice(report.Results, func(i, j int) bool {
		a, b := report.Results[i], report.Results[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Name < b.Name
	})

	mods := map[string]*ast.Module{}
	for name, m := range b.modules {
		if !b.tests[name] {
			mods[name] = m
		}
	}
	cr := cov.Report(mods)
	var covered, notCovered int
	for name := range mods {
		fc := FileCoverage{File: name}
		if fr := cr.Files[name]; fr != nil {
			fc.Coverage = fr.Coverage
			fc.CoveredLines = fr.CoveredLines
			fc.NotCoveredLines = fr.NotCoveredLines
			for _, rg := range fr.NotCovered {
				fc.NotCovered = append(fc.NotCovered, [2]int{rg.Start.Row, rg.End.Row})
			}
		}
		covered += fc.CoveredLines
		notCovered += fc.NotCoveredLines
		report.Files = append(report.Files, fc)
	}
	sort.Slice(report.Files, func(i, j int) bool { return report.Files[i].File < report.Files[j].File })
	if covered+notCovered > 0 {
		report.Coverage = 100 * float64(covered) / float64(covered+notCovered)
	}
	if ctx.Err() != nil {
		ds = append(ds, diag.Errorf("policy-cancelled", "", nil, "policy tests were cancelled"))
	}
	return report, ds
}

// untested lists the modules that are not tests and have no NAME_test.rego
// beside them.
func untested(b *bundle) diag.Diagnostics {
	var ds diag.Diagnostics
	for name := range b.modules {
		if b.tests[name] {
			continue
		}
		want := strings.TrimSuffix(name, ".rego") + "_test.rego"
		if _, ok := b.modules[want]; ok {
			continue
		}
		ds = append(ds, diag.Warnf("policy-untested", "", &diag.Range{Filename: name},
			"%s has no tests: add %s with test_ rules", name, filepath.Base(want)))
	}
	ds.Sort()
	return ds
}

// Docs renders a Markdown catalogue of rules: a table, then one section per
// rule with its description and remediation.
func Docs(rules []RuleInfo) string {
	rs := append([]RuleInfo(nil), rules...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	var b strings.Builder
	b.WriteString("# Policy rules\n\n")
	b.WriteString("| Rule | Severity | Title |\n| --- | --- | --- |\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | %s |\n", r.ID, anchor(r.ID), docSeverity(r), cell(r.Title))
	}
	for _, r := range rs {
		fmt.Fprintf(&b, "\n## %s\n\n", r.ID)
		if r.Title != "" {
			fmt.Fprintf(&b, "**%s**\n\n", r.Title)
		}
		fmt.Fprintf(&b, "Severity: %s", docSeverity(r))
		if r.File != "" {
			fmt.Fprintf(&b, " · Source: `%s`", r.File)
		}
		b.WriteString("\n\n")
		if r.Description != "" {
			b.WriteString(strings.TrimSpace(r.Description))
			b.WriteString("\n\n")
		}
		if r.Remediation != "" {
			b.WriteString("**Remediation:** ")
			b.WriteString(strings.TrimSpace(r.Remediation))
			b.WriteString("\n")
		}
	}
	return b.String()
}

func docSeverity(r RuleInfo) string {
	if r.Enforcement != "" && r.Level() != r.Severity {
		return fmt.Sprintf("%s (enforced as %s)", r.Severity, r.Level())
	}
	return r.Severity
}

// anchor is the heading anchor Markdown renderers give "## weir.image.digest".
func anchor(id string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		case c == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}
