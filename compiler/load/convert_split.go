package load

import (
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"

	"weir.dev/weir/schema"
)

// A front end's spec is plain data once evaluated: no element refers to
// another (a reference is an address string), so a large one is always cut
// into parts, as a CUE spec is when its syntax allows it (split.go). Each
// part holds every top-level field that is not a section and a share of the
// elements; the parts are built into CUE files without positions and
// checked in parallel, each in a worker's CUE context. A part that reports
// anything sends the spec back to being checked whole, which gives the
// diagnostics with their positions.

// A front end's spec is checked in parts from frontSplitMin elements, in
// parts of about frontPartElems elements (and at least one per CPU).
var (
	frontSplitMin  = 200
	frontPartElems = 100
)

// frontElemBytes estimates the CUE source an element stands for, so a
// worker's context is replaced as often as split.go's (contextBytes).
const frontElemBytes = 350

// frontElem is an element of a front end's spec.
type frontElem struct{ section, name string }

// checkFrontSplit checks fs in parts, in parallel. It reports false when
// the spec is too small to gain from it, is not shaped as a spec (a section
// that is not an object), or a part reported anything: the caller then
// checks it whole.
func checkFrontSplit(dir string, fs *frontSpec) (*schema.Project, bool) {
	shared := map[string]any{}
	var elems []frontElem
	closedNames := true // no top-level field is named like a basic type
	for k, v := range fs.data {
		if closedFormIdent(k) {
			closedNames = false
		}
		if !splitSection(k) {
			shared[k] = v
			continue
		}
		sec, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if len(sec) == 0 {
			shared[k] = v
			continue
		}
		for name := range sec {
			elems = append(elems, frontElem{k, name})
		}
	}
	if len(elems) < frontSplitMin {
		return nil, false
	}
	sort.Slice(elems, func(i, j int) bool {
		if elems[i].section != elems[j].section {
			return elems[i].section < elems[j].section
		}
		return elems[i].name < elems[j].name
	})
	workers := runtime.GOMAXPROCS(0)
	nparts := max((len(elems)+frontPartElems-1)/frontPartElems, workers)
	results := make([]*schema.Project, nparts)
	jobs := make(chan int, nparts)
	for i := range nparts {
		jobs <- i
	}
	close(jobs)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(workers, nparts) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ev partEvaluator
			for i := range jobs {
				if failed.Load() {
					continue
				}
				part := elems[i*len(elems)/nparts : (i+1)*len(elems)/nparts]
				data := make(map[string]any, len(shared)+4)
				for k, v := range shared {
					data[k] = v
				}
				for _, e := range part {
					sec, _ := data[e.section].(map[string]any)
					if sec == nil {
						sec = map[string]any{}
						data[e.section] = sec
					}
					sec[e.name] = fs.data[e.section].(map[string]any)[e.name]
				}
				p, ok := checkFrontPart(&ev, dir, &frontSpec{data: data, main: fs.main}, len(part)*frontElemBytes, closedNames)
				if !ok {
					failed.Store(true)
					continue
				}
				results[i] = p
			}
		}()
	}
	wg.Wait()
	if failed.Load() {
		return nil, false
	}
	return mergeParts(results), true
}

// checkFrontPart builds one part into a CUE file (no positions, no source
// map: a part that reports anything is thrown away), unifies it with the
// schema, validates and decodes it. With closedNames, a column or gate
// written in closed form is compiled once per text (decoder.written).
func checkFrontPart(ev *partEvaluator, dir string, fs *frontSpec, size int, closedNames bool) (*schema.Project, bool) {
	partsEvaluated.Add(1)
	b := &cueBuilder{dir: dir, spec: fs, noPos: true}
	if closedNames {
		b.written = map[string]string{}
	}
	st := b.expr("", fs.data).(*ast.StructLit)
	if len(b.diags) > 0 {
		return nil, false
	}
	ctx, def, ok := ev.context(size)
	if !ok {
		return nil, false
	}
	v := ctx.BuildFile(&ast.File{Decls: st.Elts})
	if v.Err() != nil {
		return nil, false
	}
	u := def.Unify(v)
	if err := u.Validate(cue.Concrete(true), cue.Final()); err != nil && !onlyConstraints(err) {
		return nil, false
	}
	d := &decoder{conv: &converter{dir: dir, root: &u}, root: u, byName: true, written: b.written}
	var p schema.Project
	d.decode(u, "", reflectValue(&p))
	if len(d.diags) > 0 {
		return nil, false
	}
	return &p, true
}

// noteWritten records a constraint's text when its syntax alone gives its
// value (see writtenConstraints): a front end's column or gate is the
// string it holds, which nothing else adds to.
func (b *cueBuilder) noteWritten(path, text string, x ast.Expr) {
	if b.written != nil && closedForm(x) {
		b.written[path] = strings.Join(strings.Fields(text), " ")
	}
}
