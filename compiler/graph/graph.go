// Package graph turns the IR into the step graph: it checks references
// between elements (dangling, wrong kind, cycles), expands searches, canaries
// and schedules into steps with stable addresses, wires inputs to outputs,
// and computes every step's cache key. It is pure: the same project and
// files give the same graph. It never imports CUE or OPA and never prints.
package graph

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// Options tune Build.
type Options struct {
	// Dir is the project folder: code folders and file sources are read
	// relative to it.
	Dir string
	// Digests caches file and folder digests across builds; nil makes one.
	Digests *Digester
	// AliasDigest returns the digest of the model artifact an alias points
	// at, for the cache key of steps that read a model through an alias
	// ("models.m@production"); nil or not found means it points nowhere.
	AliasDigest func(model, alias string) (string, bool)
	// ImagePins maps image references to the digests they resolved to; a
	// pinned image enters cache keys by digest, so a moved tag re-runs.
	ImagePins map[string]string
}

// Graph is the compiled step graph.
type Graph struct {
	// Steps in a deterministic topological order.
	Steps []*schema.Step
	// Changes to long-lived resources (aliases, schedules).
	Changes []*schema.Change
	byAddr  map[string]*schema.Step
}

// Step returns the step at addr, or nil.
func (g *Graph) Step(addr string) *schema.Step { return g.byAddr[addr] }

// Build compiles the project's step graph. On error diagnostics the graph
// may be partial and must not be planned.
func Build(p *schema.Project, sm schema.SourceMap, opts Options) (*Graph, diag.Diagnostics) {
	if opts.Digests == nil {
		opts.Digests = NewDigester()
	}
	b := &builder{p: p, sm: sm, opts: opts, elems: map[string]*element{}, byAddr: map[string]*schema.Step{}}
	b.collect()
	b.checkRefs()
	if b.diags.HasErrors() {
		return nil, b.sorted()
	}
	order, ok := b.elementOrder()
	if !ok {
		return nil, b.sorted()
	}
	for _, e := range order {
		b.expand(e)
	}
	if b.diags.HasErrors() {
		return nil, b.sorted()
	}
	steps := b.topo()
	if b.diags.HasErrors() {
		return nil, b.sorted()
	}
	b.keys(steps)
	sort.SliceStable(b.changes, func(i, j int) bool { return b.changes[i].Address < b.changes[j].Address })
	return &Graph{Steps: steps, Changes: b.changes, byAddr: b.byAddr}, b.sorted()
}

// element is one named entry of a section, with its references.
type element struct {
	addr    string // "training.churn"
	section string
	name    string
	refs    []ref
	// final is the step producing the element's main outputs; gates are
	// steps consumers must wait for as well (a dataset's validation).
	final string
	gates []string
}

// ref is a reference from one element to another, at a field path.
type ref struct {
	path   string   // field path where it is written, for positions
	target string   // "datasets.customers"
	alias  string   // "production" in "models.m@production"
	kinds  []string // allowed sections
}

type builder struct {
	p       *schema.Project
	sm      schema.SourceMap
	opts    Options
	elems   map[string]*element
	names   []string // element addresses, sorted
	steps   []*schema.Step
	byAddr  map[string]*schema.Step
	changes []*schema.Change
	diags   diag.Diagnostics
	// shared is held for what steps share while keys runs on several
	// goroutines (see lockShared); nil otherwise.
	shared *sync.Mutex
}

func (b *builder) sorted() diag.Diagnostics {
	b.diags.Sort()
	return b.diags.Dedup()
}

func (b *builder) errorf(code, path, format string, args ...any) {
	b.diags = append(b.diags, diag.Diagnostic{Severity: diag.Error, Code: code, Address: addrOf(path),
		Range: b.sm.Lookup(path), Summary: fmt.Sprintf(format, args...)})
}

// addrOf is the element address at the start of a field path.
func addrOf(path string) string {
	parts := strings.SplitN(path, ".", 3)
	if len(parts) >= 2 {
		name, _, _ := strings.Cut(parts[1], "[")
		return parts[0] + "." + name
	}
	return path
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// collect makes an element per named entry and records its references.
func (b *builder) collect() {
	p := b.p
	add := func(section, name string, refs ...ref) {
		e := &element{addr: section + "." + name, section: section, name: name, refs: refs}
		b.elems[e.addr] = e
		b.names = append(b.names, e.addr)
	}
	refsOf := func(path string, targets []string, kinds ...string) []ref {
		var out []ref
		for i, t := range targets {
			p := path
			if len(targets) > 1 {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			out = append(out, ref{path: p, target: t, kinds: kinds})
		}
		return out
	}
	for _, n := range sortedKeys(p.Datasets) {
		add("datasets", n)
	}
	for _, n := range sortedKeys(p.Features) {
		f := p.Features[n]
		add("features", n, refsOf("features."+n+".from", f.From, "datasets", "features")...)
	}
	for _, n := range sortedKeys(p.Training) {
		t := p.Training[n]
		rs := refsOf("training."+n+".features", t.Features, "features", "datasets")
		if t.Evaluate != nil && t.Evaluate.Data != "" {
			rs = append(rs, ref{path: "training." + n + ".evaluate.data", target: t.Evaluate.Data, kinds: []string{"datasets", "features"}})
		}
		add("training", n, rs...)
	}
	for _, n := range sortedKeys(p.Models) {
		add("models", n, ref{path: "models." + n + ".from", target: p.Models[n].From, kinds: []string{"training"}})
	}
	for _, n := range sortedKeys(p.Serving) {
		add("serving", n, ref{path: "serving." + n + ".model", target: p.Serving[n].Model, kinds: []string{"models"}})
	}
	for _, n := range sortedKeys(p.Monitoring) {
		m := p.Monitoring[n]
		var rs []ref
		if m.Serving != "" {
			rs = append(rs, ref{path: "monitoring." + n + ".serving", target: m.Serving, kinds: []string{"serving"}})
		} else if _, ok := p.Serving[n]; ok {
			rs = append(rs, ref{path: "monitoring." + n, target: "serving." + n, kinds: []string{"serving"}})
		} else {
			b.errorf("dangling-ref", "monitoring."+n, "monitoring.%s watches no endpoint: there is no serving.%s; set serving: \"serving.NAME\"%s",
				n, n, didYouMean(n, sortedKeys(p.Serving)))
		}
		if m.Drift != nil {
			rs = append(rs, ref{path: "monitoring." + n + ".drift.reference", target: m.Drift.Reference, kinds: []string{"datasets", "features"}})
		}
		if m.Performance != nil {
			rs = append(rs, ref{path: "monitoring." + n + ".performance.labels", target: m.Performance.Labels, kinds: []string{"datasets"}})
		}
		add("monitoring", n, rs...)
	}
	for _, n := range sortedKeys(p.Batch) {
		bt := p.Batch[n]
		add("batch", n,
			ref{path: "batch." + n + ".model", target: bt.Model, kinds: []string{"models"}},
			ref{path: "batch." + n + ".input", target: bt.Input, kinds: []string{"datasets", "features"}})
	}
	for _, n := range sortedKeys(p.Tasks) {
		add("tasks", n, refsOf("tasks."+n+".needs", p.Tasks[n].Needs, schema.Sections...)...)
	}
	sort.Strings(b.names)
}

func didYouMean(name string, cands []string) string { return diag.DidYouMean(name, cands) }

// checkRefs reports dangling references and references to the wrong kind.
func (b *builder) checkRefs() {
	for _, addr := range b.names {
		e := b.elems[addr]
		for i := range e.refs {
			r := &e.refs[i]
			target, alias, _ := strings.Cut(r.target, "@")
			r.target, r.alias = target, alias
			section, name, ok := strings.Cut(target, ".")
			if !ok || name == "" {
				b.errorf("bad-ref", r.path, "%s: %q is not an address: write SECTION.NAME, e.g. %q", r.path, target, r.kinds[0]+".NAME")
				continue
			}
			if !contains(schema.Sections, section) {
				b.errorf("bad-ref", r.path, "%s: unknown section %q in %q%s", r.path, section, target, didYouMean(section, schema.Sections))
				continue
			}
			if _, ok := b.elems[target]; !ok {
				b.errorf("dangling-ref", r.path, "%s: %s does not exist%s", r.path, target, didYouMean(target, b.sectionNames(section)))
				continue
			}
			if !contains(r.kinds, section) {
				b.errorf("wrong-kind", r.path, "%s: %s is a %s entry, but this field needs %s", r.path, target, strings.TrimSuffix(section, "s"), orList(r.kinds))
				continue
			}
			if alias != "" && section != "models" {
				b.errorf("bad-ref", r.path, "%s: only models have aliases (%q)", r.path, r.target+"@"+alias)
			}
		}
	}
}

// sectionNames lists the addresses in a section, for suggestions (the whole
// address, so "datasets.custmers" suggests "datasets.customers").
func (b *builder) sectionNames(section string) []string {
	var out []string
	for _, a := range b.names {
		if strings.HasPrefix(a, section+".") {
			out = append(out, a)
		}
	}
	return out
}

func orList(kinds []string) string {
	if len(kinds) == len(schema.Sections) {
		return "any element"
	}
	var parts []string
	for _, k := range kinds {
		parts = append(parts, "a "+strings.TrimSuffix(k, "s")+" ("+k+".NAME)")
	}
	return strings.Join(parts, " or ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// elementOrder orders elements so every element comes after those it
// references, reporting each cycle with its path.
func (b *builder) elementOrder() ([]*element, bool) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var order []*element
	var stack []string
	ok := true
	var visit func(addr string)
	visit = func(addr string) {
		color[addr] = grey
		stack = append(stack, addr)
		e := b.elems[addr]
		for _, r := range e.refs {
			switch color[r.target] {
			case white:
				visit(r.target)
			case grey:
				i := len(stack) - 1
				for i > 0 && stack[i] != r.target {
					i--
				}
				cycle := append(append([]string{}, stack[i:]...), r.target)
				b.errorf("cycle", r.path, "cycle: %s", strings.Join(cycle, " -> "))
				ok = false
			}
		}
		stack = stack[:len(stack)-1]
		color[addr] = black
		order = append(order, e)
	}
	for _, a := range b.names {
		if color[a] == white {
			visit(a)
		}
	}
	return order, ok
}

// relPath renders a code or source path as written, relative to the project.
func relPath(p string) string {
	return filepath.ToSlash(filepath.Clean(p))
}
