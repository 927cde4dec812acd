package load

import (
	"context"
	"hash/fnv"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	cueload "cuelang.org/go/cue/load"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"

	"weir.dev/weir/schema"
)

// Splitting a large spec into parts that evaluate on their own.
//
// CUE evaluates a package as a whole, in one goroutine, and holds all of it
// in memory until it is done. Most of a large spec is elements (a dataset,
// a training ...) that share nothing but the top-level settings, so the
// loader cuts the spec into parts, evaluates the parts in parallel, each in
// its own CUE context, and merges the decoded IR.
//
// A part sees every file of the spec with the elements of other parts cut
// out. Every top-level declaration that is not an element (project,
// defaults, backends, lets, hidden fields, definitions, imports) is kept in
// every part. The source map comes from parsing the whole files.
//
// The split is only made when it cannot change the meaning of the spec:
//
//   - top-level declarations are fields with plain labels, lets, imports
//     and the package clause (no embeddings, comprehensions, patterns,
//     dynamic labels or aliases, which could add to any section);
//   - a section field (datasets: ..., training: ...) is a struct literal of
//     element fields with plain labels (no patterns, lets, embeddings or
//     comprehensions among them);
//   - no element refers to a section, to another element or to anything
//     inside a section field but itself, and no top-level declaration
//     refers to a section: an element's value is then the same whichever
//     other elements are present.
//
// Anything else is evaluated whole, as is a part that reports any
// diagnostic: errors are always those of the whole spec.

// specFile is one .cue file of the project, read and parsed.
type specFile struct {
	name string // relative to the project folder
	path string // absolute
	src  []byte
	file *ast.File
	// nodes are the elements' fields, in the order of sections' elems. Like
	// file, they are dropped once planning is done (parts read the other
	// fields concurrently, so nothing else is written then).
	nodes []*ast.Field
	// sections are the byte spans of the top-level section fields, each
	// with the spans of its elements.
	sections []sectionSpan
	// imports are the import specs, each with the declarations that use it.
	imports []importSpan
	// shared reports whether the file has top-level fields or lets, which
	// every part must see.
	shared bool
}

// span is a half-open byte range of a file.
type span struct{ start, end int }

type sectionSpan struct {
	span
	elems []elemSpan
}

type elemSpan struct {
	span
	addr string // "datasets.customers"
	node int    // index of the element's field in specFile.nodes
}

type importSpan struct {
	span
	// users are the elements whose declarations use the import; shared
	// reports a use by a top-level declaration (kept in every part).
	users  []string
	shared bool
}

// splitPlan says how a spec is cut into parts.
type splitPlan struct {
	files []*specFile
	// written maps column and gate paths to their constraints as written,
	// where the text alone gives their value (see writtenConstraints).
	written map[string]string
	// parts are sets of element addresses; every element is in one part.
	parts [][]string
}

// parseSpecFiles parses the files of a spec for splitting. It reports false
// when a file does not parse: the whole evaluation then reports why.
func parseSpecFiles(files []*specFile) bool {
	for _, f := range files {
		af, err := parser.ParseFile(f.path, f.src)
		if err != nil {
			return false
		}
		f.file = af
	}
	return true
}

// planSplit cuts the parsed spec into parts of about partBytes of element
// source each, and at least minParts. It returns nil when the spec cannot be split safely or is
// too small to gain from it.
func planSplit(files []*specFile, partBytes, minParts int) *splitPlan {
	var order []string       // element addresses, in order of first appearance
	size := map[string]int{} // bytes of source per element
	for _, f := range files {
		if !analyseFile(f) {
			return nil
		}
		for _, s := range f.sections {
			for _, e := range s.elems {
				if _, seen := size[e.addr]; !seen {
					order = append(order, e.addr)
				}
				size[e.addr] += e.end - e.start
			}
		}
	}
	total := 0
	for _, n := range size {
		total += n
	}
	nparts := max((total+partBytes-1)/partBytes, minParts)
	if nparts < 2 || len(order) < 2 {
		return nil
	}
	p := &splitPlan{files: files, written: writtenConstraints(files)}
	if nparts >= len(order) {
		for _, a := range order {
			p.parts = append(p.parts, []string{a})
		}
		return p
	}
	// Parts are cut where an element's address hashes to 0 modulo k, the
	// number of elements a part should hold (a power of two): an edit to one
	// element then changes one part, and the others come from the cache.
	k := 1
	for k*2*total/len(order) <= partBytes*4/3 {
		k *= 2
	}
	var cur []string
	for i, a := range order {
		cur = append(cur, a)
		h := fnv.New32a()
		h.Write([]byte(a))
		if h.Sum32()%uint32(k) == 0 || i == len(order)-1 {
			p.parts = append(p.parts, cur)
			cur = nil
		}
	}
	if len(p.parts) >= minParts {
		return p
	}
	// Too few cuts (a small spec): consecutive elements, about
	// total/nparts bytes each.
	p.parts = nil
	acc := 0
	for i, a := range order {
		cur = append(cur, a)
		acc += size[a]
		if acc*nparts >= total*(len(p.parts)+1) || i == len(order)-1 {
			p.parts = append(p.parts, cur)
			cur = nil
		}
	}
	return p
}

// plainLabel returns the name of a label written as an identifier or a
// double-quoted string, without an alias.
func plainLabel(l ast.Label) (string, bool) {
	switch l := l.(type) {
	case *ast.Ident:
		return l.Name, true
	case *ast.BasicLit:
		if l.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(l.Value)
		return s, err == nil
	}
	return "", false
}

// analyseFile finds the sections, elements and imports of a file and
// reports whether the file can be split (see the rules above).
func analyseFile(f *specFile) bool {
	f.sections, f.imports, f.shared, f.nodes = nil, nil, false, nil
	var shared []ast.Node
	for _, d := range f.file.Decls {
		switch d := d.(type) {
		case *ast.Package, *ast.CommentGroup, *ast.Attribute:
		case *ast.ImportDecl:
			for _, s := range d.Specs {
				sp := span{s.Pos().Offset(), s.End().Offset()}
				if !d.Lparen.IsValid() {
					sp = span{d.Pos().Offset(), d.End().Offset()}
				}
				f.imports = append(f.imports, importSpan{span: sp})
			}
		case *ast.LetClause:
			shared = append(shared, d)
			f.shared = true
		case *ast.Field:
			name, ok := plainLabel(d.Label)
			if !ok || d.Alias != nil {
				return false
			}
			if !splitSection(name) {
				shared = append(shared, d)
				f.shared = true
				continue
			}
			st, ok := d.Value.(*ast.StructLit)
			if !ok || d.Constraint != token.ILLEGAL || len(d.Attrs) > 0 {
				return false
			}
			sec := sectionSpan{span: spanWithComma(f.src, d)}
			for _, el := range st.Elts {
				switch el := el.(type) {
				case *ast.CommentGroup:
				case *ast.Field:
					n, ok := plainLabel(el.Label)
					if !ok || el.Alias != nil || el.Constraint != token.ILLEGAL || n == "" || n[0] == '_' || n[0] == '#' {
						return false
					}
					sec.elems = append(sec.elems, elemSpan{span: spanWithComma(f.src, el), addr: name + "." + n, node: len(f.nodes)})
					f.nodes = append(f.nodes, el)
				default:
					return false
				}
			}
			if len(sec.elems) == 0 {
				shared = append(shared, d) // `tasks: {}` is the same in every part
				f.shared = true
				continue
			}
			f.sections = append(f.sections, sec)
		default:
			return false
		}
	}
	inSection := func(off int) bool {
		for _, s := range f.sections {
			if off >= s.start && off < s.end {
				return true
			}
		}
		return false
	}
	importAt := func(n ast.Node) *importSpan {
		off := n.Pos().Offset()
		for i := range f.imports {
			if off >= f.imports[i].start && off < f.imports[i].end {
				return &f.imports[i]
			}
		}
		return nil
	}
	ok := true
	// Top-level declarations may refer to anything but a section.
	for _, d := range shared {
		refs(d, func(id *ast.Ident) {
			switch {
			case id.Node == nil:
				if splitSection(id.Name) {
					ok = false
				}
			case !id.Node.Pos().IsValid() || inSection(id.Node.Pos().Offset()):
				ok = false
			default:
				if imp, isImport := id.Node.(*ast.ImportSpec); isImport {
					if is := importAt(imp); is != nil {
						is.shared = true
					}
				}
			}
		})
	}
	// Elements may refer to top-level declarations and into themselves.
	for _, s := range f.sections {
		for _, e := range s.elems {
			refs(f.nodes[e.node], func(id *ast.Ident) {
				switch {
				case id.Node == nil:
					if splitSection(id.Name) {
						ok = false
					}
				case !id.Node.Pos().IsValid():
					ok = false
				default:
					off := id.Node.Pos().Offset()
					if off >= e.start && off < e.end {
						return
					}
					if inSection(off) {
						ok = false
						return
					}
					if imp, isImport := id.Node.(*ast.ImportSpec); isImport {
						if is := importAt(imp); is != nil {
							is.users = append(is.users, e.addr)
						}
					}
				}
			})
		}
	}
	return ok
}

// writtenConstraints finds the column schemas and gates whose value is the
// constraint as written: the element is written once, as a struct literal,
// its schema or gates field once, as a struct literal, and the column once,
// in closed form (see closedForm), and no top-level field shadows a basic
// type. Nothing else can then add to the column: sections and elements
// hold no patterns, embeddings or comprehensions (planSplit checked), and
// the schema's own constraint on a column is _. The text (whitespace
// normalised) then determines the rule, which is compiled once per text.
func writtenConstraints(files []*specFile) map[string]string {
	decls := map[string]int{}
	for _, f := range files {
		for _, d := range f.file.Decls {
			name := ""
			switch d := d.(type) {
			case *ast.Field:
				name, _ = plainLabel(d.Label)
			case *ast.LetClause:
				name = d.Ident.Name
			}
			if closedFormIdent(name) {
				return nil // a top-level field or let named like a basic type
			}
		}
		for _, s := range f.sections {
			for _, e := range s.elems {
				decls[e.addr]++
			}
		}
	}
	out := map[string]string{}
	for _, f := range files {
		for _, s := range f.sections {
			for _, e := range s.elems {
				field := ""
				switch {
				case strings.HasPrefix(e.addr, "datasets."):
					field = "schema"
				case strings.HasPrefix(e.addr, "models."):
					field = "gates"
				}
				if field == "" || decls[e.addr] != 1 {
					continue
				}
				st, ok := plainStruct(f.nodes[e.node].Value)
				if !ok {
					continue
				}
				cols, ok := plainStruct(st[field])
				if !ok {
					continue
				}
				for name, x := range cols {
					if x != nil && closedForm(x) {
						out[e.addr+"."+field+"."+name] = strings.Join(strings.Fields(string(f.src[x.Pos().Offset():x.End().Offset()])), " ")
					}
				}
			}
		}
	}
	return out
}

// plainStruct returns the fields of a struct literal made of regular fields
// with plain labels (and comments) only, by name; a name written twice maps
// to nil. It reports false for anything else.
func plainStruct(x ast.Expr) (map[string]ast.Expr, bool) {
	st, ok := x.(*ast.StructLit)
	if !ok {
		return nil, false
	}
	out := map[string]ast.Expr{}
	for _, el := range st.Elts {
		switch el := el.(type) {
		case *ast.CommentGroup:
		case *ast.Field:
			name, ok := plainLabel(el.Label)
			if !ok || el.Alias != nil || el.Constraint != token.ILLEGAL {
				return nil, false
			}
			if _, dup := out[name]; dup {
				out[name] = nil
				continue
			}
			out[name] = el.Value
		default:
			return nil, false
		}
	}
	return out, true
}

// splitSection reports whether a top-level field holds elements that go to
// parts. Backends are kept in every part: steps name them in strings.
func splitSection(name string) bool {
	for _, s := range schema.Sections {
		if s == name {
			return true
		}
	}
	return false
}

// spanWithComma is the span of a declaration and the comma that may follow
// it on the same line, so cutting it out leaves a valid struct.
func spanWithComma(src []byte, n ast.Node) span {
	s := span{n.Pos().Offset(), n.End().Offset()}
	i := s.end
	for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
		i++
	}
	if i < len(src) && src[i] == ',' {
		s.end = i + 1
	}
	return s
}

// refs calls f for every identifier n refers to (labels and the names a
// comprehension or let declares are not references).
func refs(n ast.Node, f func(*ast.Ident)) {
	ast.Walk(n, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.Field:
			switch l := x.Label.(type) {
			case *ast.Ident, *ast.BasicLit:
			case *ast.Alias:
				refs(l.Expr, f)
			default:
				refs(l, f) // a dynamic or pattern label is an expression
			}
			refs(x.Value, f)
			return false
		case *ast.SelectorExpr:
			refs(x.X, f)
			return false
		case *ast.Ident:
			f(x)
			return false
		case *ast.ForClause:
			refs(x.Source, f)
			return false
		case *ast.LetClause:
			refs(x.Expr, f)
			return false
		case *ast.Alias:
			refs(x.Expr, f)
			return false
		case *ast.ImportDecl, *ast.Attribute, *ast.CommentGroup:
			return false
		}
		return true
	}, nil)
}

// partSource is the source of file f as part sees it: the elements of other
// parts and the imports only they use are cut out. It returns nil when
// nothing of the file is left for the part.
func partSource(f *specFile, in map[string]bool) []byte {
	var blank []span
	// A file without elements is seen by every part, as is one with
	// top-level fields; one whose only content is other parts' elements is
	// left out.
	kept := f.shared || len(f.sections) == 0
	for _, s := range f.sections {
		any := false
		for _, e := range s.elems {
			if in[e.addr] {
				any = true
			}
		}
		if !any {
			blank = append(blank, s.span)
			continue
		}
		kept = true
		for _, e := range s.elems {
			if !in[e.addr] {
				blank = append(blank, e.span)
			}
		}
	}
	if !kept {
		return nil
	}
	for _, imp := range f.imports {
		if imp.shared || len(imp.users) == 0 {
			continue // used by every part, or by none (an error CUE reports)
		}
		used := false
		for _, u := range imp.users {
			if in[u] {
				used = true
			}
		}
		if !used {
			blank = append(blank, imp.span)
		}
	}
	if len(blank) == 0 {
		return f.src
	}
	// Positions in a part are not those of the
	// file, but a part that reports anything is evaluated again whole.
	// (Spaces would keep them, but CUE's scanner is slow on whitespace.)
	slices.SortFunc(blank, func(a, b span) int { return a.start - b.start })
	out := make([]byte, 0, len(f.src))
	at := 0
	for _, b := range blank {
		out = append(out, f.src[at:b.start]...)
		at = b.end
	}
	return append(out, f.src[at:]...)
}

// Splitting is tried on specs of at least splitMinBytes, in parts of about
// partBytes of element source (and at least one per CPU). Each part costs a
// CUE context and a schema compilation (a few milliseconds).
var (
	splitMinBytes = 64 << 10
	partBytes     = 32 << 10
)

// evaluateSplit evaluates a spec part by part, in parallel. It reports
// false when the spec cannot be split, or a part reported anything: the
// caller then evaluates the spec whole, which gives the diagnostics. With a
// cache folder, each part's IR is cached by what the part sees, so an edit
// re-evaluates only the parts it touches.
func evaluateSplit(ctx context.Context, dir string, files []*specFile, cacheDir string) (*schema.Project, schema.SourceMap, bool) {
	total := 0
	for _, f := range files {
		total += len(f.src)
	}
	if total < splitMinBytes || !parseSpecFiles(files) {
		return nil, nil, false
	}
	workers := runtime.GOMAXPROCS(0)
	plan := planSplit(files, partBytes, workers)
	if plan == nil {
		return nil, nil, false
	}
	mod := ""
	if cacheDir != "" {
		var err error
		if mod, err = moduleDigest(dir); err != nil {
			cacheDir = ""
		}
	}
	results := make([]*schema.Project, len(plan.parts))
	keys := make([]string, len(plan.parts))
	var failed atomic.Bool
	jobs := make(chan int, len(plan.parts))
	for i := range plan.parts {
		jobs <- i
	}
	close(jobs)
	var wg sync.WaitGroup
	for range min(workers, len(plan.parts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ev partEvaluator
			for i := range jobs {
				if failed.Load() || ctx.Err() != nil {
					continue
				}
				srcs := partSources(plan, i)
				if cacheDir != "" {
					keys[i] = partKey(mod, srcs)
					if p, ok := readPart(cacheDir, keys[i]); ok {
						results[i] = p
						continue
					}
				}
				// Parts need no source map: one that reports anything
				// is thrown away.
				p, ok := evaluatePart(&ev, dir, plan, srcs, nil)
				if !ok {
					failed.Store(true)
					continue
				}
				results[i] = p
				if cacheDir != "" {
					writePart(cacheDir, keys[i], p) // a failure only costs time later
				}
			}
		}()
	}
	// Meanwhile, the source map; then the syntax trees are done with.
	asts := make([]*ast.File, len(files))
	for i, f := range files {
		asts[i] = f.file
	}
	sm := sourceMap(dir, asts)
	for _, f := range files {
		f.file, f.nodes = nil, nil
	}
	clear(asts)
	wg.Wait()
	if failed.Load() || ctx.Err() != nil {
		return nil, nil, false
	}
	if cacheDir != "" {
		keep := map[string]bool{}
		for _, k := range keys {
			keep[partPath(cacheDir, k)] = true
		}
		pruneParts(cacheDir, keep)
	}
	return mergeParts(results), sm, true
}

// evaluatePart evaluates one part in a CUE context of its own (a context
// keeps every instance built in it), and reports false on any diagnostic.
func evaluatePart(ev *partEvaluator, dir string, plan *splitPlan, srcs []partFile, sm schema.SourceMap) (*schema.Project, bool) {
	partsEvaluated.Add(1)
	overlay := baseOverlay(dir)
	args := make([]string, len(srcs))
	size := 0
	for i, pf := range srcs {
		size += len(pf.src)
		overlay[pf.f.path] = cueload.FromBytes(pf.src)
		args[i] = "./" + pf.f.name
	}
	insts := cueload.Instances(args, &cueload.Config{Dir: dir, Overlay: overlay})
	if len(insts) != 1 || insts[0].Err != nil {
		return nil, false
	}
	ctx, def, ok := ev.context(size)
	if !ok {
		return nil, false
	}
	v := ctx.BuildInstance(insts[0])
	if v.Err() != nil {
		return nil, false
	}
	u := def.Unify(v)
	if err := u.Validate(cue.Concrete(true), cue.Final()); err != nil && !onlyConstraints(err) {
		return nil, false
	}
	conv := &converter{dir: dir, root: &u, sm: sm}
	d := &decoder{conv: conv, sm: sm, root: u, byName: true, written: plan.written}
	var p schema.Project
	d.decode(u, "", reflectValue(&p))
	if len(d.diags) > 0 {
		return nil, false
	}
	return &p, true
}

// partsEvaluated counts the parts evaluated (not read from the cache), for
// tests.
var partsEvaluated atomic.Int64

// partFile is a spec file as a part sees it.
type partFile struct {
	f   *specFile
	src []byte
}

// partSources are the files part i sees.
func partSources(plan *splitPlan, i int) []partFile {
	in := make(map[string]bool, len(plan.parts[i]))
	for _, a := range plan.parts[i] {
		in[a] = true
	}
	var out []partFile
	for _, f := range plan.files {
		if src := partSource(f, in); src != nil {
			out = append(out, partFile{f, src})
		}
	}
	return out
}

// partKey is the cache key of a part: what it sees and what every
// evaluation depends on.
func partKey(moduleDigest string, srcs []partFile) string {
	h := newKeyHash("part", moduleDigest)
	for _, pf := range srcs {
		h.add(pf.f.name, pf.src)
	}
	return h.sum()
}

// partEvaluator is a worker's CUE context with the schema compiled in it.
// A context keeps every instance built in it, so it is replaced after
// contextBytes of source: a fresh context per part would compile the
// schema once per part, one context for all would hold the whole spec.
type partEvaluator struct {
	ctx  *cue.Context
	def  cue.Value
	used int
}

var contextBytes = 128 << 10

func (ev *partEvaluator) context(size int) (*cue.Context, cue.Value, bool) {
	if ev.ctx == nil || ev.used+size > contextBytes {
		ctx := cuecontext.New()
		sch := ctx.CompileBytes(schema.CUE, cue.Filename(SchemaImportPath+"/weir.cue"))
		if sch.Err() != nil {
			return nil, cue.Value{}, false
		}
		ev.ctx, ev.def, ev.used = ctx, sch.LookupPath(cue.ParsePath("#Project")), 0
	}
	ev.used += size
	return ev.ctx, ev.def, true
}

// onlyConstraints reports whether every error Validate found is an
// incomplete value where the spec holds constraints by design (column
// schemas and gates). Any other error, a missing required field included,
// means the part is not decoded: the whole evaluation reports it.
func onlyConstraints(err error) bool {
	for _, e := range errors.Errors(err) {
		path := e.Path()
		if len(path) > 0 && path[0] == "#Project" {
			path = path[1:]
		}
		if classify(errMsg(e.Msg())) != "incomplete" || !constraintPath(path) {
			return false
		}
	}
	return true
}

// mergeParts joins the IR of the parts: the sections' maps are united (an
// element is in one part only); every other field is the same in every
// part, so the first part's is taken.
func mergeParts(parts []*schema.Project) *schema.Project {
	out := reflect.New(reflect.TypeOf(schema.Project{})).Elem()
	out.Set(reflect.ValueOf(*parts[0]))
	for f := 0; f < out.NumField(); f++ {
		fv := out.Field(f)
		if fv.Kind() != reflect.Map {
			continue
		}
		var m reflect.Value
		for _, p := range parts {
			pm := reflect.ValueOf(p).Elem().Field(f)
			if pm.IsNil() {
				continue
			}
			if !m.IsValid() {
				m = reflect.MakeMapWithSize(pm.Type(), pm.Len())
			}
			it := pm.MapRange()
			for it.Next() {
				m.SetMapIndex(it.Key(), it.Value())
			}
		}
		if m.IsValid() {
			fv.Set(m)
		}
	}
	p := out.Interface().(schema.Project)
	return &p
}
