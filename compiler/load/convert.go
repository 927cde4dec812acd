package load

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// The HCL and Jsonnet front ends evaluate their files to plain data and
// record where each field is written. toCUE turns that data into a CUE file
// whose nodes carry positions in the front end's source, so the schema's
// errors, the decoder's and the source map (and the policy findings that use
// it) all point into weir.hcl or weir.jsonnet, never into an intermediate
// form.
//
// A dataset's column constraints and a model's gates are CUE constraints:
// the front ends write them as strings holding the CUE expression
// ("int & >=1", ">=0.9"), and toCUE parses them back; a number there is the
// constraint of that value.

// frontSpec is a spec a front end evaluated.
type frontSpec struct {
	// data is JSON-like: map[string]any, []any, string, json.Number, bool
	// or nil.
	data map[string]any
	// sm maps field paths to where they are written, file names relative to
	// the project folder.
	sm schema.SourceMap
	// srcs holds the content of every file sm names, by that name.
	srcs map[string][]byte
	// main is the entry file (relative): the position of anything sm does
	// not place.
	main string
	// imports are the imports a Jsonnet spec's evaluation made.
	imports []jsonnetImport
}

// cueBuilder turns a frontSpec into a CUE file.
type cueBuilder struct {
	dir   string
	spec  *frontSpec
	files map[string]*token.File
	diags diag.Diagnostics
	// noPos leaves the nodes without positions (a part of a split spec,
	// see convert_split.go).
	noPos bool
	// written, when set, collects the constraints whose text gives their
	// value (see noteWritten).
	written map[string]string
}

// toCUE builds the CUE file of a front end's spec. Constraints that do not
// parse come back as diagnostics at their field.
func toCUE(dir string, fs *frontSpec) (*ast.File, diag.Diagnostics) {
	b := &cueBuilder{dir: dir, spec: fs, files: map[string]*token.File{}}
	st := b.expr("", fs.data).(*ast.StructLit)
	f := &ast.File{Filename: filepath.Join(dir, fs.main), Decls: st.Elts}
	return f, b.diags
}

// pos is where path is written (its nearest recorded ancestor, else the top
// of the entry file).
func (b *cueBuilder) pos(path string) token.Pos {
	if b.noPos {
		return token.NoPos
	}
	name, off := b.spec.main, 0
	if r := b.spec.sm.Lookup(path); r != nil {
		name, off = r.Filename, r.Start.Offset
	}
	tf, ok := b.files[name]
	if !ok {
		src := b.spec.srcs[name]
		tf = token.NewFile(filepath.Join(b.dir, name), 0, len(src)+1)
		tf.SetLinesForContent(src)
		b.files[name] = tf
	}
	if off > tf.Size() {
		off = tf.Size()
	}
	return tf.Pos(off, token.NoRelPos)
}

func (b *cueBuilder) expr(path string, v any) ast.Expr {
	p := b.pos(path)
	var e ast.Expr
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		st := &ast.StructLit{}
		for _, k := range keys {
			cp := join(path, k)
			lab := ast.NewString(k)
			ast.SetPos(lab, b.pos(cp))
			st.Elts = append(st.Elts, &ast.Field{Label: lab, Value: b.expr(cp, v[k])})
		}
		e = st
	case []any:
		l := &ast.ListLit{}
		for i, x := range v {
			l.Elts = append(l.Elts, b.expr(path+"["+strconv.Itoa(i)+"]", x))
		}
		e = l
	case string:
		if isConstraintField(path) {
			x, err := parser.ParseExpr(b.spec.main, v)
			if err != nil {
				b.diags = append(b.diags, diag.Errorf("constraint", address(strings.Split(path, ".")), b.spec.sm.Lookup(path),
					"%s: %q is not a CUE constraint (write one as a string, e.g. \"int & >=1\" or \">=0.9\")", path, v))
				return ast.NewNull()
			}
			b.noteWritten(path, v, x)
			if p.IsValid() {
				ast.Walk(x, func(n ast.Node) bool { ast.SetPos(n, p); return true }, nil)
			}
			return x
		}
		e = ast.NewString(v)
	case json.Number:
		s := v.String()
		tok := token.INT
		if strings.ContainsAny(s, ".eE") {
			tok = token.FLOAT
		}
		e = ast.NewLit(tok, s)
	case bool:
		e = ast.NewBool(v)
	case nil:
		e = ast.NewNull()
	default:
		e = ast.NewNull()
	}
	ast.SetPos(e, p)
	return e
}

// isConstraintField reports whether path is a column constraint or a gate.
func isConstraintField(path string) bool {
	return constraintPath(strings.Split(path, "."))
}
