package load

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// The HCL front end: the .hcl files of a project folder, merged, with a
// block per element and attributes or blocks for everything else:
//
//	project = "churn"
//	dataset "customers" { source { kind = "file", uri = "c.csv" } }
//	training "churn_model" { features = features.churn_v1 ... }
//
// An element block's type is the section's singular or plural name
// (dataset or datasets, feature or features, model or models, task or
// tasks, backend or backends; training, serving, monitoring, batch), its one
// label the element's name. Unlabelled top-level blocks (defaults,
// governance, policy, labels) and nested blocks become objects of that
// name. A reference to an element is an HCL traversal, section.name, whose
// value is the Weir address "section.name". variable blocks (type,
// default, description) are read as var.NAME and set by Options.Vars;
// locals blocks as local.NAME. HCL's standard functions (cty's stdlib) are
// available.

// hclSections maps element block types to their section.
var hclSections = map[string]string{
	"dataset": "datasets", "datasets": "datasets",
	"feature": "features", "features": "features",
	"training": "training",
	"model":    "models", "models": "models",
	"serving":    "serving",
	"monitoring": "monitoring",
	"batch":      "batch",
	"task":       "tasks", "tasks": "tasks",
	"backend": "backends", "backends": "backends",
}

// hclObjects are the unlabelled top-level blocks.
var hclObjects = map[string]bool{"defaults": true, "governance": true, "policy": true, "labels": true}

// evaluateHCL evaluates, checks and decodes the .hcl files of a project.
func evaluateHCL(dir string, files []*specFile, opts Options) (*schema.Project, schema.SourceMap, diag.Diagnostics) {
	fs, diags := readHCL(files, opts)
	if fs == nil {
		return nil, nil, diags
	}
	return checkFront(dir, fs)
}

// hclReader evaluates HCL bodies into data and a source map.
type hclReader struct {
	sm    schema.SourceMap
	diags diag.Diagnostics
	ctx   *hcl.EvalContext
	nums  numberTexts
	// elems are the declared elements by section.
	elems map[string]map[string]hcl.Range
}

func readHCL(files []*specFile, opts Options) (*frontSpec, diag.Diagnostics) {
	r := &hclReader{sm: schema.SourceMap{}, elems: map[string]map[string]hcl.Range{}, nums: numberTexts{}}
	srcs := map[string][]byte{}
	var bodies []*hclsyntax.Body
	for _, f := range files {
		srcs[f.name] = f.src
		file, hd := hclsyntax.ParseConfig(f.src, f.name, hcl.InitialPos)
		r.add(hd, "syntax")
		if file != nil {
			if b, ok := file.Body.(*hclsyntax.Body); ok {
				bodies = append(bodies, b)
			}
		}
	}
	main := files[0].name
	for _, f := range files {
		if f.name == "weir.hcl" {
			main = f.name
		}
	}
	if r.diags.HasErrors() {
		return nil, (&frontSpec{main: main}).placed(r.diags)
	}

	// Declarations first: variables, locals, and the elements references
	// may name.
	type blockAt struct {
		b       *hclsyntax.Block
		section string
	}
	var vars, locals []*hclsyntax.Block
	var elems, objects []blockAt
	for _, body := range bodies {
		for _, b := range body.Blocks {
			switch {
			case b.Type == "variable":
				if r.labels(b, 1) {
					vars = append(vars, b)
				}
			case b.Type == "locals":
				if r.labels(b, 0) {
					locals = append(locals, b)
				}
			case hclSections[b.Type] != "":
				if !r.labels(b, 1) {
					continue
				}
				sec := hclSections[b.Type]
				if r.elems[sec] == nil {
					r.elems[sec] = map[string]hcl.Range{}
				}
				if prev, dup := r.elems[sec][b.Labels[0]]; dup {
					r.errorf("duplicate", b.DefRange(), "%s.%s is declared twice (first at %s)", sec, b.Labels[0], rangeText(prev))
					continue
				}
				r.elems[sec][b.Labels[0]] = b.DefRange()
				elems = append(elems, blockAt{b, sec})
			case hclObjects[b.Type]:
				if r.labels(b, 0) {
					objects = append(objects, blockAt{b, b.Type})
				}
			default:
				known := []string{"variable", "locals"}
				for k := range hclSections {
					known = append(known, k)
				}
				for k := range hclObjects {
					known = append(known, k)
				}
				r.errorf("unknown-block", b.TypeRange, "unknown block type %q%s", b.Type, diag.DidYouMean(b.Type, known))
			}
		}
	}
	r.ctx = &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: hclFunctions()}
	for sec, names := range r.elems {
		m := map[string]cty.Value{}
		for n := range names {
			m[n] = cty.StringVal(sec + "." + n)
		}
		r.ctx.Variables[sec] = cty.ObjectVal(m)
	}
	for _, sec := range hclSections {
		if _, ok := r.ctx.Variables[sec]; !ok {
			r.ctx.Variables[sec] = cty.EmptyObjectVal
		}
	}
	r.variables(vars, opts.Inputs, main)
	r.locals(locals)
	if r.diags.HasErrors() {
		return nil, (&frontSpec{main: main}).placed(r.diags)
	}

	data := map[string]any{}
	for _, body := range bodies {
		for _, name := range sortedAttrs(body.Attributes) {
			a := body.Attributes[name]
			if _, dup := data[name]; dup {
				r.errorf("duplicate", a.NameRange, "%s is set twice", name)
				continue
			}
			r.mark(name, a.NameRange)
			data[name] = r.expr(name, a.Expr)
		}
	}
	for _, e := range elems {
		sec, ok := data[e.section].(map[string]any)
		if _, set := data[e.section]; set && !ok {
			r.errorf("duplicate", e.b.DefRange(), "%s is set as an attribute and by blocks", e.section)
			continue
		}
		if sec == nil {
			sec = map[string]any{}
			data[e.section] = sec
			r.mark(e.section, e.b.TypeRange)
		}
		p := e.section + "." + e.b.Labels[0]
		r.mark(p, e.b.TypeRange)
		sec[e.b.Labels[0]] = r.body(p, e.b.Body)
	}
	for _, o := range objects {
		if _, dup := data[o.section]; dup {
			r.errorf("duplicate", o.b.DefRange(), "%s is set twice", o.section)
			continue
		}
		r.mark(o.section, o.b.TypeRange)
		data[o.section] = r.body(o.section, o.b.Body)
	}
	fs := &frontSpec{data: data, sm: r.sm, srcs: srcs, main: main}
	if r.diags.HasErrors() {
		return nil, fs.placed(r.diags)
	}
	return fs, nil
}

func sortedAttrs(m hclsyntax.Attributes) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// labels checks a block has n labels.
func (r *hclReader) labels(b *hclsyntax.Block, n int) bool {
	if len(b.Labels) == n {
		return true
	}
	switch n {
	case 0:
		r.errorf("syntax", b.DefRange(), "a %s block takes no label", b.Type)
	default:
		r.errorf("syntax", b.DefRange(), "a %s block takes one label, its name: %s \"NAME\" { ... }", b.Type, b.Type)
	}
	return false
}

// body reads a block body as an object: attributes and nested blocks (a
// nested block's labels nest objects under its type).
func (r *hclReader) body(path string, b *hclsyntax.Body) map[string]any {
	out := map[string]any{}
	for _, name := range sortedAttrs(b.Attributes) {
		a := b.Attributes[name]
		p := join(path, name)
		r.mark(p, a.NameRange)
		out[name] = r.expr(p, a.Expr)
	}
	for _, nb := range b.Blocks {
		m, p := out, join(path, nb.Type)
		keys := append([]string{nb.Type}, nb.Labels...)
		for i, k := range keys {
			if i > 0 {
				p = join(p, k)
			}
			if i == len(keys)-1 {
				if _, dup := m[k]; dup {
					r.errorf("duplicate", nb.DefRange(), "%s is set twice", p)
					break
				}
				r.mark(p, nb.TypeRange)
				m[k] = r.body(p, nb.Body)
				break
			}
			next, ok := m[k].(map[string]any)
			if !ok {
				if _, set := m[k]; set {
					r.errorf("duplicate", nb.DefRange(), "%s is set twice", p)
					break
				}
				next = map[string]any{}
				m[k] = next
				r.mark(p, nb.TypeRange)
			}
			m = next
		}
	}
	return out
}

// expr evaluates an expression, after checking its references to elements.
func (r *hclReader) expr(path string, e hclsyntax.Expression) any {
	r.places(path, e)
	ok := true
	for _, tr := range e.Variables() {
		if !r.checkRef(tr) {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	v, hd := e.Value(r.ctx)
	if r.add(hd, "invalid") {
		return nil
	}
	x, err := r.nums.data(v)
	if err != nil {
		r.errorf("invalid", e.Range(), "%s: %v", path, err)
		return nil
	}
	return x
}

// checkRef reports a reference to an element that is not declared, with a
// suggestion.
func (r *hclReader) checkRef(tr hcl.Traversal) bool {
	root := tr.RootName()
	sec, isSec := r.ctx.Variables[root]
	if !isSec || len(tr) < 2 || hclSections[root] != root {
		return true
	}
	at, ok := tr[1].(hcl.TraverseAttr)
	if !ok {
		return true
	}
	if sec.Type().IsObjectType() && sec.Type().HasAttribute(at.Name) {
		return true
	}
	var names []string
	for n := range r.elems[root] {
		names = append(names, n)
	}
	r.errorf("reference", tr.SourceRange(), "%s.%s is not declared%s", root, at.Name, diag.DidYouMean(at.Name, names))
	return false
}

// places records where the fields of object and tuple constructors are
// written.
func (r *hclReader) places(path string, e hclsyntax.Expression) {
	switch e := e.(type) {
	case *hclsyntax.ObjectConsExpr:
		for _, it := range e.Items {
			kv, hd := it.KeyExpr.Value(r.ctx)
			if hd.HasErrors() || !kv.IsKnown() || kv.IsNull() || kv.Type() != cty.String {
				continue
			}
			p := join(path, kv.AsString())
			r.mark(p, it.KeyExpr.Range())
			r.places(p, it.ValueExpr)
		}
	case *hclsyntax.TupleConsExpr:
		for i, x := range e.Exprs {
			p := path + "[" + strconv.Itoa(i) + "]"
			r.mark(p, x.Range())
			r.places(p, x)
		}
	case *hclsyntax.ParenthesesExpr:
		r.places(path, e.Expression)
	}
}

func (r *hclReader) mark(path string, rng hcl.Range) {
	if _, ok := r.sm[path]; !ok {
		r.sm[path] = *hclRange(rng)
	}
}

func hclRange(rng hcl.Range) *diag.Range {
	at := diag.Pos{Line: rng.Start.Line, Column: rng.Start.Column, Offset: rng.Start.Byte}
	end := diag.Pos{Line: rng.End.Line, Column: rng.End.Column, Offset: rng.End.Byte}
	return &diag.Range{Filename: rng.Filename, Start: at, End: end}
}

func rangeText(rng hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", rng.Filename, rng.Start.Line, rng.Start.Column)
}

func (r *hclReader) errorf(code string, rng hcl.Range, format string, args ...any) {
	r.diags = append(r.diags, diag.Errorf(code, "", hclRange(rng), format, args...))
}

// add converts HCL's diagnostics (the one adapter for hcl.Diagnostics) and
// reports whether any is an error.
func (r *hclReader) add(hd hcl.Diagnostics, code string) bool {
	for _, d := range hd {
		sev := diag.Error
		if d.Severity == hcl.DiagWarning {
			sev = diag.Warning
		}
		var rng *diag.Range
		if d.Subject != nil {
			rng = hclRange(*d.Subject)
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + strings.TrimSuffix(d.Detail, ".")
		}
		r.diags = append(r.diags, diag.Diagnostic{Severity: sev, Code: code, Range: rng, Summary: msg})
	}
	return hd.HasErrors()
}

// variables sets var.NAME: the value given (Options.Vars), else the
// default; a typed variable converts its value to the type (see
// Inputs.Vars).
func (r *hclReader) variables(blocks []*hclsyntax.Block, in Inputs, main string) {
	given := map[string]string{}
	for k, v := range in.EnvVars {
		given[k] = v
	}
	for k, v := range in.Vars {
		given[k] = v
	}
	vals := map[string]cty.Value{}
	declared := map[string]bool{}
	for _, b := range blocks {
		name := b.Labels[0]
		declared[name] = true
		ty := cty.DynamicPseudoType
		if a, ok := b.Body.Attributes["type"]; ok {
			t, hd := typeexpr.TypeConstraint(a.Expr)
			if r.add(hd, "invalid") {
				continue
			}
			ty = t
		}
		var v cty.Value
		if text, ok := given[name]; ok {
			if ty == cty.String || ty == cty.DynamicPseudoType {
				v = cty.StringVal(text)
			} else {
				x, hd := hclsyntax.ParseExpression([]byte(text), "-var "+name, hcl.InitialPos)
				var val cty.Value
				if !hd.HasErrors() {
					val, hd = x.Value(&hcl.EvalContext{Functions: r.ctx.Functions})
				}
				if hd.HasErrors() {
					r.errorf("conflict", b.DefRange(), "variable %q is of type %s: the value given, %q, is not an HCL expression of that type",
						name, ty.FriendlyName(), text)
					continue
				}
				v = val
			}
		} else if a, ok := b.Body.Attributes["default"]; ok {
			val, hd := a.Expr.Value(&hcl.EvalContext{Functions: r.ctx.Functions})
			if r.add(hd, "invalid") {
				continue
			}
			v = val
		} else {
			r.errorf("required", b.DefRange(), "variable %q is not set: give it a default, or a value with -var %s=VALUE or WEIR_VAR_%s", name, name, name)
			continue
		}
		cv, err := convert.Convert(v, ty)
		if err != nil {
			r.errorf("conflict", b.DefRange(), "variable %q: %v", name, err)
			continue
		}
		vals[name] = cv
	}
	for name := range in.Vars {
		if !declared[name] {
			r.diags = append(r.diags, diag.Errorf("unknown-variable", "", &diag.Range{Filename: main, Start: diag.Pos{Line: 1, Column: 1}, End: diag.Pos{Line: 1, Column: 1}},
				"a value is given for variable %q, which the spec does not declare (variable %q { ... })", name, name))
		}
	}
	r.ctx.Variables["var"] = cty.ObjectVal(vals)
}

// locals sets local.NAME; a local may use another, in any order.
func (r *hclReader) locals(blocks []*hclsyntax.Block) {
	vals := map[string]cty.Value{}
	pending := map[string]*hclsyntax.Attribute{}
	for _, b := range blocks {
		for n, a := range b.Body.Attributes {
			if _, dup := pending[n]; dup {
				r.errorf("duplicate", a.NameRange, "local.%s is set twice", n)
				continue
			}
			pending[n] = a
		}
	}
	for len(pending) > 0 {
		progress := false
		for _, n := range sortedAttrs(pending) {
			a := pending[n]
			ready := true
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() != "local" || len(tr) < 2 {
					continue
				}
				if at, ok := tr[1].(hcl.TraverseAttr); ok {
					if _, waiting := pending[at.Name]; waiting {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			r.ctx.Variables["local"] = cty.ObjectVal(vals)
			v, hd := a.Expr.Value(r.ctx)
			if !r.add(hd, "invalid") {
				vals[n] = v
			}
			delete(pending, n)
			progress = true
		}
		if !progress {
			for _, n := range sortedAttrs(pending) {
				r.errorf("cycle", pending[n].NameRange, "local.%s depends on itself", n)
			}
			break
		}
	}
	r.ctx.Variables["local"] = cty.ObjectVal(vals)
}

// numberTexts remembers the text of the non-integer numbers converted:
// formatting a big.Float is costly, and a spec repeats its numbers.
type numberTexts map[float64]numberText

type numberText struct {
	f    *big.Float
	text string
}

// text is bf.Text('g', -1), reused for a number of the same value and
// precision.
func (m numberTexts) text(bf *big.Float) string {
	f, _ := bf.Float64()
	if t, ok := m[f]; ok && t.f.Prec() == bf.Prec() && t.f.Cmp(bf) == 0 {
		return t.text
	}
	text := bf.Text('g', -1)
	if m != nil {
		m[f] = numberText{bf, text}
	}
	return text
}

// data converts an HCL value to JSON-like data.
func (m numberTexts) data(v cty.Value) (any, error) {
	if !v.IsWhollyKnown() {
		return nil, fmt.Errorf("the value is not known")
	}
	if v.IsNull() {
		return nil, nil
	}
	v, _ = v.Unmark()
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString(), nil
	case t == cty.Number:
		bf := v.AsBigFloat()
		if bf.IsInt() {
			if n, acc := bf.Int64(); acc == big.Exact {
				return json.Number(strconv.FormatInt(n, 10)), nil
			}
			i, _ := bf.Int(nil)
			return json.Number(i.String()), nil
		}
		return json.Number(m.text(bf)), nil
	case t == cty.Bool:
		return v.True(), nil
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		out := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			x, err := m.data(ev)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case t.IsMapType() || t.IsObjectType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			x, err := m.data(ev)
			if err != nil {
				return nil, err
			}
			out[k.AsString()] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("a value of type %s cannot be part of a spec", t.FriendlyName())
}

// hclFunctions are HCL's standard functions (cty's stdlib), by the names
// Terraform gives them.
func hclFunctions() map[string]function.Function {
	return map[string]function.Function{
		"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "floor": stdlib.FloorFunc,
		"max": stdlib.MaxFunc, "min": stdlib.MinFunc, "pow": stdlib.PowFunc, "log": stdlib.LogFunc,
		"signum": stdlib.SignumFunc, "parseint": stdlib.ParseIntFunc,
		"chomp": stdlib.ChompFunc, "format": stdlib.FormatFunc, "formatlist": stdlib.FormatListFunc,
		"indent": stdlib.IndentFunc, "join": stdlib.JoinFunc, "lower": stdlib.LowerFunc,
		"upper": stdlib.UpperFunc, "regex": stdlib.RegexFunc, "regexall": stdlib.RegexAllFunc,
		"regex_replace": stdlib.RegexReplaceFunc, "replace": stdlib.ReplaceFunc,
		"split": stdlib.SplitFunc, "strrev": stdlib.ReverseFunc, "substr": stdlib.SubstrFunc,
		"title": stdlib.TitleFunc, "trim": stdlib.TrimFunc, "trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc, "trimspace": stdlib.TrimSpaceFunc,
		"chunklist": stdlib.ChunklistFunc, "coalesce": stdlib.CoalesceFunc,
		"coalescelist": stdlib.CoalesceListFunc, "compact": stdlib.CompactFunc,
		"concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc, "distinct": stdlib.DistinctFunc,
		"element": stdlib.ElementFunc, "flatten": stdlib.FlattenFunc, "index": stdlib.IndexFunc,
		"keys": stdlib.KeysFunc, "length": stdlib.LengthFunc, "lookup": stdlib.LookupFunc,
		"merge": stdlib.MergeFunc, "range": stdlib.RangeFunc, "reverse": stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc, "setproduct": stdlib.SetProductFunc,
		"setsubtract": stdlib.SetSubtractFunc, "setunion": stdlib.SetUnionFunc,
		"slice": stdlib.SliceFunc, "sort": stdlib.SortFunc, "values": stdlib.ValuesFunc,
		"zipmap": stdlib.ZipmapFunc, "jsonencode": stdlib.JSONEncodeFunc,
		"jsondecode": stdlib.JSONDecodeFunc, "csvdecode": stdlib.CSVDecodeFunc,
		"formatdate": stdlib.FormatDateFunc, "timeadd": stdlib.TimeAddFunc,
	}
}

// hclKey is the cache key of an HCL spec's evaluation: its files and the
// values given for its variables, all it reads (HCL specs import nothing,
// and the functions they may call read no files).
func hclKey(files []*specFile, in Inputs) string {
	h := newKeyHash("hcl", "")
	for _, f := range files {
		h.add(f.name, f.src)
	}
	addSorted(h, "var", in.Vars)
	addSorted(h, "env-var", in.EnvVars)
	return h.sum()
}
