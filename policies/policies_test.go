package policies_test

import (
	"context"
	"io/fs"
	"path"
	"strings"
	"testing"

	"weir.dev/weir/compiler/policy"
	"weir.dev/weir/policies"
)

// TestBundle runs every _test.rego of the bundle with OPA's test runner and
// requires all of them to pass.
func TestBundle(t *testing.T) {
	report, ds := policy.Test(context.Background(), policy.Options{Builtin: true})
	for _, d := range ds {
		t.Errorf("diagnostic: %s (%s)", d, d.Code)
	}
	if report == nil {
		t.Fatal("no report")
	}
	if len(report.Results) == 0 {
		t.Fatal("the bundle has no tests")
	}
	for _, r := range report.Results {
		if !r.Passed {
			t.Errorf("%s:%d: %s.%s failed %s%s", r.File, r.Line, r.Package, r.Name, r.Error, r.Output)
		}
	}
	t.Logf("%d tests, coverage %.1f%%", len(report.Results), report.Coverage)
	for _, f := range report.Files {
		if f.Coverage < 90 {
			t.Errorf("%s: coverage %.1f%% is below 90%% (not covered: %v)", f.File, f.Coverage, f.NotCovered)
		}
	}
}

// TestEveryModuleHasTestsAndMetadata holds the bundle to its conventions:
// each module has a NAME_test.rego beside it and a METADATA block; each
// rule declares id, title, description, severity and remediation, and its
// id is weir.<package path after weir>.
func TestEveryModuleHasTestsAndMetadata(t *testing.T) {
	files := map[string]bool{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files[p] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var modules []string
	for f := range files {
		if strings.HasSuffix(f, ".rego") && !strings.HasSuffix(f, "_test.rego") {
			modules = append(modules, f)
			if !files[strings.TrimSuffix(f, ".rego")+"_test.rego"] {
				t.Errorf("%s has no %s", f, path.Base(strings.TrimSuffix(f, ".rego")+"_test.rego"))
			}
			src, _ := fs.ReadFile(policies.FS, f)
			if !strings.HasPrefix(string(src), "# METADATA\n# title: ") {
				t.Errorf("%s does not start with a METADATA block with a title", f)
			}
		}
	}

	e, ds := policy.New(context.Background(), policy.Options{Builtin: true})
	if ds.HasErrors() {
		t.Fatal(ds.Err())
	}
	rules := map[string]policy.RuleInfo{}
	byFile := map[string]bool{}
	for _, r := range e.Rules() {
		rules[r.ID] = r
		if r.ID == policy.WaiverExpiredRule {
			continue
		}
		byFile[strings.TrimPrefix(r.File, policy.BuiltinPrefix+"/")] = true
		if r.Title == "" || r.Description == "" || r.Remediation == "" {
			t.Errorf("%s (%s): METADATA lacks title, description or custom.remediation", r.ID, r.File)
		}
		if r.Severity != "error" && r.Severity != "warning" {
			t.Errorf("%s: custom.severity is %q, want error or warning", r.ID, r.Severity)
		}
		if r.ID != r.Package {
			t.Errorf("%s: custom.id differs from the package %s", r.ID, r.Package)
		}
		if !r.Builtin {
			t.Errorf("%s is not marked built-in", r.ID)
		}
	}
	for _, m := range modules {
		if !strings.HasPrefix(m, "lib/") && !byFile[m] {
			t.Errorf("%s declares no rule (deny or warn) with METADATA", m)
		}
	}
	if n := len(rules) - 1; n < 14 {
		t.Errorf("the bundle has %d rules, want at least 14", n)
	}
}
