package schema

// ColumnRule is a CUE constraint on one value (a dataset column or a model
// metric) compiled into a form the runtime checks without CUE: a type, bounds,
// a pattern, a set of allowed values. The compiler refuses constraints it
// cannot express this way, at their source position.
type ColumnRule struct {
	// Source is the constraint as written, for messages ("int & >=0").
	Source string `json:"source"`
	// Type is "int", "number", "string", "bool" or "" (any type).
	Type string `json:"type,omitempty"`
	// Nullable allows an empty cell or null.
	Nullable bool `json:"nullable,omitempty"`
	// Bounds are numeric comparisons the value must pass, all of them.
	Bounds []Bound `json:"bounds,omitempty"`
	// Patterns are regular expressions (RE2) the value must match (=~).
	Patterns []string `json:"patterns,omitempty"`
	// NotPatterns are regular expressions the value must not match (!~).
	NotPatterns []string `json:"notPatterns,omitempty"`
	// Enum, when set, lists the allowed values (a disjunction of literals),
	// rendered as strings as they appear in data.
	Enum []string `json:"enum,omitempty"`
}

// Bound is one numeric comparison: Op is one of ">", ">=", "<", "<=", "!=".
type Bound struct {
	Op    string  `json:"op"`
	Value float64 `json:"value"`
}

// Holds reports whether x passes the bound.
func (b Bound) Holds(x float64) bool {
	switch b.Op {
	case ">":
		return x > b.Value
	case ">=":
		return x >= b.Value
	case "<":
		return x < b.Value
	case "<=":
		return x <= b.Value
	case "!=":
		return x != b.Value
	}
	return false
}
