package registry

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// CheckGates checks metrics against gates (metric name -> rule) and returns
// one result per gate, sorted by metric name. A metric the gates do not name
// is ignored; a gate whose metric is missing fails.
func CheckGates(metrics map[string]float64, gates map[string]schema.ColumnRule) []state.GateResult {
	names := make([]string, 0, len(gates))
	for name := range gates {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]state.GateResult, 0, len(names))
	for _, name := range names {
		rule := gates[name]
		g := state.GateResult{Metric: name, Rule: RuleText(rule)}
		v, ok := metrics[name]
		switch {
		case !ok:
			g.Message = fmt.Sprintf("metric %s was not reported", name)
		default:
			g.Value, g.Reported = v, true
			if why, holds := Holds(rule, v); holds {
				g.Passed = true
			} else {
				g.Message = fmt.Sprintf("%s = %s does not satisfy %s", name, formatNumber(v), g.Rule)
				if why != "" {
					g.Message += " (" + why + ")"
				}
			}
		}
		out = append(out, g)
	}
	return out
}

// Holds reports whether the metric value x satisfies rule. When it does not,
// why may add what the rule text alone does not show (a NaN, a fraction
// where an int is wanted); it is "" for a plain failed bound.
//
// A metric is a number, so: Type "" and "number" accept any finite number,
// "int" only whole numbers, "string" and "bool" nothing; every Bound must
// hold; Enum, when set, must contain the number (compared as numbers, or as
// text when an entry is not a number); Patterns and NotPatterns apply to the
// number's shortest decimal text ("0.8"). Nullable does not excuse a missing
// metric.
func Holds(rule schema.ColumnRule, x float64) (why string, holds bool) {
	if math.IsNaN(x) {
		return "not a number", false
	}
	if math.IsInf(x, 0) {
		return "not a finite number", false
	}
	switch rule.Type {
	case "", "number":
	case "int":
		if x != math.Trunc(x) {
			return "not a whole number", false
		}
	default:
		return fmt.Sprintf("a metric is a number, the gate wants a %s", rule.Type), false
	}
	for _, b := range rule.Bounds {
		if !b.Holds(x) {
			return "", false
		}
	}
	text := formatNumber(x)
	if len(rule.Enum) > 0 {
		found := false
		for _, e := range rule.Enum {
			if f, err := strconv.ParseFloat(e, 64); err == nil && f == x || e == text {
				found = true
				break
			}
		}
		if !found {
			return "not one of " + strings.Join(rule.Enum, ", "), false
		}
	}
	for _, p := range rule.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return fmt.Sprintf("pattern %q is not a valid regular expression", p), false
		}
		if !re.MatchString(text) {
			return fmt.Sprintf("does not match %q", p), false
		}
	}
	for _, p := range rule.NotPatterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return fmt.Sprintf("pattern %q is not a valid regular expression", p), false
		}
		if re.MatchString(text) {
			return fmt.Sprintf("matches %q", p), false
		}
	}
	return "", true
}

// RuleText is the rule as the spec wrote it (Source), or, for a rule built
// without one, its parts joined with " & " (">=0.8 & <=1").
func RuleText(rule schema.ColumnRule) string {
	if rule.Source != "" {
		return rule.Source
	}
	var parts []string
	if rule.Type != "" {
		parts = append(parts, rule.Type)
	}
	for _, b := range rule.Bounds {
		parts = append(parts, b.Op+formatNumber(b.Value))
	}
	if len(rule.Enum) > 0 {
		parts = append(parts, strings.Join(rule.Enum, " | "))
	}
	for _, p := range rule.Patterns {
		parts = append(parts, "=~"+strconv.Quote(p))
	}
	for _, p := range rule.NotPatterns {
		parts = append(parts, "!~"+strconv.Quote(p))
	}
	if len(parts) == 0 {
		return "_"
	}
	return strings.Join(parts, " & ")
}

func formatNumber(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
