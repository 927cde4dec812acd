package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueload "cuelang.org/go/cue/load"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// Converting a spec to another language (weir convert).
//
// The spec is evaluated first, so what is written out is its data:
// variables, locals, functions, imports and comprehensions are expanded,
// and the result gives the same IR as the original. References to
// elements become HCL traversals when the target is HCL. Comments written
// on the lines just above a field, and the comment at the top of the
// entry file, are kept (CUE and Jsonnet write them with //, HCL with #).

// Languages are the languages a spec can be written in.
var Languages = []string{"cue", "hcl", "jsonnet"}

// Converted is a spec translated to another language.
type Converted struct {
	// Filename is the name of the spec file in the target language.
	Filename string
	// Source is its content.
	Source []byte
}

// Convert translates the valid spec in dir to the language to ("cue",
// "hcl" or "jsonnet"). A spec that does not load comes back as its
// diagnostics.
func Convert(ctx context.Context, dir string, to string, in Inputs) (*Converted, diag.Diagnostics) {
	switch to {
	case "cue", "hcl", "jsonnet":
	default:
		return nil, diag.Diagnostics{diag.Errorf("usage", "", nil, "cannot convert to %q: give cue, hcl or jsonnet", to)}
	}
	res, ds := Load(ctx, dir, Options{Inputs: in})
	if res == nil || ds.HasErrors() {
		return nil, ds
	}
	srcs, err := readSpecFiles(res.Dir, res.Files)
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("load", "", nil, "reading the spec: %v", errText(err))}
	}
	var fs *frontSpec
	switch specLang(res.Files[0]) {
	case "hcl":
		fs, ds = readHCL(srcs, Options{Inputs: in})
	case "jsonnet":
		fs, ds = readJsonnet(res.Dir, srcs[0], Options{Inputs: in})
	default:
		fs, ds = cueData(res.Dir, res.Files, srcs, res.Project)
	}
	if fs == nil || ds.HasErrors() {
		return nil, ds
	}
	e := &emitter{spec: fs, lang: to, comments: specComments(fs), elems: elementSet(fs.data)}
	out := e.file()
	name := "weir." + to
	if to == "cue" {
		f, fds := Format(name, out)
		if fds.HasErrors() {
			return nil, fds
		}
		out = f
	}
	return &Converted{Filename: name, Source: out}, nil
}

// cueData evaluates a CUE spec to plain data: constraints (column schemas,
// gates) as their CUE text, as the decoded IR holds them.
func cueData(dir string, files []string, srcs []*specFile, p *schema.Project) (*frontSpec, diag.Diagnostics) {
	ctx, _, diags := compiledSchema()
	if diags != nil {
		return nil, diags
	}
	args := make([]string, len(files))
	for i, f := range files {
		args[i] = "./" + f
	}
	insts := cueload.Instances(args, &cueload.Config{Dir: dir, Overlay: baseOverlay(dir)})
	if len(insts) == 0 || insts[0].Err != nil {
		return nil, diag.Diagnostics{diag.Errorf("load", "", nil, "the CUE spec does not load")}
	}
	v := ctx.BuildInstance(insts[0])
	fs := &frontSpec{sm: sourceMap(dir, insts[0].Files), srcs: map[string][]byte{}, main: files[0]}
	for _, s := range srcs {
		fs.srcs[s.name] = s.src
		if s.name == "weir.cue" {
			fs.main = s.name
		}
	}
	var err error
	x, err := cueToData(v, nil, p)
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("load", "", nil, "converting the CUE spec: %v", err)}
	}
	fs.data, _ = x.(map[string]any)
	return fs, nil
}

func cueToData(v cue.Value, path []string, p *schema.Project) (any, error) {
	if len(path) == 4 && constraintPath(path) {
		var m map[string]string
		switch path[0] {
		case "datasets":
			if ds := p.Datasets[path[1]]; ds != nil {
				m = ds.Schema
			}
		case "models":
			if md := p.Models[path[1]]; md != nil {
				m = md.Gates
			}
		}
		if t, ok := m[path[3]]; ok {
			return t, nil
		}
	}
	switch v.IncompleteKind() {
	case cue.StructKind:
		out := map[string]any{}
		it, err := v.Fields()
		if err != nil {
			return nil, err
		}
		for it.Next() {
			name := it.Selector().Unquoted()
			x, err := cueToData(it.Value(), append(append([]string{}, path...), name), p)
			if err != nil {
				return nil, err
			}
			out[name] = x
		}
		return out, nil
	case cue.ListKind:
		out := []any{}
		it, err := v.List()
		if err != nil {
			return nil, err
		}
		for i := 0; it.Next(); i++ {
			x, err := cueToData(it.Value(), append(append([]string{}, path...), strconv.Itoa(i)), p)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	}
	b, err := v.MarshalJSON()
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	err = dec.Decode(&x)
	return x, err
}

// specComments collects the comment lines written just above each field
// (no blank line between), and the file's leading comment under "".
func specComments(fs *frontSpec) map[string][]string {
	out := map[string][]string{}
	lines := map[string][]string{}
	linesOf := func(name string) []string {
		if l, ok := lines[name]; ok {
			return l
		}
		l := strings.Split(string(fs.srcs[name]), "\n")
		lines[name] = l
		return l
	}
	ls := linesOf(fs.main)
	header := 0
	for header < len(ls) {
		if _, ok := commentText(ls[header]); !ok {
			break
		}
		header++
	}
	for i := 0; i < header; i++ {
		t, _ := commentText(ls[i])
		out[""] = append(out[""], t)
	}
	// Fields written on one line share the comment above it: the outermost
	// (then the first by name) takes it.
	type lineKey struct {
		file string
		line int
	}
	owner := map[lineKey]string{}
	for path, r := range fs.sm {
		k := lineKey{r.Filename, r.Start.Line}
		if o, ok := owner[k]; !ok || len(path) < len(o) || len(path) == len(o) && path < o {
			owner[k] = path
		}
	}
	for path, r := range fs.sm {
		if owner[lineKey{r.Filename, r.Start.Line}] != path {
			continue
		}
		ls := linesOf(r.Filename)
		i := r.Start.Line - 2
		end := i
		for i >= 0 {
			if _, ok := commentText(ls[i]); !ok {
				break
			}
			i--
		}
		if i == end || (r.Filename == fs.main && i < 0 && header > 0) {
			continue
		}
		for j := i + 1; j <= end; j++ {
			t, _ := commentText(ls[j])
			out[path] = append(out[path], t)
		}
	}
	return out
}

// commentText is the text of a whole-line comment (//, # or /* */ on one
// line).
func commentText(line string) (string, bool) {
	t := strings.TrimSpace(line)
	for _, m := range []string{"//", "#"} {
		if strings.HasPrefix(t, m) {
			t = strings.TrimPrefix(t, m)
			return strings.TrimPrefix(t, " "), true
		}
	}
	return "", false
}

// elementSet lists the elements' addresses.
func elementSet(data map[string]any) map[string]bool {
	out := map[string]bool{}
	for sec, v := range data {
		if m, ok := v.(map[string]any); ok && isSection(sec) {
			for n := range m {
				out[sec+"."+n] = true
			}
		}
	}
	return out
}

// emitter writes data in a language.
type emitter struct {
	spec     *frontSpec
	lang     string
	comments map[string][]string
	elems    map[string]bool
	buf      bytes.Buffer
}

func (e *emitter) marker() string {
	if e.lang == "hcl" {
		return "#"
	}
	return "//"
}

func (e *emitter) comment(path string, indent string) {
	for _, c := range e.comments[path] {
		if c == "" {
			fmt.Fprintf(&e.buf, "%s%s\n", indent, e.marker())
		} else {
			fmt.Fprintf(&e.buf, "%s%s %s\n", indent, e.marker(), c)
		}
	}
}

// keys orders an object's keys as written (by position), then by name.
func (e *emitter) keys(path string, m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	pos := func(k string) (string, int) {
		if r, ok := e.spec.sm[join(path, k)]; ok {
			name := r.Filename
			if name == e.spec.main {
				name = ""
			}
			return name, r.Start.Offset
		}
		return "\xff", 0
	}
	sort.SliceStable(ks, func(i, j int) bool {
		fi, oi := pos(ks[i])
		fj, oj := pos(ks[j])
		if fi != fj {
			return fi < fj
		}
		if oi != oj {
			return oi < oj
		}
		return ks[i] < ks[j]
	})
	return ks
}

func (e *emitter) file() []byte {
	if len(e.comments[""]) > 0 {
		e.comment("", "")
		e.buf.WriteString("\n")
	}
	switch e.lang {
	case "hcl":
		e.hclTop()
	case "jsonnet":
		e.buf.WriteString("{\n")
		e.fields("", e.spec.data, "  ", true)
		e.buf.WriteString("}\n")
	default:
		e.fields("", e.spec.data, "", true)
	}
	return e.buf.Bytes()
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var jsonnetKeywords = map[string]bool{"assert": true, "else": true, "error": true, "false": true, "for": true,
	"function": true, "if": true, "import": true, "importstr": true, "importbin": true, "in": true, "local": true,
	"null": true, "tailstrict": true, "then": true, "self": true, "super": true, "true": true}

var hclKeywords = map[string]bool{"for": true, "in": true, "if": true, "null": true, "true": true, "false": true}

// label is an object key in the target language.
func (e *emitter) label(k string) string {
	switch e.lang {
	case "jsonnet":
		if identRE.MatchString(k) && !jsonnetKeywords[k] {
			return k
		}
	case "hcl":
		if identRE.MatchString(k) && !hclKeywords[k] {
			return k
		}
	default:
		if identRE.MatchString(k) && !strings.HasPrefix(k, "_") {
			return k
		}
	}
	return e.str(k)
}

// str is a string literal in the target language.
func (e *emitter) str(s string) string {
	q := strconv.Quote(s)
	if e.lang == "hcl" {
		q = strings.ReplaceAll(q, "${", "$${")
		q = strings.ReplaceAll(q, "%{", "%%{")
	}
	return q
}

// fields writes an object's fields, one a line.
func (e *emitter) fields(path string, m map[string]any, indent string, top bool) {
	sep := ": "
	end := "\n"
	switch e.lang {
	case "hcl":
		sep = " = "
	case "jsonnet":
		end = ",\n"
	}
	for i, k := range e.keys(path, m) {
		p := join(path, k)
		if top && i > 0 && len(e.comments[p]) > 0 {
			e.buf.WriteString("\n")
		}
		e.comment(p, indent)
		e.buf.WriteString(indent + e.label(k) + sep)
		e.value(p, m[k], indent)
		e.buf.WriteString(end)
	}
}

// value writes a value; objects and lists of objects span lines.
func (e *emitter) value(path string, v any, indent string) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			e.buf.WriteString("{}")
			return
		}
		e.buf.WriteString("{\n")
		e.fields(path, v, indent+"  ", false)
		e.buf.WriteString(indent + "}")
	case []any:
		if len(v) == 0 {
			e.buf.WriteString("[]")
			return
		}
		flat := true
		for _, x := range v {
			switch x.(type) {
			case map[string]any, []any:
				flat = false
			}
		}
		if flat {
			e.buf.WriteString("[")
			for i, x := range v {
				if i > 0 {
					e.buf.WriteString(", ")
				}
				e.value(path+"["+strconv.Itoa(i)+"]", x, indent)
			}
			e.buf.WriteString("]")
			return
		}
		e.buf.WriteString("[\n")
		for i, x := range v {
			e.buf.WriteString(indent + "  ")
			e.value(path+"["+strconv.Itoa(i)+"]", x, indent+"  ")
			e.buf.WriteString(",\n")
		}
		e.buf.WriteString(indent + "]")
	case string:
		switch {
		case isConstraintField(path) && e.lang == "cue":
			e.buf.WriteString(v)
		case e.lang == "hcl" && e.elems[v] && identRE.MatchString(v[strings.IndexByte(v, '.')+1:]):
			e.buf.WriteString(v) // a traversal to the element
		default:
			e.buf.WriteString(e.str(v))
		}
	case json.Number:
		e.buf.WriteString(v.String())
	case bool:
		e.buf.WriteString(strconv.FormatBool(v))
	case nil:
		e.buf.WriteString("null")
	}
}

// hclSingular names the element block type of each section.
var hclSingular = map[string]string{"datasets": "dataset", "features": "feature", "training": "training",
	"models": "model", "serving": "serving", "monitoring": "monitoring", "batch": "batch", "tasks": "task",
	"backends": "backend"}

// hclTop writes an HCL file: scalars and lists as attributes, sections as
// a block per element, the other objects as blocks.
func (e *emitter) hclTop() {
	first := true
	gap := func() {
		if !first {
			e.buf.WriteString("\n")
		}
		first = false
	}
	data := e.spec.data
	for _, k := range e.keys("", data) {
		v := data[k]
		m, isObj := v.(map[string]any)
		switch {
		case isObj && hclSingular[k] != "":
			for _, n := range e.keys(k, m) {
				gap()
				p := k + "." + n
				e.comment(k, "")
				e.comment(p, "")
				body, ok := m[n].(map[string]any)
				if !ok {
					continue
				}
				fmt.Fprintf(&e.buf, "%s %s {\n", hclSingular[k], e.str(n))
				e.fields(p, body, "  ", false)
				e.buf.WriteString("}\n")
				delete(e.comments, k)
			}
		case isObj && hclObjects[k]:
			gap()
			e.comment(k, "")
			fmt.Fprintf(&e.buf, "%s {\n", k)
			e.fields(k, m, "  ", false)
			e.buf.WriteString("}\n")
		default:
			if len(e.comments[k]) > 0 {
				gap()
			}
			first = false
			e.comment(k, "")
			e.buf.WriteString(e.label(k) + " = ")
			e.value(k, v, "")
			e.buf.WriteString("\n")
		}
	}
}
