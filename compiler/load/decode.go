package load

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"cuelang.org/go/cue"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// decoder walks a validated CUE value alongside the Go IR and fills it in,
// reading scalars straight from CUE (no export through JSON). It reports
// missing required fields and values left incomplete, each at its position;
// conflicts and bounds were reported by Validate already.
type decoder struct {
	conv  *converter
	sm    schema.SourceMap
	root  cue.Value
	diags diag.Diagnostics
	// byName, when set, looks struct fields up by the IR's names instead of
	// iterating the value's fields (which CUE sorts, at a cost). It does not
	// see unknown fields or missing required ones: use it only where
	// Validate has reported those.
	byName bool
	// written, when set, maps the path of a column or gate to its
	// constraint as written, where that text alone determines its value
	// (see writtenConstraints): the rule is then compiled once per text.
	written map[string]string
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }

var (
	envVarType      = reflect.TypeOf(schema.EnvVar{})
	searchParamType = reflect.TypeOf(schema.SearchParam{})
	aliasTargetType = reflect.TypeOf(schema.AliasTarget{})
	datasetType     = reflect.TypeOf(schema.Dataset{})
	modelType       = reflect.TypeOf(schema.Model{})
)

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (d *decoder) errorf(code, path, format string, args ...any) {
	d.diags = append(d.diags, diag.Diagnostic{
		Severity: diag.Error, Code: code, Address: address(strings.Split(path, ".")),
		Range: d.sm.Lookup(path), Summary: fmt.Sprintf(format, args...),
	})
}

// valueErr reports v's error unless it is a conflict Validate has reported.
func (d *decoder) valueErr(v cue.Value, path string, err error) {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "#Project.") {
		msg = msg[i+2:]
	}
	switch classify(msg) {
	case "incomplete":
		d.errorf("incomplete", path, "%s: %s: give it a concrete value", path, strings.TrimPrefix(msg, "incomplete value "))
	case "required":
		d.errorf("required", path, "%s is required but not present", path)
	default:
		if v.Err() == nil {
			d.errorf("invalid", path, "%s: %s", path, msg)
		}
	}
}

func (d *decoder) decode(v cue.Value, path string, rv reflect.Value) {
	// A struct or list holding an error deeper down is itself an error in
	// CUE; walk into it anyway so every problem is found in one go.
	if err := v.Err(); err != nil && !composite(rv.Type()) {
		d.valueErr(v, path, err)
		return
	}
	switch rv.Type() {
	case envVarType:
		if v.IncompleteKind() == cue.StringKind {
			d.scalar(v, path, rv.FieldByName("Value"))
			return
		}
	case searchParamType:
		if v.IncompleteKind() == cue.ListKind {
			d.decode(v, path, rv.FieldByName("Values"))
			if rv.FieldByName("Values").Len() == 0 {
				d.errorf("bad-search", path, "%s: empty list: a search parameter needs at least one value", path)
			}
			return
		}
		r := reflect.New(reflect.TypeOf(schema.Range{}))
		d.decode(v, path, r.Elem())
		rv.FieldByName("Range").Set(r)
		return
	case aliasTargetType:
		if v.IncompleteKind() == cue.StringKind {
			rv.FieldByName("Latest").SetBool(true)
			return
		}
		d.scalar(v, path, rv.FieldByName("Version"))
		return
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		d.decode(v, path, rv.Elem())
	case reflect.Struct:
		d.decodeStruct(v, path, rv)
	case reflect.Map:
		it, err := v.Fields()
		if err != nil {
			d.valueErr(v, path, err)
			return
		}
		m := reflect.MakeMap(rv.Type())
		for it.Next() {
			key := it.Selector().Unquoted()
			ev := reflect.New(rv.Type().Elem()).Elem()
			d.decode(it.Value(), join(path, key), ev)
			m.SetMapIndex(reflect.ValueOf(key), ev)
		}
		rv.Set(m)
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.String && v.IncompleteKind() == cue.StringKind {
			// "x" where the schema allows "x" | ["x", ...].
			s := reflect.New(rv.Type().Elem()).Elem()
			d.scalar(v, path, s)
			rv.Set(reflect.Append(reflect.MakeSlice(rv.Type(), 0, 1), s))
			return
		}
		it, err := v.List()
		if err != nil {
			d.valueErr(v, path, err)
			return
		}
		out := reflect.MakeSlice(rv.Type(), 0, 4)
		for i := 0; it.Next(); i++ {
			ev := reflect.New(rv.Type().Elem()).Elem()
			d.decode(it.Value(), fmt.Sprintf("%s[%d]", path, i), ev)
			out = reflect.Append(out, ev)
		}
		rv.Set(out)
	default:
		d.scalar(v, path, rv)
	}
}

func (d *decoder) scalar(v cue.Value, path string, rv reflect.Value) {
	var err error
	switch rv.Kind() {
	case reflect.String:
		var s string
		if s, err = v.String(); err == nil {
			rv.SetString(s)
		}
	case reflect.Int, reflect.Int64:
		var n int64
		if n, err = v.Int64(); err == nil {
			rv.SetInt(n)
		}
	case reflect.Float64:
		var f float64
		if f, err = v.Float64(); err == nil {
			rv.SetFloat(f)
		}
	case reflect.Bool:
		var b bool
		if b, err = v.Bool(); err == nil {
			rv.SetBool(b)
		}
	case reflect.Interface:
		var x any
		if err = v.Validate(cue.Concrete(true)); err == nil {
			err = v.Decode(&x)
		}
		if err == nil && x != nil {
			rv.Set(reflect.ValueOf(x))
		}
	default:
		err = fmt.Errorf("cannot decode into %s", rv.Type())
	}
	if err != nil {
		d.valueErr(v, path, err)
	}
}

func (d *decoder) decodeStruct(v cue.Value, path string, rv reflect.Value) {
	info := structInfoOf(rv.Type())
	if d.byName {
		for _, f := range info.list {
			fv := v.LookupPath(f.path)
			if !fv.Exists() {
				continue
			}
			if f.constraint {
				d.constraints(fv, join(path, f.name), rv.FieldByIndex(f.index), rv)
				continue
			}
			d.decode(fv, join(path, f.name), rv.FieldByIndex(f.index))
		}
		return
	}
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		d.valueErr(v, path, err)
		return
	}
	for it.Next() {
		sel := it.Selector()
		if !sel.IsString() {
			continue
		}
		name := sel.Unquoted()
		switch sel.ConstraintType() {
		case cue.OptionalConstraint:
			continue
		case cue.RequiredConstraint:
			d.errorf("required", path, "%s: missing required field %q", displayPath(path), name)
			continue
		}
		f, ok := info.fields[name]
		if !ok {
			d.unknownField(path, name, info)
			continue
		}
		fv := rv.FieldByIndex(f.index)
		if f.constraint {
			d.constraints(it.Value(), join(path, name), fv, rv)
			continue
		}
		d.decode(it.Value(), join(path, name), fv)
	}
}

// unknownField reports a field the schema does not allow. CUE reports these
// too, but not inside a struct that holds another error; the IR mirrors the
// schema, so its field names are the allowed ones.
func (d *decoder) unknownField(path, name string, info *structInfo) {
	fp := join(path, name)
	summary := "unknown field " + quote(name) + " in " + path
	if path == "" {
		summary = "unknown section " + quote(name)
	}
	names := make([]string, 0, len(info.fields))
	for n := range info.fields {
		names = append(names, n)
	}
	d.errorf("unknown-field", fp, "%s%s", summary, diag.DidYouMean(name, names))
}

// composite reports whether t is decoded by walking into the value.
func composite(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice:
		return true
	}
	return false
}

func displayPath(p string) string {
	if p == "" {
		return "spec"
	}
	return p
}

// constraints decodes a map of CUE constraints (a dataset schema or model
// gates): the source text into fv, the compiled rules into the sibling
// Rules/GateRules field.
func (d *decoder) constraints(v cue.Value, path string, fv, owner reflect.Value) {
	it, err := v.Fields()
	if err != nil {
		d.valueErr(v, path, err)
		return
	}
	texts := map[string]string{}
	rules := map[string]schema.ColumnRule{}
	for it.Next() {
		name := it.Selector().Unquoted()
		fp := join(path, name)
		text, known := d.written[fp]
		if known {
			if r, ok := writtenMemo.Load(text); ok {
				texts[name] = r.(schema.ColumnRule).Source
				rules[name] = r.(schema.ColumnRule)
				continue
			}
		}
		rule, err := compileRule(it.Value())
		if err == nil && known {
			writtenMemo.Store(text, rule)
		}
		if err != nil {
			d.errorf("unsupported-constraint", fp, "%s: %v", fp, err)
			continue
		}
		texts[name] = rule.Source
		rules[name] = rule
	}
	fv.Set(reflect.ValueOf(texts))
	switch owner.Type() {
	case datasetType:
		owner.FieldByName("Rules").Set(reflect.ValueOf(rules))
	case modelType:
		owner.FieldByName("GateRules").Set(reflect.ValueOf(rules))
	}
}

// writtenMemo holds rules by the text of constraints as written (see
// decoder.written).
var writtenMemo sync.Map // string -> schema.ColumnRule

type fieldInfo struct {
	name       string
	path       cue.Path
	index      []int
	constraint bool
}

type structInfo struct {
	fields map[string]fieldInfo
	list   []fieldInfo // in the Go struct's order
}

var structInfos sync.Map // reflect.Type -> *structInfo

// structInfoOf maps JSON names to Go fields, embedded structs (Run) included.
func structInfoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string]fieldInfo{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			idx := append(append([]int{}, index...), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fi := fieldInfo{name: name, path: cue.MakePath(cue.Str(name)), index: idx, constraint: f.Tag.Get("weir") == "constraint"}
			si.fields[name] = fi
			si.list = append(si.list, fi)
		}
	}
	walk(t, nil)
	structInfos.Store(t, si)
	return si
}
