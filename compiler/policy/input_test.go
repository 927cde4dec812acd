package policy

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
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
