package policy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// DefaultTimeout bounds one evaluation when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// WaiverExpiredRule is the rule id of the finding an expired waiver raises.
const WaiverExpiredRule = "weir.waiver.expired"

// Options say which policies to load and how to treat their findings.
type Options struct {
	// Builtin loads the embedded bundle (package policies).
	Builtin bool
	// Dirs are user policy folders (the project's policies/ and the spec's
	// policy.bundles) or single .rego files. Folders are read recursively:
	// .rego modules, and .json/.yaml/.yml data placed at the data path of
	// their folder. Folders starting with "." are skipped.
	Dirs []string
	// Config is the spec's policy.data, seen by policies as
	// data.weir.config (merged over any data files' weir.config).
	Config map[string]any
	// Enforcement maps a rule id to "deny", "warn" or "off", overriding
	// the severity of its findings.
	Enforcement map[string]string
	// Waivers accept a rule's findings on an address until they expire.
	Waivers []schema.Waiver
	// Timeout bounds one Eval (DefaultTimeout when zero) and each test in
	// Test.
	Timeout time.Duration
	// Now is the clock waivers expire by (time.Now when nil).
	Now func() time.Time
}

// RuleInfo describes one rule (one policy package), from its METADATA.
type RuleInfo struct {
	// ID is custom.id, or the package path without "data." when the
	// METADATA gives none.
	ID          string `json:"id"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// Severity is custom.severity normalised to "error", "warning" or
	// "info"; without one, "error" for packages with deny or violation
	// rules and "warning" otherwise.
	Severity    string `json:"severity"`
	Remediation string `json:"remediation,omitempty"`
	// Enforcement is the override from Options.Enforcement ("deny",
	// "warn", "off"), empty when there is none.
	Enforcement string `json:"enforcement,omitempty"`
	// Package is the Rego package ("weir.image.digest").
	Package string `json:"package,omitempty"`
	// File is the module that declares the rule's METADATA (or its first
	// module); built-in files start with BuiltinPrefix.
	File    string `json:"file,omitempty"`
	Builtin bool   `json:"builtin,omitempty"`
}

// Level is the severity findings of the rule get after enforcement:
// "error", "warning", "info" or "off".
func (r RuleInfo) Level() string {
	switch r.Enforcement {
	case "deny":
		return "error"
	case "warn":
		return "warning"
	case "off":
		return "off"
	}
	return r.Severity
}

// Engine holds compiled policies, ready to evaluate many inputs. It is safe
// for concurrent use.
type Engine struct {
	timeout     time.Duration
	now         func() time.Time
	enforcement map[string]string
	waivers     []schema.Waiver
	rules       []RuleInfo
	ruleIDs     map[string]bool

	compiler *ast.Compiler
	store    storage.Store
	targets  []*target

	// files and data are the bundle's sources, for Dump.
	files map[string]moduleFile
	data  map[string]any

	// single holds one prepared query per target, built on the first
	// evaluation error so a failing policy does not hide the others.
	singleOnce sync.Once
	single     []rego.PreparedEvalQuery
	singleErr  error

	// all is every target; readers are those that may read the plan's
	// steps (see readsSteps), others the rest (nil when none).
	all, readers, others *targetSet
}

// targetSet is targets evaluated together: one query over them all and,
// made on first use for one number of goroutines, their groups for
// evaluation on several (see evalSet).
type targetSet struct {
	index      []int // in Engine.targets, ascending
	query      rego.PreparedEvalQuery
	groupsOnce sync.Once
	groups     []group
	groupsErr  error
}

// group is targets evaluated by one query on one goroutine; index are
// their indexes in Engine.targets.
type group struct {
	targets []*target
	index   []int
	query   rego.PreparedEvalQuery
}

// target is one policy package with finding rules.
type target struct {
	pkg   ast.Ref
	id    string
	kinds []string // of findingKinds, in that order
	vars  []string // the query's variable for each kind
}

// findingKinds are the rule names whose values are findings, as conftest
// names them: deny and violation are errors, warn warnings.
var findingKinds = []string{"deny", "violation", "warn"}

// unsafeBuiltins are refused in policies: a policy must be a pure function
// of the spec and plan (no network), and must not read Weir's environment.
var unsafeBuiltins = map[string]struct{}{
	"http.send":          {},
	"net.lookup_ip_addr": {},
	"opa.runtime":        {},
}

func newCompiler(print bool) *ast.Compiler {
	return ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithUnsafeBuiltins(unsafeBuiltins).
		WithEnablePrintStatements(print)
}

// New loads, parses and compiles the policies once and prepares their
// evaluation. Parse errors are "policy-syntax" and compile errors (unsafe
// variables, type errors, unknown functions) "policy-compile"
// diagnostics at the .rego file's line and column; unreadable folders are
// "policy-load" and bad data files "policy-data". The Engine is nil when
// the diagnostics hold an error.
func New(ctx context.Context, opts Options) (*Engine, diag.Diagnostics) {
	b, c, ds := compiled(opts)
	if ds.HasErrors() {
		return nil, ds
	}
	e := &Engine{
		timeout:     opts.Timeout,
		now:         opts.Now,
		enforcement: opts.Enforcement,
		waivers:     opts.Waivers,
		files:       b.files,
		data:        b.data,
	}
	if e.timeout <= 0 {
		e.timeout = DefaultTimeout
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.compiler = c
	e.store = inmem.NewFromObjectWithOpts(b.data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))

	var rds diag.Diagnostics
	e.rules, e.targets, rds = discover(b)
	ds = append(ds, rds...)
	e.ruleIDs = make(map[string]bool, len(e.rules))
	for i := range e.rules {
		if lvl, ok := opts.Enforcement[e.rules[i].ID]; ok {
			e.rules[i].Enforcement = lvl
		}
		e.ruleIDs[e.rules[i].ID] = true
	}
	if len(e.targets) > 0 {
		var all, readers, others []int
		for i, t := range e.targets {
			all = append(all, i)
			if slices.ContainsFunc(e.rulesOf(t), readsSteps) {
				readers = append(readers, i)
			} else {
				others = append(others, i)
			}
		}
		var err error
		if e.all, err = e.newSet(ctx, all); err == nil && len(readers) > 0 {
			if e.readers, err = e.newSet(ctx, readers); err == nil && len(others) > 0 {
				e.others, err = e.newSet(ctx, others)
			}
		}
		if err != nil {
			return nil, append(ds, regoErrors("policy-compile", err, "")...)
		}
	}
	return e, ds
}

// newSet prepares the query over the targets at index.
func (e *Engine) newSet(ctx context.Context, index []int) (*targetSet, error) {
	q, err := rego.New(
		rego.Query(queryText(e.at(index))),
		rego.Compiler(e.compiler),
		rego.Store(e.store),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &targetSet{index: index, query: q}, nil
}

// at is the targets at index.
func (e *Engine) at(index []int) []*target {
	out := make([]*target, len(index))
	for i, j := range index {
		out[i] = e.targets[j]
	}
	return out
}

// queryText is one query over every target: for each finding rule, a
// variable bound to [value], or to [] when the rule is undefined (a
// complete rule whose conditions fail), so one undefined rule does not make
// the whole query undefined. The value is usually a set of findings; see
// collect.
func queryText(targets []*target) string {
	var b strings.Builder
	for _, t := range targets {
		for i, kind := range t.kinds {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s = [x | x := %s]", t.vars[i], t.pkg.Append(ast.StringTerm(kind)))
		}
	}
	return b.String()
}

// discover finds the policy packages (under data.weir, with deny, warn or
// violation rules) and their METADATA.
func discover(b *bundle) ([]RuleInfo, []*target, diag.Diagnostics) {
	var ds diag.Diagnostics
	names := make([]string, 0, len(b.modules))
	for name := range b.modules {
		if !b.tests[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)

	type pkgInfo struct {
		path  ast.Ref
		kinds map[string]bool
		info  RuleInfo
		meta  bool
	}
	pkgs := map[string]*pkgInfo{}
	var order []string
	for _, name := range names {
		m := b.modules[name]
		path := m.Package.Path
		if len(path) < 2 || !path[1].Equal(ast.StringTerm("weir")) {
			continue
		}
		kinds := map[string]bool{}
		for _, r := range m.Rules {
			ref := r.Head.Ref()
			if len(ref) != 1 {
				continue
			}
			if v, ok := ref[0].Value.(ast.Var); ok {
				for _, k := range findingKinds {
					if string(v) == k {
						kinds[k] = true
					}
				}
			}
		}
		key := path.String()
		p, seen := pkgs[key]
		if !seen {
			p = &pkgInfo{path: path, kinds: map[string]bool{}}
			p.info = RuleInfo{
				ID:      strings.TrimPrefix(key, "data."),
				Package: strings.TrimPrefix(key, "data."),
				File:    name,
				Builtin: b.builtin[name],
			}
			pkgs[key] = p
			order = append(order, key)
		}
		for k := range kinds {
			p.kinds[k] = true
		}
		if a := packageAnnotations(m); a != nil && !p.meta {
			p.meta = true
			p.info.File = name
			p.info.Builtin = b.builtin[name]
			p.info.Title = a.Title
			p.info.Description = strings.TrimSpace(a.Description)
			if id := customString(a, "id"); id != "" {
				p.info.ID = id
			}
			p.info.Severity = normalSeverity(customString(a, "severity"))
			p.info.Remediation = customString(a, "remediation")
		}
	}

	var rules []RuleInfo
	var targets []*target
	byID := map[string]string{}
	for _, key := range order {
		p := pkgs[key]
		if len(p.kinds) == 0 {
			continue // a library package
		}
		if p.info.Severity == "" {
			p.info.Severity = "warning"
			if p.kinds["deny"] || p.kinds["violation"] {
				p.info.Severity = "error"
			}
		}
		if other, dup := byID[p.info.ID]; dup {
			ds = append(ds, diag.Errorf("policy-duplicate-id", "", &diag.Range{Filename: p.info.File},
				"rule id %s is declared by %s and by %s; rule ids must be unique", p.info.ID, other, p.info.File))
			continue
		}
		byID[p.info.ID] = p.info.File
		t := &target{pkg: p.path, id: p.info.ID}
		for _, k := range findingKinds {
			if p.kinds[k] {
				t.kinds = append(t.kinds, k)
				t.vars = append(t.vars, fmt.Sprintf("w%d_%s", len(targets), k))
			}
		}
		targets = append(targets, t)
		rules = append(rules, p.info)
	}
	rules = append(rules, RuleInfo{
		ID:          WaiverExpiredRule,
		Title:       "Waivers are current",
		Description: "A waiver in policy.waivers whose expiry date has passed no longer accepts findings, and is itself a finding until it is renewed or removed.",
		Severity:    "error",
		Remediation: "Fix the findings the waiver accepted and remove it, or renew it with a new expires date and reason.",
		Builtin:     true,
	})
	sort.Slice(rules, func(i, j int) bool { return rules[i].ID < rules[j].ID })
	return rules, targets, ds
}

// packageAnnotations is the module's package-scoped METADATA, or any
// METADATA that carries a custom.id.
func packageAnnotations(m *ast.Module) *ast.Annotations {
	for _, a := range m.Annotations {
		if a.Scope == "package" || a.Scope == "subpackages" {
			return a
		}
	}
	for _, a := range m.Annotations {
		if customString(a, "id") != "" {
			return a
		}
	}
	return nil
}

func customString(a *ast.Annotations, key string) string {
	if a == nil || a.Custom == nil {
		return ""
	}
	s, _ := a.Custom[key].(string)
	return strings.TrimSpace(s)
}

func normalSeverity(s string) string {
	switch strings.ToLower(s) {
	case "error", "deny", "violation", "high", "critical":
		return "error"
	case "warning", "warn", "medium":
		return "warning"
	case "info", "note", "notice", "low":
		return "info"
	}
	return ""
}

// Rules lists the loaded rules, sorted by id, with the built-in
// WaiverExpiredRule.
func (e *Engine) Rules() []RuleInfo {
	return append([]RuleInfo(nil), e.rules...)
}

// rawFinding is a value of a finding rule before Weir's treatment.
type rawFinding struct {
	t     *target
	kind  string
	value any
}

// Eval evaluates every policy over the input and returns the findings, with
// enforcement overrides and waivers applied, addresses and source ranges
// from sm, sorted by position, rule, address and message.
//
// A policy that fails at evaluation (conflicting values, a built-in
// function's error such as a type error) gives a "policy-error" diagnostic
// naming its rule; the other policies' findings are still returned.
// Evaluation running longer than the timeout is stopped ("policy-timeout").
//
// The input is converted from in directly, its plan's steps only if a
// policy reads them (see Input.lazy), and a large input's policies are
// evaluated in groups on several goroutines (see evalAll); the findings
// are the same.
func (e *Engine) Eval(ctx context.Context, in Input, sm schema.SourceMap) ([]schema.Finding, diag.Diagnostics) {
	var ds diag.Diagnostics
	var raw []rawFinding
	if len(e.targets) > 0 {
		ectx, cancel := context.WithTimeout(ctx, e.timeout)
		defer cancel()
		workers := 1
		if n := runtime.GOMAXPROCS(0); n > 1 && in.large() {
			workers = min(n, 4, len(e.targets))
		}
		// Over the input with the plan's steps unconverted (most
		// policies never read them), the policies that may read them
		// first: if one does, evaluation stops and is made again over
		// the whole input, having done little for nothing.
		lctx, stop := context.WithCancel(ectx)
		defer stop()
		var touched atomic.Bool
		val, err := in.lazy(func() { touched.Store(true); stop() })
		if err != nil {
			return nil, diag.Diagnostics{diag.Errorf("policy-input", "", nil, "cannot build the policy input: %v", err)}
		}
		results := make([]targetResult, len(e.targets))
		var sets []*targetSet
		switch {
		case val.plan == nil || e.readers == nil:
			sets = []*targetSet{e.all}
		case e.others == nil:
			sets = []*targetSet{e.readers}
		default:
			sets = []*targetSet{e.readers, e.others}
		}
		for _, set := range sets {
			n := workers
			if set == e.readers && len(sets) > 1 {
				n = 1 // few, and in a hurry to touch the steps
			}
			var sds diag.Diagnostics
			sds, err = e.evalSet(lctx, set, val, n, results)
			ds = append(ds, sds...)
			if err != nil || touched.Load() {
				break
			}
		}
		if touched.Load() {
			if val, err = in.withSteps(val); err != nil {
				return nil, diag.Diagnostics{diag.Errorf("policy-input", "", nil, "cannot build the policy input: %v", err)}
			}
			results = make([]targetResult, len(e.targets))
			ds, err = e.evalSet(ectx, e.all, val, workers, results)
		}
		if err != nil {
			return nil, diag.Diagnostics{e.cancelled(ctx)}
		}
		for _, r := range results {
			raw = append(raw, r.raw...)
			ds = append(ds, r.ds...)
		}
	}
	findings, fds := e.finish(raw, sm)
	return findings, append(ds, fds...)
}

func isCancel(err error) bool {
	return topdown.IsCancel(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func (e *Engine) cancelled(parent context.Context) diag.Diagnostic {
	if parent.Err() != nil {
		return diag.Errorf("policy-cancelled", "", nil, "policy evaluation was cancelled")
	}
	d := diag.Errorf("policy-timeout", "", nil, "policy evaluation took longer than the timeout of %s and was stopped", e.timeout)
	d.Detail = "Raise policy.timeout in the spec, or make the slow policy cheaper (index by address instead of joining lists)."
	return d
}

func (e *Engine) collect(rs rego.ResultSet, targets []*target) []rawFinding {
	if len(rs) == 0 {
		return nil
	}
	var raw []rawFinding
	b := rs[0].Bindings
	for _, t := range targets {
		for i, kind := range t.kinds {
			vals, _ := b[t.vars[i]].([]any)
			if len(vals) == 0 {
				continue
			}
			switch v := vals[0].(type) {
			case []any: // a set (or array) of findings, the usual case
				for _, x := range v {
					raw = append(raw, rawFinding{t: t, kind: kind, value: x})
				}
			case nil, bool, string, map[string]any:
				// A complete rule: deny := "message", deny := {msg...};
				// false, null and "" mean no finding, true one without a
				// message of its own.
				switch {
				case v == nil, v == false, v == "":
				case v == true:
					raw = append(raw, rawFinding{t: t, kind: kind, value: kind + " rule of " + t.id + " is true"})
				default:
					raw = append(raw, rawFinding{t: t, kind: kind, value: v})
				}
			default:
				raw = append(raw, rawFinding{t: t, kind: kind, value: v})
			}
		}
	}
	return raw
}

// evalSet evaluates set's targets over val, on workers goroutines: with
// one, the one query over them all; with more, their groups (see share),
// a query each, on that many goroutines. A query that fails gives way to
// each of its targets alone, so that the failing ones become diagnostics
// and the others still give findings. What each target gives goes into
// results at its index; the diagnostics returned are the set's own (a
// failure to prepare the single queries). The error is set when
// evaluation was cancelled.
func (e *Engine) evalSet(ctx context.Context, set *targetSet, val *inputValue, workers int, results []targetResult) (diag.Diagnostics, error) {
	if workers > 1 {
		set.groupsOnce.Do(func() { set.groups, set.groupsErr = e.share(set, workers) })
	}
	groups := set.groups
	if workers <= 1 || set.groupsErr != nil || len(groups) < 2 {
		groups = []group{{targets: e.at(set.index), index: set.index, query: set.query}}
	}
	ds := make([]diag.Diagnostics, len(groups))
	errs := make([]error, len(groups))
	run := func(gi int) {
		g := groups[gi]
		// Each goroutine its own value: a lazy object is not shared.
		var rs []targetResult
		rs, ds[gi], errs[gi] = e.evalGroup(ctx, val.value(), g)
		for i, r := range rs {
			results[g.index[i]] = r
		}
	}
	if len(groups) == 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for gi := range groups {
			wg.Go(func() { run(gi) })
		}
		wg.Wait()
	}
	var all diag.Diagnostics
	for gi := range groups {
		if errs[gi] != nil {
			return nil, errs[gi]
		}
		all = append(all, ds[gi]...)
	}
	return all, nil
}

// targetResult is what evaluation gave for one target.
type targetResult struct {
	raw []rawFinding
	ds  diag.Diagnostics
}

// evalGroup evaluates g's query over val, and when it fails each of g's
// targets alone; it returns what each of g's targets gave, and the
// diagnostics of the group (a failure to prepare the single queries).
func (e *Engine) evalGroup(ctx context.Context, val ast.Value, g group) ([]targetResult, diag.Diagnostics, error) {
	results := make([]targetResult, len(g.targets))
	rs, err := g.query.Eval(ctx, rego.EvalParsedInput(val))
	switch {
	case err == nil:
		for i, t := range g.targets {
			results[i].raw = e.collect(rs, []*target{t})
		}
		return results, nil, nil
	case isCancel(err):
		return nil, nil, err
	}
	e.singleOnce.Do(func() {
		for _, t := range e.targets {
			q, err := e.prepare([]*target{t})
			if err != nil {
				e.singleErr = err
				return
			}
			e.single = append(e.single, q)
		}
	})
	if e.singleErr != nil {
		return results, regoErrors("policy-error", e.singleErr, ""), nil
	}
	for i, t := range g.targets {
		rs, err := e.single[g.index[i]].Eval(ctx, rego.EvalParsedInput(val))
		switch {
		case err == nil:
			results[i].raw = e.collect(rs, []*target{t})
		case isCancel(err):
			return nil, nil, err
		default:
			results[i].ds = diag.Diagnostics{policyError(t.id, err)}
		}
	}
	return results, nil, nil
}

// prepare prepares the query over targets.
func (e *Engine) prepare(targets []*target) (rego.PreparedEvalQuery, error) {
	return rego.New(
		rego.Query(queryText(targets)),
		rego.Compiler(e.compiler),
		rego.Store(e.store),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(context.Background())
}

// rulesOf lists the rules t's finding rules read, themselves included,
// directly or not.
func (e *Engine) rulesOf(t *target) []*ast.Rule {
	seen := map[*ast.Rule]bool{}
	var out []*ast.Rule
	var walk func(r *ast.Rule)
	walk = func(r *ast.Rule) {
		if seen[r] {
			return
		}
		seen[r] = true
		out = append(out, r)
		for d := range e.compiler.Graph.Dependencies(r) {
			if dr, ok := d.(*ast.Rule); ok {
				walk(dr)
			}
		}
	}
	for _, kind := range t.kinds {
		for _, r := range e.compiler.GetRules(t.pkg.Append(ast.StringTerm(kind))) {
			walk(r)
		}
	}
	return out
}

// readsSteps reports whether rule r may read input.plan.steps: a ref to
// input whose path could lead there (input, input.plan, input[x].steps
// ...).
func readsSteps(r *ast.Rule) bool {
	path := []string{"plan", "steps"}
	found := false
	ast.WalkRefs(r, func(ref ast.Ref) bool {
		if found || !ref[0].Equal(ast.InputRootDocument) {
			return found
		}
		for i, p := range path {
			if i+1 >= len(ref) {
				break
			}
			if s, ok := ref[i+1].Value.(ast.String); ok && string(s) != p {
				return false
			}
		}
		found = true
		return true
	})
	return found
}

// share shares the targets out into at most n groups, a prepared query
// each. An evaluation computes a rule (other than a function) once for
// all the targets of its query that read it: targets that read one (the
// built-in image, resource, code and secret policies read the run sites of
// data.weir.lib.runs) stay in one group. Groups are then filled with
// whole clusters of such targets, the largest first, each into the group
// with the fewest targets.
func (e *Engine) share(set *targetSet, n int) ([]group, error) {
	targets := e.at(set.index)
	parent := make([]int, len(targets))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	readBy := map[*ast.Rule]int{} // a rule read, and the first target reading it
	for i, t := range targets {
		for _, r := range e.rulesOf(t) {
			if len(r.Head.Args) == 0 && !r.Module.Package.Path.Equal(t.pkg) {
				if j, ok := readBy[r]; ok {
					parent[find(i)] = find(j)
				} else {
					readBy[r] = i
				}
			}
		}
	}
	clusters := map[int][]int{} // of indexes in e.targets
	var roots []int
	for i := range targets {
		r := find(i)
		if clusters[r] == nil {
			roots = append(roots, r)
		}
		clusters[r] = append(clusters[r], set.index[i])
	}
	sort.SliceStable(roots, func(a, b int) bool { return len(clusters[roots[a]]) > len(clusters[roots[b]]) })
	groups := make([]group, min(n, len(roots)))
	for _, r := range roots {
		g := &groups[0]
		for k := range groups {
			if len(groups[k].index) < len(g.index) {
				g = &groups[k]
			}
		}
		g.index = append(g.index, clusters[r]...)
	}
	for k := range groups {
		g := &groups[k]
		sort.Ints(g.index)
		for _, i := range g.index {
			g.targets = append(g.targets, e.targets[i])
		}
		q, err := e.prepare(g.targets)
		if err != nil {
			return nil, err
		}
		g.query = q
	}
	return groups, nil
}

// policyError adapts an evaluation error of the rule id.
func policyError(id string, err error) diag.Diagnostic {
	var te *topdown.Error
	if errors.As(err, &te) {
		msg, more, _ := strings.Cut(te.Message, "\n")
		d := diag.Errorf("policy-error", "", locationRange(te.Location, ""), "policy error in rule %s: %s", id, strings.TrimSuffix(msg, ":"))
		d.Detail = strings.TrimSpace(dedent(more) + "\n(" + te.Code + ")")
		return d
	}
	var ae *ast.Error
	if errors.As(err, &ae) {
		return diag.Errorf("policy-error", "", locationRange(ae.Location, ""), "policy error in rule %s: %s", id, ae.Message)
	}
	return diag.Errorf("policy-error", "", nil, "policy error in rule %s: %v", id, err)
}

// dedent trims the common indentation OPA puts on continuation lines.
func dedent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}
