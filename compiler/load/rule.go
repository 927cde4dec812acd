package load

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/token"

	"weir.dev/weir/schema"
)

// compileRule turns a CUE constraint on one value (a column or a metric) into
// a schema.ColumnRule the runtime checks without CUE. Supported: basic types
// (int, number, float, string, bool), bounds (>, >=, <, <=, !=), patterns
// (=~, !~), literals and disjunctions of literals, and `| null`. Anything else
// is refused with the reason, so a constraint is never silently ignored.
func compileRule(v cue.Value) (schema.ColumnRule, error) {
	src, closed := sourceText(v)
	if closed {
		if r, ok := ruleMemo.Load(src); ok {
			return r.(schema.ColumnRule), nil
		}
	}
	r := schema.ColumnRule{Source: src}
	if err := addConstraint(&r, v, true); err != nil {
		return r, err
	}
	if closed {
		ruleMemo.Store(src, r)
	}
	return r, nil
}

// ruleMemo holds the rules compiled from constraints written in closed form
// (see closedForm), by source text: a spec repeats the same few column
// constraints many times, and reading a constraint back from CUE costs
// more than evaluating it.
var ruleMemo sync.Map // string -> schema.ColumnRule

// sourceText renders a constraint as it reads, and reports whether the
// rendering is in closed form, so the text alone determines the rule.
func sourceText(v cue.Value) (string, bool) {
	if n := v.Syntax(cue.Raw()); n != nil {
		if b, err := format.Node(n); err == nil {
			return strings.Join(strings.Fields(string(b)), " "), closedForm(n)
		}
	}
	return fmt.Sprint(v), false
}

// closedFormIdent reports whether name is one closedForm accepts.
func closedFormIdent(name string) bool {
	switch name {
	case "int", "number", "float", "string", "bool", "bytes", "null", "_":
		return true
	}
	return false
}

// closedForm reports whether a constraint's syntax is built of literals,
// the basic types, bounds, patterns, & and | only: no reference, default,
// call or struct, so that its meaning depends on nothing but its text.
func closedForm(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return closedFormIdent(n.Name) && n.Node == nil
	case *ast.ParenExpr:
		return closedForm(n.X)
	case *ast.UnaryExpr:
		switch n.Op {
		case token.GTR, token.GEQ, token.LSS, token.LEQ, token.NEQ, token.MAT, token.NMAT, token.SUB, token.ADD:
			return closedForm(n.X)
		}
		return false
	case *ast.BinaryExpr:
		switch n.Op {
		case token.AND, token.OR:
			return closedForm(n.X) && closedForm(n.Y)
		}
		return false
	}
	return false
}

func addConstraint(r *schema.ColumnRule, v cue.Value, top bool) error {
	op, args := v.Expr()
	switch op {
	case cue.AndOp:
		for _, a := range args {
			if err := addConstraint(r, a, false); err != nil {
				return err
			}
		}
		return nil
	case cue.OrOp:
		return addDisjunction(r, args)
	case cue.GreaterThanOp, cue.GreaterThanEqualOp, cue.LessThanOp, cue.LessThanEqualOp, cue.NotEqualOp:
		if len(args) != 1 {
			return fmt.Errorf("unsupported bound %v", v)
		}
		f, err := args[0].Float64()
		if err != nil {
			return fmt.Errorf("bound %v is not a number", v)
		}
		r.Bounds = append(r.Bounds, schema.Bound{Op: op.String(), Value: f})
		if r.Type == "" {
			r.Type = "number"
		}
		return nil
	case cue.RegexMatchOp, cue.NotRegexMatchOp:
		s, err := args[0].String()
		if err != nil {
			return fmt.Errorf("pattern %v is not a string", v)
		}
		if _, err := regexp.Compile(s); err != nil {
			return fmt.Errorf("bad pattern %q: %v", s, err)
		}
		if op == cue.RegexMatchOp {
			r.Patterns = append(r.Patterns, s)
		} else {
			r.NotPatterns = append(r.NotPatterns, s)
		}
		r.Type = "string"
		return nil
	case cue.NoOp:
		return addBasic(r, v)
	}
	return fmt.Errorf("constraint %v cannot be checked on data rows (use types, bounds, =~ patterns or a list of values)", v)
}

func addBasic(r *schema.ColumnRule, v cue.Value) error {
	if v.IsConcrete() {
		s, err := literal(v)
		if err != nil {
			return err
		}
		if v.Kind() == cue.NullKind {
			r.Nullable = true
			return nil
		}
		r.Enum = append(r.Enum, s)
		return nil
	}
	switch v.IncompleteKind() {
	case cue.IntKind:
		r.Type = "int"
	case cue.NumberKind, cue.FloatKind:
		if r.Type != "int" {
			r.Type = "number"
		}
	case cue.StringKind:
		r.Type = "string"
	case cue.BoolKind:
		r.Type = "bool"
	case cue.TopKind:
	case cue.NullKind:
		r.Nullable = true
	default:
		return fmt.Errorf("constraint %v cannot be checked on data rows", v)
	}
	return nil
}

// addDisjunction handles `T | null` and a list of literals ("a" | "b", 0 | 1).
func addDisjunction(r *schema.ColumnRule, args []cue.Value) error {
	var rest []cue.Value
	for _, a := range args {
		if a.IsConcrete() && a.Kind() == cue.NullKind {
			r.Nullable = true
			continue
		}
		rest = append(rest, a)
	}
	allLiterals := true
	for _, a := range rest {
		if !a.IsConcrete() {
			allLiterals = false
		}
	}
	if allLiterals {
		for _, a := range rest {
			s, err := literal(a)
			if err != nil {
				return err
			}
			r.Enum = append(r.Enum, s)
		}
		return nil
	}
	if len(rest) == 1 {
		return addConstraint(r, rest[0], false)
	}
	return fmt.Errorf("a disjunction of types cannot be checked on data rows: write one type, or a list of values")
}

// literal renders a concrete value as it appears in data.
func literal(v cue.Value) (string, error) {
	switch v.Kind() {
	case cue.StringKind:
		return v.String()
	case cue.IntKind:
		n, err := v.Int64()
		return strconv.FormatInt(n, 10), err
	case cue.FloatKind, cue.NumberKind:
		f, err := v.Float64()
		return strconv.FormatFloat(f, 'g', -1, 64), err
	case cue.BoolKind:
		b, err := v.Bool()
		return strconv.FormatBool(b), err
	case cue.NullKind:
		return "", nil
	}
	return "", fmt.Errorf("value %v cannot be checked on data rows", v)
}
