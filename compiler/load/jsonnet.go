package load

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-jsonnet"
	jast "github.com/google/go-jsonnet/ast"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// The Jsonnet front end: weir.jsonnet is evaluated (imports relative to the
// project folder, external variables, top-level arguments) to JSON, which is
// checked like a CUE spec. Where a field is written comes from the Jsonnet
// syntax: object fields with literal names, followed through locals,
// imports and object composition (a + b); a field built any other way
// (a comprehension, a function call) takes the position of its nearest
// written ancestor.

// evaluateJsonnet evaluates, checks and decodes weir.jsonnet. It also
// returns the imports the evaluation made (see jsonnet_cache.go).
func evaluateJsonnet(dir string, f *specFile, opts Options) (*schema.Project, schema.SourceMap, []jsonnetImport, diag.Diagnostics) {
	fs, diags := readJsonnet(dir, f, opts)
	if fs == nil {
		return nil, nil, nil, diags
	}
	p, sm, diags := checkFront(dir, fs)
	return p, sm, fs.imports, diags
}

// checkFront checks a front end's spec like a CUE one: in parts, in
// parallel, when it is large (convert_split.go), else or when a part
// reports anything, whole.
func checkFront(dir string, fs *frontSpec) (*schema.Project, schema.SourceMap, diag.Diagnostics) {
	if p, ok := checkFrontSplit(dir, fs); ok {
		return p, fs.sm, nil
	}
	ctx, def, diags := compiledSchema()
	if diags != nil {
		return nil, nil, diags
	}
	file, diags := toCUE(dir, fs)
	if diags.HasErrors() {
		return nil, fs.sm, fs.placed(diags)
	}
	v := ctx.BuildFile(file)
	if err := v.Err(); err != nil {
		return nil, fs.sm, fs.placed((&converter{dir: dir}).fromCUE(err, nil))
	}
	p, sm, ds := check(dir, def, v, fs.sm)
	return p, sm, fs.placed(ds)
}

// placed gives the diagnostics that have no position in the spec (a
// missing top-level field) the top of the entry file.
func (fs *frontSpec) placed(ds diag.Diagnostics) diag.Diagnostics {
	for i := range ds {
		if ds[i].Range == nil {
			ds[i].Range = &diag.Range{Filename: fs.main, Start: diag.Pos{Line: 1, Column: 1}, End: diag.Pos{Line: 1, Column: 1}}
		}
	}
	return ds
}

// readJsonnet evaluates weir.jsonnet to a frontSpec.
func readJsonnet(dir string, f *specFile, opts Options) (*frontSpec, diag.Diagnostics) {
	jc := &jsonnetConv{dir: dir, srcs: map[string][]byte{f.name: f.src}}
	node, err := jsonnet.SnippetToAST(f.path, string(f.src))
	if err != nil {
		return nil, (&frontSpec{main: f.name}).placed(jc.errs(err, "syntax"))
	}
	vm := jsonnet.MakeVM()
	imp := newRecordingImporter(dir)
	vm.Importer(imp)
	for k, v := range opts.ExtStr {
		vm.ExtVar(k, v)
	}
	for k, v := range opts.ExtCode {
		vm.ExtCode(k, v)
	}
	for k, v := range opts.TLAStr {
		vm.TLAVar(k, v)
	}
	for k, v := range opts.TLACode {
		vm.TLACode(k, v)
	}
	out, err := vm.Evaluate(node)
	if err != nil {
		return nil, (&frontSpec{main: f.name}).placed(jc.errs(err, "jsonnet"))
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var data any
	if err := dec.Decode(&data); err != nil {
		return nil, diag.Diagnostics{diag.Errorf("internal", "", jc.fileStart(f.name), "reading Jsonnet's output: %v", err)}
	}
	obj, ok := data.(map[string]any)
	if !ok {
		return nil, diag.Diagnostics{diag.Errorf("conflict", "", jc.fileStart(f.name), "the spec is %s, not an object", jsonKind(data))}
	}
	w := &jsonnetWalker{vm: vm, conv: jc, sm: schema.SourceMap{}}
	w.node("", node, nil, 0)
	return &frontSpec{data: obj, sm: w.sm, srcs: jc.srcs, main: f.name, imports: imp.imports()}, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "not an object"
}

// jsonnetConv adapts Jsonnet's errors and locations to diagnostics (the one
// adapter for Jsonnet's error types).
type jsonnetConv struct {
	dir  string
	srcs map[string][]byte // read files by name relative to dir
	// lines holds the offset of each line's start, by file name, built
	// on first use: a large spec has a position per field.
	lines map[string][]int
}

// name is a Jsonnet file name relative to the project folder.
func (c *jsonnetConv) name(file string) string {
	if filepath.IsAbs(file) {
		if rel, err := filepath.Rel(c.dir, file); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return file
}

// rng turns a Jsonnet location into a range; nil when it has none.
func (c *jsonnetConv) rng(lr jast.LocationRange) *diag.Range {
	if !lr.IsSet() || lr.FileName == "" || lr.FileName == "<std>" {
		return nil // the standard library's own code
	}
	name := c.name(lr.FileName)
	src, ok := c.srcs[name]
	if !ok {
		if data, err := os.ReadFile(lr.FileName); err == nil {
			src = data
		}
		c.srcs[name] = src
	}
	return &diag.Range{Filename: name, Start: c.pos(name, src, lr.Begin), End: c.pos(name, src, lr.End)}
}

// pos is a Jsonnet location (1-based line and column) in the file name,
// whose content is src, with its offset.
func (c *jsonnetConv) pos(name string, src []byte, l jast.Location) diag.Pos {
	starts, ok := c.lines[name]
	if !ok {
		starts = []int{0}
		for i, b := range src {
			if b == '\n' {
				starts = append(starts, i+1)
			}
		}
		if c.lines == nil {
			c.lines = map[string][]int{}
		}
		c.lines[name] = starts
	}
	off := 0
	switch {
	case l.Line > len(starts):
		off = len(src)
	case l.Line > 1:
		off = starts[l.Line-1]
	}
	off += l.Column - 1
	if off > len(src) {
		off = len(src)
	}
	if off < 0 {
		off = 0
	}
	return diag.Pos{Line: l.Line, Column: l.Column, Offset: off}
}

func (c *jsonnetConv) fileStart(name string) *diag.Range {
	return &diag.Range{Filename: name, Start: diag.Pos{Line: 1, Column: 1}, End: diag.Pos{Line: 1, Column: 1}}
}

// errs converts an error of Jsonnet's parser or evaluator.
func (c *jsonnetConv) errs(err error, code string) diag.Diagnostics {
	var rt jsonnet.RuntimeError
	if errors.As(err, &rt) {
		d := diag.Errorf(code, "", nil, "%s", rt.Msg)
		if strings.Contains(rt.Msg, "import") {
			d.Code = "import"
		}
		// The trace runs from the outermost frame to the innermost, where
		// the error is raised.
		for i := len(rt.StackTrace) - 1; i >= 0; i-- {
			if r := c.rng(rt.StackTrace[i].Loc); r != nil {
				if d.Range == nil {
					d.Range = r
				} else {
					d.Related = append(d.Related, *r)
				}
			}
		}
		return diag.Diagnostics{d}
	}
	var st interface {
		Loc() jast.LocationRange
		Error() string
	}
	if errors.As(err, &st) {
		msg := st.Error()
		if loc := st.Loc(); loc.IsSet() {
			msg = strings.TrimPrefix(msg, loc.String())
		}
		d := diag.Errorf("syntax", "", c.rng(st.Loc()), "%s", strings.TrimSpace(msg))
		return diag.Diagnostics{d}
	}
	return diag.Diagnostics{diag.Errorf(code, "", nil, "%s", strings.TrimPrefix(err.Error(), "RUNTIME ERROR: "))}
}

// jsonnetWalker records where object fields are written.
type jsonnetWalker struct {
	vm   *jsonnet.VM
	conv *jsonnetConv
	sm   schema.SourceMap
}

// env maps local names to their definitions.
type jsonnetEnv map[jast.Identifier]jast.Node

func (e jsonnetEnv) with(binds jast.LocalBinds) jsonnetEnv {
	if len(binds) == 0 {
		return e
	}
	out := make(jsonnetEnv, len(e)+len(binds))
	for k, v := range e {
		out[k] = v
	}
	for _, b := range binds {
		out[b.Variable] = b.Body
	}
	return out
}

func (w *jsonnetWalker) add(path string, lr jast.LocationRange) {
	if path == "" {
		return
	}
	if _, ok := w.sm[path]; ok {
		return
	}
	if r := w.conv.rng(lr); r != nil {
		r.End = r.Start
		w.sm[path] = *r
	}
}

// node walks n, the value at path. depth bounds following locals and
// imports (a local can refer to itself).
func (w *jsonnetWalker) node(path string, n jast.Node, env jsonnetEnv, depth int) {
	if n == nil || depth > 64 {
		return
	}
	switch n := n.(type) {
	case *jast.DesugaredObject:
		env = env.with(n.Locals)
		for _, f := range n.Fields {
			name, ok := f.Name.(*jast.LiteralString)
			if !ok || f.Hide == jast.ObjectFieldHidden {
				continue
			}
			p := join(path, name.Value)
			w.add(p, f.LocRange)
			w.node(p, f.Body, env, depth)
		}
	case *jast.Array:
		for i, e := range n.Elements {
			p := path + "[" + strconv.Itoa(i) + "]"
			if e.Expr != nil {
				w.add(p, *e.Expr.Loc())
			}
			w.node(p, e.Expr, env, depth)
		}
	case *jast.Local:
		w.node(path, n.Body, env.with(n.Binds), depth)
	case *jast.Var:
		if def, ok := env[n.Id]; ok {
			w.node(path, def, env, depth+1)
		}
	case *jast.Import:
		from := n.Loc().FileName
		if n.File == nil {
			return
		}
		imp, found, err := w.vm.ImportAST(from, n.File.Value)
		if err != nil {
			return
		}
		if name := w.conv.name(found); w.conv.srcs[name] == nil {
			if data, _, err := w.vm.ImportData(from, n.File.Value); err == nil {
				w.conv.srcs[name] = []byte(data)
			}
		}
		w.node(path, imp, nil, depth+1)
	case *jast.Binary:
		if n.Op == jast.BopPlus {
			w.node(path, n.Right, env, depth) // the right side wins
			w.node(path, n.Left, env, depth)
		}
	case *jast.Parens:
		w.node(path, n.Inner, env, depth)
	case *jast.Function:
		w.node(path, n.Body, env, depth)
	}
}
