package policy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// finish turns raw values into findings: message, path and severity from
// the value, enforcement overrides, address and source from the path,
// waivers; then adds expired-waiver findings and sorts.
func (e *Engine) finish(raw []rawFinding, sm schema.SourceMap) ([]schema.Finding, diag.Diagnostics) {
	ds := e.checkSettings(sm)
	waivers, expired := e.activeWaivers()
	used := make([]bool, len(e.waivers))

	findings := make([]schema.Finding, 0, len(raw)+len(expired))
	for _, r := range raw {
		f := schema.Finding{Rule: r.t.id, Severity: diag.Error}
		if r.kind == "warn" {
			f.Severity = diag.Warning
		}
		declared := parseValue(r.value, &f)
		if declared != nil {
			f.Severity = *declared
		}
		sev, keep := e.enforce(f.Rule, f.Severity)
		if !keep {
			continue
		}
		f.Severity = sev
		f.Address = addressOf(f.Path)
		f.Source = lookup(sm, f.Path, f.Address)
		if i := waivers.match(f.Rule, f.Address, f.Path); i >= 0 {
			f.Waived = e.waivers[i].Reason
			if f.Waived == "" {
				f.Waived = "waived"
			}
			used[i] = true
		}
		findings = append(findings, f)
	}
	for _, i := range expired {
		w := e.waivers[i]
		sev, keep := e.enforce(WaiverExpiredRule, diag.Error)
		if !keep {
			continue
		}
		path := fmt.Sprintf("policy.waivers[%d]", i)
		findings = append(findings, schema.Finding{
			Rule:     WaiverExpiredRule,
			Severity: sev,
			Message: fmt.Sprintf("the waiver of %s on %s expired on %s (%s); fix the findings or renew the waiver",
				w.Rule, w.Address, w.Expires, w.Reason),
			Address: path,
			Path:    path,
			Source:  lookup(sm, path, "policy.waivers"),
		})
	}
	for i, w := range e.waivers {
		if !used[i] && !contains(expired, i) && e.validWaiver(w) {
			path := fmt.Sprintf("policy.waivers[%d]", i)
			ds = append(ds, diag.Diagnostic{
				Severity: diag.Info, Code: "policy-waiver-unused", Address: path, Range: lookup(sm, path, "policy.waivers"),
				Summary: fmt.Sprintf("the waiver of %s on %s accepts no finding; remove it if the problem is fixed", w.Rule, w.Address),
			})
		}
	}
	sortFindings(findings)
	return findings, ds
}

// parseValue reads a finding value: a string is the message; an object
// gives msg (or message), path and severity. Other values are shown as
// JSON. It returns the severity the value declares, if any.
func parseValue(v any, f *schema.Finding) *diag.Severity {
	switch x := v.(type) {
	case string:
		f.Message = x
		return nil
	case map[string]any:
		if s, ok := x["msg"].(string); ok {
			f.Message = s
		} else if s, ok := x["message"].(string); ok {
			f.Message = s
		} else {
			f.Message = jsonText(x)
		}
		if p, ok := x["path"].(string); ok {
			f.Path = p
		}
		if s, ok := x["severity"].(string); ok {
			var sev diag.Severity
			switch normalSeverity(s) {
			case "error":
				sev = diag.Error
			case "warning":
				sev = diag.Warning
			case "info":
				sev = diag.Info
			default:
				return nil
			}
			return &sev
		}
		return nil
	}
	f.Message = jsonText(v)
	return nil
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// enforce applies the rule's enforcement override; keep is false for "off".
func (e *Engine) enforce(rule string, sev diag.Severity) (diag.Severity, bool) {
	switch e.enforcement[rule] {
	case "deny":
		return diag.Error, true
	case "warn":
		return diag.Warning, true
	case "off":
		return sev, false
	}
	return sev, true
}

// addressOf is the address part of a path: its first two dot-separated
// elements ("training.churn_model.image" -> "training.churn_model"), dots
// inside brackets not counting.
func addressOf(path string) string {
	depth, dots := 0, 0
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '[':
			depth++
		case ']':
			depth--
		case '.':
			if depth == 0 {
				if dots++; dots == 2 {
					return path[:i]
				}
			}
		}
	}
	return path
}

func lookup(sm schema.SourceMap, path, fallback string) *diag.Range {
	if path != "" {
		if r := sm.Lookup(path); r != nil {
			return r
		}
	}
	if fallback != "" {
		return sm.Lookup(fallback)
	}
	return nil
}

// waiverIndex finds the waiver accepting a (rule, address) pair.
type waiverIndex map[string]map[string]int // rule -> address or "*" -> waiver index

func (wi waiverIndex) match(rule, address, path string) int {
	byAddr, ok := wi[rule]
	if !ok {
		return -1
	}
	for _, a := range []string{address, path, "*"} {
		if i, ok := byAddr[a]; ok {
			return i
		}
	}
	return -1
}

// activeWaivers indexes the waivers that have not expired, and lists the
// indexes of those that have. A waiver lapses at the end of its expiry day
// (UTC).
func (e *Engine) activeWaivers() (waiverIndex, []int) {
	idx := waiverIndex{}
	var expired []int
	now := e.now().UTC()
	for i, w := range e.waivers {
		day, err := time.Parse(time.DateOnly, w.Expires)
		if err != nil {
			continue // reported by checkSettings
		}
		if !now.Before(day.AddDate(0, 0, 1)) {
			expired = append(expired, i)
			continue
		}
		if idx[w.Rule] == nil {
			idx[w.Rule] = map[string]int{}
		}
		if _, dup := idx[w.Rule][w.Address]; !dup {
			idx[w.Rule][w.Address] = i
		}
	}
	return idx, expired
}

func (e *Engine) validWaiver(w schema.Waiver) bool {
	_, err := time.Parse(time.DateOnly, w.Expires)
	return err == nil
}

// checkSettings reports enforcement and waivers that name no loaded rule
// (a typo silently does nothing otherwise), bad enforcement levels and
// waiver dates that are not dates.
func (e *Engine) checkSettings(sm schema.SourceMap) diag.Diagnostics {
	var ds diag.Diagnostics
	ids := make([]string, 0, len(e.ruleIDs))
	for id := range e.ruleIDs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rules := make([]string, 0, len(e.enforcement))
	for id := range e.enforcement {
		rules = append(rules, id)
	}
	sort.Strings(rules)
	for _, id := range rules {
		path := "policy.enforcement." + id // the loader joins map keys with dots
		rng := lookup(sm, path, "policy.enforcement")
		switch lvl := e.enforcement[id]; lvl {
		case "deny", "warn", "off":
		default:
			ds = append(ds, diag.Errorf("policy-enforcement", "policy.enforcement", rng,
				"enforcement of %s is %q; it must be \"deny\", \"warn\" or \"off\"", id, lvl))
		}
		if !e.ruleIDs[id] {
			ds = append(ds, diag.Warnf("policy-unknown-rule", "policy.enforcement", rng,
				"enforcement names rule %s, which no loaded policy declares%s", id, diag.DidYouMean(id, ids)))
		}
	}
	for i, w := range e.waivers {
		path := fmt.Sprintf("policy.waivers[%d]", i)
		if !e.validWaiver(w) {
			ds = append(ds, diag.Errorf("policy-waiver", path, lookup(sm, path+".expires", "policy.waivers"),
				"waiver expiry %q is not a date (YYYY-MM-DD)", w.Expires))
		}
		if !e.ruleIDs[w.Rule] {
			ds = append(ds, diag.Warnf("policy-unknown-rule", path, lookup(sm, path+".rule", "policy.waivers"),
				"waiver names rule %s, which no loaded policy declares%s", w.Rule, diag.DidYouMean(w.Rule, ids)))
		}
	}
	return ds
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// sortFindings orders findings by source position (findings without one
// last), then rule, address, path, message and severity.
func sortFindings(fs []schema.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := &fs[i], &fs[j]
		if c := compareRange(a.Source, b.Source); c != 0 {
			return c < 0
		}
		for _, c := range []int{
			strings.Compare(a.Rule, b.Rule),
			strings.Compare(a.Address, b.Address),
			strings.Compare(a.Path, b.Path),
			strings.Compare(a.Message, b.Message),
			int(a.Severity) - int(b.Severity),
		} {
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
}

func compareRange(a, b *diag.Range) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	if c := strings.Compare(a.Filename, b.Filename); c != 0 {
		return c
	}
	if a.Start.Line != b.Start.Line {
		return a.Start.Line - b.Start.Line
	}
	return a.Start.Column - b.Start.Column
}
