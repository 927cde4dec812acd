// Package compiler is Weir's pass list: load, graph, resolve, policy, lower
// and diff, run in order over one project to produce a plan. Each pass has
// one job and a name; the driver can trace them and tests can stop after any.
// The compiler reads state only through the State interface and never
// prints.
package compiler

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"weir.dev/weir/compiler/graph"
	"weir.dev/weir/compiler/load"
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// State is what the plan's diff reads of the state. EmptyState is the state
// of a project that never ran.
type State interface {
	// Serial is the state's change counter, recorded in the plan.
	Serial() int64
	// Prepare is told every step before the diff asks about them one by
	// one, so a state can answer from a few bulk reads.
	Prepare(steps []*schema.Step)
	// Lookup reports whether a successful result for the cache key exists
	// with its artifacts intact. When it does not, reason may say why a
	// result that existed cannot be used ("artifact model is missing").
	Lookup(key string) (hit bool, reason string)
	// LastKeyParts returns the key parts of the last successful execution at
	// an address, so the plan can say what changed.
	LastKeyParts(address string) (map[string]string, bool)
	// Alias returns the version an alias of a model points at.
	Alias(model, alias string) (version int, ok bool)
	// AliasDigest returns the digest of the artifact of the version an
	// alias points at.
	AliasDigest(model, alias string) (digest string, ok bool)
	// TypicalDuration is how long a step at the address usually takes.
	TypicalDuration(address string) (time.Duration, bool)
	// LatestVersion is the newest version of a model that passed its gates
	// (and is approved, when approvedOnly).
	LatestVersion(model string, approvedOnly bool) (int, bool)
}

// EmptyState is a State with nothing in it.
type EmptyState struct{}

func (EmptyState) Prepare([]*schema.Step)                        {}
func (EmptyState) Serial() int64                                 { return 0 }
func (EmptyState) Lookup(string) (bool, string)                  { return false, "" }
func (EmptyState) LastKeyParts(string) (map[string]string, bool) { return nil, false }
func (EmptyState) Alias(string, string) (int, bool)              { return 0, false }
func (EmptyState) TypicalDuration(string) (time.Duration, bool)  { return 0, false }
func (EmptyState) LatestVersion(string, bool) (int, bool)        { return 0, false }
func (EmptyState) AliasDigest(string, string) (string, bool)     { return "", false }

// Lowerer turns steps of one backend into its native tasks, shown in the
// plan: tasks[i] or errs[i] for steps[i]. The lower pass hands it all of a
// backend's steps at once. err says the backend cannot lower any of them
// (it cannot be opened: an unknown kind, a plugin that fails to start): it
// is reported once, at the backend's entry in the spec.
type Lowerer func(ctx context.Context, backend string, cfg *schema.Backend, steps []*schema.Step) (tasks []json.RawMessage, errs []error, err error)

// Checker looks at where a backend's steps will run before apply (a
// cluster's namespace, its nodes, what RBAC allows) and returns what would
// fail or wait forever. Diagnostics naming a step's address get its source
// range. It is called once per backend, with that backend's user steps.
type Checker func(ctx context.Context, backend string, cfg *schema.Backend, steps []*schema.Step) diag.Diagnostics

// RolloutPlanner compares the rollout of one serving element (its deploy
// step, or its canary steps in order, all on one backend) with what is live
// where it deploys: a cluster's objects, changed by hand or not. version is
// the model version the rollout serves, or 0 when it is known only at apply
// (why says why). It returns one RolloutStep per step, or nil to leave the
// steps as planned (a backend that cannot compare); a cluster out of reach
// is a warning. It is called from the diff pass, after the steps' actions
// and the aliases' changes are decided.
type RolloutPlanner func(ctx context.Context, backend string, cfg *schema.Backend, steps []*schema.Step, version int, why string) ([]RolloutStep, diag.Diagnostics)

// RolloutStep is what a RolloutPlanner found one step would do: it
// replaces the step's action and reason, and Diff lists what changes
// (schema.Step.Diff).
type RolloutStep struct {
	Action schema.Action
	Reason string
	Diff   []string
}

// PolicyFunc evaluates policies over the project and the plan.
type PolicyFunc func(ctx context.Context, ld *load.Result, p *schema.Plan) ([]schema.Finding, diag.Diagnostics)

// Options configure Compile.
type Options struct {
	// Dir is the project folder.
	Dir string
	// Targets restrict the plan to these addresses and what they need.
	Targets []string
	// Replace forces these addresses to run even when cached.
	Replace []string
	// State is read by the diff; nil means EmptyState.
	State State
	// CacheDir caches the evaluation of an unchanged spec (.weir/cache).
	CacheDir string
	// Inputs are the variables an HCL or Jsonnet spec reads.
	Inputs load.Inputs
	// WeirVersion is recorded in the plan.
	WeirVersion string
	// Lower, when set, lowers each step for its backend.
	Lower Lowerer
	// Check, when set, checks each backend's steps after lowering (the
	// lower pass's last act).
	Check Checker
	// PlanRollout, when set, compares each serving element's rollout with
	// what is live where it deploys (the diff pass).
	PlanRollout RolloutPlanner
	// Policy, when set, evaluates policies.
	Policy PolicyFunc
	// LockHash is the digest of weir.lock, recorded in the plan.
	LockHash string
	// Resolve pins the spec's image references to digests (from weir.lock,
	// a registry or the engine). Problems it cannot fix are warnings: an
	// unpinned image stays keyed by its tag, and the image policies judge
	// it. Nil leaves images as written.
	Resolve func(ctx context.Context, refs []string) (map[string]string, diag.Diagnostics)
	// StopAfter ends the pass list after the named pass (tests, `weir
	// validate`).
	StopAfter string
	// Trace, when set, is called after each pass with its duration.
	Trace func(pass string, d time.Duration)
}

// Result holds what the passes produced; fields are nil past a failure.
type Result struct {
	Load  *load.Result
	Graph *graph.Graph
	Plan  *schema.Plan
}

type pass struct {
	name string
	run  func(ctx context.Context, c *compilation) diag.Diagnostics
}

// Passes are the compiler's passes, in order. Policies come last: they
// read the plan's actions and its cost estimate.
var Passes = []pass{
	{"load", passLoad},
	{"resolve", passResolve},
	{"graph", passGraph},
	{"lower", passLower},
	{"diff", passDiff},
	{"estimate", passEstimate},
	{"policy", passPolicy},
}

type compilation struct {
	opts Options
	res  *Result
	// images are the resolve pass's pins: reference -> digest.
	images map[string]string
}

// Compile runs the passes and returns what they produced with every
// diagnostic. The plan is set only when no pass reported an error.
func Compile(ctx context.Context, opts Options) (*Result, diag.Diagnostics) {
	if opts.State == nil {
		opts.State = EmptyState{}
	}
	c := &compilation{opts: opts, res: &Result{}}
	var all diag.Diagnostics
	for _, p := range Passes {
		start := time.Now()
		ds := p.run(ctx, c)
		if opts.Trace != nil {
			opts.Trace(p.name, time.Since(start))
		}
		all = append(all, ds...)
		if ds.HasErrors() {
			c.res.Plan = nil
			return c.res, all
		}
		if err := ctx.Err(); err != nil {
			return c.res, append(all, diag.Errorf("cancelled", "", nil, "compilation cancelled"))
		}
		if p.name == opts.StopAfter {
			break
		}
	}
	return c.res, all
}

func passLoad(ctx context.Context, c *compilation) diag.Diagnostics {
	ld, ds := load.Load(ctx, c.opts.Dir, load.Options{CacheDir: c.opts.CacheDir, Inputs: c.opts.Inputs})
	c.res.Load = ld
	return ds
}

func passGraph(ctx context.Context, c *compilation) diag.Diagnostics {
	g, ds := graph.Build(c.res.Load.Project, c.res.Load.Sources, graph.Options{Dir: c.res.Load.Dir,
		AliasDigest: c.opts.State.AliasDigest, ImagePins: c.images})
	if ds.HasErrors() {
		return ds
	}
	c.res.Graph = g
	p := &schema.Plan{
		FormatVersion: schema.PlanFormatVersion,
		WeirVersion:   c.opts.WeirVersion,
		Project:       c.res.Load.Project.Project,
		Dir:           filepath.ToSlash(filepath.Clean(c.opts.Dir)),
		SpecHash:      c.res.Load.SpecHash,
		LockHash:      c.opts.LockHash,
		StateSerial:   c.opts.State.Serial(),
		Steps:         g.Steps,
		Changes:       g.Changes,
		Backends:      map[string]*schema.Backend{},
		Images:        c.images,
	}
	for _, s := range g.Steps {
		if s.Backend == "" {
			continue
		}
		if b := c.res.Load.Project.Backends[s.Backend]; b != nil {
			p.Backends[s.Backend] = b
		} else if s.Backend == "local" {
			p.Backends["local"] = &schema.Backend{Kind: "local"}
		}
	}
	ds = append(ds, selectTargets(p, c.opts.Targets, c.res.Load.Sources)...)
	c.res.Plan = p
	return ds
}

// passResolve pins every image the spec names.
func passResolve(ctx context.Context, c *compilation) diag.Diagnostics {
	if c.opts.Resolve == nil {
		return nil
	}
	refs := Images(c.res.Load.Project)
	if len(refs) == 0 {
		return nil
	}
	pins, ds := c.opts.Resolve(ctx, refs)
	c.images = pins
	return ds
}

// Images lists the image references a project's run sites name, sorted.
func Images(p *schema.Project) []string {
	set := map[string]bool{}
	add := func(r *schema.Run) {
		if r != nil && r.Image != "" {
			set[r.Image] = true
		}
	}
	if p.Defaults != nil && p.Defaults.Image != "" {
		set[p.Defaults.Image] = true
	}
	for _, f := range p.Features {
		add(f.Transform)
	}
	for _, t := range p.Training {
		add(&t.Run)
		if t.Evaluate != nil {
			add(&t.Evaluate.Run)
		}
	}
	for _, b := range p.Batch {
		add(&b.Run)
	}
	for _, t := range p.Tasks {
		add(&t.Run)
	}
	for _, s := range p.Serving {
		add(s.Server)
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func passPolicy(ctx context.Context, c *compilation) diag.Diagnostics {
	if c.opts.Policy == nil {
		return nil
	}
	findings, ds := c.opts.Policy(ctx, c.res.Load, c.res.Plan)
	c.res.Plan.Findings = findings
	return ds
}

func passLower(ctx context.Context, c *compilation) diag.Diagnostics {
	if c.opts.Lower == nil {
		return nil
	}
	// Each backend lowers its steps in one call; errors are reported in the
	// plan's order.
	var order []string
	byBackend := map[string][]*schema.Step{}
	for _, s := range c.res.Plan.Steps {
		if s.Run == nil {
			continue // builtin steps run in weir; deploys go through Deploy
		}
		if byBackend[s.Backend] == nil {
			order = append(order, s.Backend)
		}
		byBackend[s.Backend] = append(byBackend[s.Backend], s)
	}
	failed := map[*schema.Step]error{}
	var ds diag.Diagnostics
	for _, name := range order {
		steps := byBackend[name]
		tasks, errs, err := c.opts.Lower(ctx, name, c.res.Plan.Backends[name], steps)
		if err != nil {
			r := c.res.Load.Sources.Lookup("backends." + name + ".kind")
			if r == nil {
				r = steps[0].Source // a backend the spec does not declare
			}
			ds = append(ds, diag.Diagnostic{Severity: diag.Error, Code: "lower", Address: "backends." + name, Range: r,
				Summary: err.Error()})
			continue
		}
		for i, s := range steps {
			if errs[i] != nil {
				failed[s] = errs[i]
				continue
			}
			s.Task = tasks[i]
		}
	}
	for _, s := range c.res.Plan.Steps {
		if err := failed[s]; err != nil {
			ds = append(ds, diag.Diagnostic{Severity: diag.Error, Code: "lower", Address: s.Address, Range: s.Source,
				Summary: fmt.Sprintf("%s: %v", s.Address, err)})
		}
	}
	if c.opts.Check == nil || ds.HasErrors() {
		return ds
	}
	byAddr := map[string]*schema.Step{}
	for _, s := range c.res.Plan.Steps {
		if s.Run != nil {
			byAddr[s.Address] = s
		}
	}
	sort.Strings(order)
	for _, n := range order {
		for _, d := range c.opts.Check(ctx, n, c.res.Plan.Backends[n], byBackend[n]) {
			if s := byAddr[d.Address]; s != nil && d.Range == nil {
				d.Range = s.Source
			}
			ds = append(ds, d)
		}
	}
	return ds
}

// matches reports whether a step or change address falls under target: the
// address itself, its element, or anything below it.
func matches(addr, element, target string) bool {
	return addr == target || element == target ||
		strings.HasPrefix(addr, target+".") || strings.HasPrefix(addr, target+"[")
}

// selectTargets keeps the targeted steps and everything they need.
func selectTargets(p *schema.Plan, targets []string, sm schema.SourceMap) diag.Diagnostics {
	if len(targets) == 0 {
		return nil
	}
	sort.Strings(targets)
	p.Targets = targets
	byAddr := map[string]*schema.Step{}
	for _, s := range p.Steps {
		byAddr[s.Address] = s
	}
	keep := map[string]bool{}
	var mark func(a string)
	mark = func(a string) {
		if keep[a] {
			return
		}
		keep[a] = true
		for _, n := range byAddr[a].Needs {
			mark(n)
		}
	}
	var ds diag.Diagnostics
	var all []string
	for _, s := range p.Steps {
		all = append(all, s.Address)
	}
	for _, t := range targets {
		found := false
		for _, s := range p.Steps {
			if matches(s.Address, s.Element, t) {
				mark(s.Address)
				found = true
			}
		}
		for _, ch := range p.Changes {
			if matches(ch.Address, "", t) {
				found = true
			}
		}
		if !found {
			cands := append([]string{}, all...)
			for _, s := range p.Steps {
				cands = append(cands, s.Element)
			}
			ds = append(ds, diag.Errorf("bad-target", t, nil, "--target %s matches no step or resource%s", t, diag.DidYouMean(t, cands)))
		}
	}
	var steps []*schema.Step
	for _, s := range p.Steps {
		if keep[s.Address] {
			steps = append(steps, s)
		}
	}
	p.Steps = steps
	var changes []*schema.Change
	for _, ch := range p.Changes {
		ok := false
		for _, t := range targets {
			if matches(ch.Address, "", t) {
				ok = true
			}
		}
		if ok {
			changes = append(changes, ch)
		}
	}
	p.Changes = changes
	return ds
}

// passDiff decides each step's action against the state, with a reason.
func passDiff(ctx context.Context, c *compilation) diag.Diagnostics {
	p := c.res.Plan
	st := c.opts.State
	var ds diag.Diagnostics
	replace := c.opts.Replace
	sort.Strings(replace)
	p.Replace = replace
	for _, r := range replace {
		found := false
		for _, s := range p.Steps {
			if matches(s.Address, s.Element, r) {
				found = true
			}
		}
		if !found {
			ds = append(ds, diag.Errorf("bad-target", r, nil, "-replace %s matches no step in the plan", r))
		}
	}
	st.Prepare(p.Steps)
	runs := map[string]string{} // address -> why it runs, for downstream reasons
	for _, s := range p.Steps {
		s.Action, s.Reason = decide(s, st, replace, runs)
		s.Forced = s.Action == schema.ActionRun && (strings.HasPrefix(s.Reason, "replace requested") || strings.HasPrefix(s.Reason, "upstream "))
		if s.Action == schema.ActionRun {
			runs[s.Address] = s.Reason
		}
	}
	for _, ch := range p.Changes {
		ch.Action = schema.ActionCreate
		if ch.Type == "alias" {
			diffAlias(ch, st, c.res.Load.Project, runs)
		}
	}
	if c.opts.PlanRollout != nil {
		ds = append(ds, planRollouts(ctx, c, runs)...)
	}
	p.Tally()
	return ds
}

// planRollouts hands each serving element's deploy or canary steps to the
// RolloutPlanner with the model version they would serve when the plan
// knows it: the version the alias points at (else the newest that passed
// its gates), unless this apply registers the model again or moves the
// alias.
func planRollouts(ctx context.Context, c *compilation, runs map[string]string) diag.Diagnostics {
	p, st := c.res.Plan, c.opts.State
	var order []string
	byElem := map[string][]*schema.Step{}
	for _, s := range p.Steps {
		if s.Kind != "deploy" && s.Kind != "canary" || s.Action == schema.ActionRun {
			continue // -replace runs it again: nothing to compare
		}
		if byElem[s.Element] == nil {
			order = append(order, s.Element)
		}
		byElem[s.Element] = append(byElem[s.Element], s)
	}
	var ds diag.Diagnostics
	for _, el := range order {
		steps := byElem[el]
		var cfg schema.DeployConfig
		if err := json.Unmarshal(steps[0].Config, &cfg); err != nil {
			continue
		}
		model := strings.TrimPrefix(cfg.Model, "models.")
		version, why := 0, ""
		for _, s := range p.Steps {
			if _, ok := runs[s.Address]; ok && s.Kind == "register" && s.Element == cfg.Model {
				why = "this apply registers " + cfg.Model
			}
		}
		if why == "" && cfg.Alias != "" {
			for _, ch := range p.Changes {
				if ch.Type == "alias" && ch.Address == cfg.Model+".alias["+cfg.Alias+"]" && ch.Action.IsChange() {
					why = "this apply moves " + ch.Address
				}
			}
		}
		if why == "" {
			var ok bool
			if cfg.Alias != "" {
				if version, ok = st.Alias(model, cfg.Alias); !ok {
					version, why = 0, "no version of "+cfg.Model+" is at alias "+cfg.Alias+" yet"
				}
			} else if version, ok = st.LatestVersion(model, false); !ok {
				version, why = 0, "no version of "+cfg.Model+" passed its gates yet"
			}
		}
		be := steps[0].Backend
		plans, pds := c.opts.PlanRollout(ctx, be, p.Backends[be], steps, version, why)
		for _, d := range pds {
			if d.Address == "" {
				d.Address = steps[0].Address
			}
			if d.Range == nil {
				d.Range = steps[0].Source
			}
			ds = append(ds, d)
		}
		if len(plans) != len(steps) {
			continue
		}
		for i, s := range steps {
			s.Action, s.Reason, s.Diff = plans[i].Action, plans[i].Reason, plans[i].Diff
		}
	}
	return ds
}

// diffAlias compares an alias in the registry with the spec: a pinned
// version, or "latest" (the newest version that passed its gates and, when
// the model requires it, was approved).
func diffAlias(ch *schema.Change, st State, p *schema.Project, runs map[string]string) {
	model, alias := aliasOf(ch.Address)
	cur, has := st.Alias(model, alias)
	if has {
		ch.Before = fmt.Sprintf("v%d", cur)
	}
	registering := false
	for _, n := range ch.Needs {
		if _, ok := runs[n]; ok {
			registering = true
		}
	}
	want := ch.After
	if ch.After == "latest" {
		approved := false
		if m := p.Models[model]; m != nil && m.Approval != nil {
			approved = m.Approval.Required
		}
		v, ok := st.LatestVersion(model, approved)
		switch {
		case registering:
			ch.Reason = "moves to the version this apply registers, if it passes its gates"
			if approved {
				ch.Reason = "moves once the version this apply registers is approved"
			}
			ch.Action = schema.ActionUpdate
			if !has {
				ch.Action = schema.ActionCreate
			}
			return
		case !ok:
			ch.Action, ch.Reason = schema.ActionNoop, "no version is eligible yet"
			if approved {
				ch.Reason = "no approved version yet (weir models approve)"
			}
			return
		}
		want = fmt.Sprintf("v%d", v)
		ch.After = want + " (latest)"
	}
	switch {
	case !has:
		ch.Action = schema.ActionCreate
	case want == ch.Before:
		ch.Action = schema.ActionNoop
	default:
		ch.Action = schema.ActionUpdate
	}
}

// aliasOf splits "models.m.alias[prod]" into ("m", "prod").
func aliasOf(addr string) (string, string) {
	rest := strings.TrimPrefix(addr, "models.")
	model, alias, _ := strings.Cut(rest, ".alias[")
	return model, strings.TrimSuffix(alias, "]")
}

func decide(s *schema.Step, st State, replace []string, runs map[string]string) (schema.Action, string) {
	for _, r := range replace {
		if matches(s.Address, s.Element, r) {
			return schema.ActionRun, "replace requested (-replace " + r + ")"
		}
	}
	switch s.Kind {
	case "deploy", "canary":
		return schema.ActionCreate, fmt.Sprintf("deploy %s", trafficOf(s))
	case "monitor":
		return schema.ActionCreate, "start monitoring"
	}
	if s.NoCache {
		r := s.Reason
		if r == "" {
			r = "always runs"
		}
		return schema.ActionRun, r
	}
	for _, n := range s.Needs {
		if why, ok := runs[n]; ok && strings.HasPrefix(why, "replace requested") {
			return schema.ActionRun, "upstream " + n + " runs again"
		}
	}
	hit, why := st.Lookup(s.CacheKey)
	if hit {
		return schema.ActionCached, "result reused"
	}
	if why != "" {
		return schema.ActionRun, why
	}
	prev, ok := st.LastKeyParts(s.Address)
	if !ok {
		return schema.ActionRun, "never run"
	}
	return schema.ActionRun, changedParts(s, prev)
}

func trafficOf(s *schema.Step) string {
	var cfg schema.DeployConfig
	_ = json.Unmarshal(s.Config, &cfg)
	m := cfg.Model
	if cfg.Alias != "" {
		m += "@" + cfg.Alias
	}
	return fmt.Sprintf("%s at %d%% traffic", m, cfg.Weight)
}

// ExplainChange says which parts of a step's cache key differ from prev (the
// parts of an earlier key at the same address): "code ./train changed",
// "upstream X changed" ...
func ExplainChange(s *schema.Step, prev map[string]string) string { return changedParts(s, prev) }

// changedParts explains a cache miss by the key parts that differ from the
// last run at the same address.
func changedParts(s *schema.Step, prev map[string]string) string {
	var changed []string
	keys := make([]string, 0, len(s.KeyParts))
	for k := range s.KeyParts {
		keys = append(keys, k)
	}
	for k := range prev {
		if _, ok := s.KeyParts[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var inputs []string
	for _, k := range keys {
		if s.KeyParts[k] == prev[k] {
			continue
		}
		if strings.HasPrefix(k, "input:") && k != schema.AliasKeyPart {
			inputs = append(inputs, k)
			continue
		}
		switch {
		case k == "code" && s.Run != nil:
			changed = append(changed, "code "+filepath.ToSlash(s.Run.Code)+" changed")
		case k == schema.AliasKeyPart:
			model, alias, _ := schema.AliasInput(s)
			changed = append(changed, "alias "+alias+" of model "+model+" moved")
		default:
			changed = append(changed, k+" changed")
		}
	}
	if len(inputs) > 0 {
		from := map[string]string{}
		for _, in := range s.Inputs {
			from["input:"+in.Name] = in.Step
		}
		first := from[inputs[0]]
		switch len(inputs) {
		case 1:
			changed = append(changed, "upstream "+first+" changed")
		default:
			changed = append(changed, fmt.Sprintf("upstream %s and %d more changed", first, len(inputs)-1))
		}
	}
	if len(changed) == 0 {
		return "previous result is gone"
	}
	return strings.Join(changed, ", ")
}

// passEstimate adds up the CPU-hours, GPU-hours and cost of the steps that
// will run: each step's expected duration (from the spec, else the state's
// history) times its resources, priced by its backend.
func passEstimate(ctx context.Context, c *compilation) diag.Diagnostics {
	p := c.res.Plan
	p.Estimate = Estimate(p, c.opts.State, func(s *schema.Step) bool { return s.Action == schema.ActionRun })
	return nil
}

// Estimate prices the steps of a plan that include accepts.
func Estimate(p *schema.Plan, st State, include func(*schema.Step) bool) *schema.Estimate {
	e := &schema.Estimate{}
	for _, s := range p.Steps {
		if !include(s) || s.Run == nil {
			continue
		}
		var d time.Duration
		if s.Run.ExpectedDuration != "" {
			d, _ = time.ParseDuration(s.Run.ExpectedDuration)
		}
		if d == 0 && st != nil {
			d, _ = st.TypicalDuration(s.Address)
		}
		if d == 0 {
			e.UnknownSteps++
			continue
		}
		hours := d.Hours()
		cpu, gpu, mem := 1.0, 0.0, 0.0
		if r := s.Run.Resources; r != nil {
			if r.CPU > 0 {
				cpu = r.CPU
			}
			gpu = float64(r.GPU)
			mem = memoryGiB(r.Memory)
		}
		workers := 1.0
		if s.Run.Workers > 1 {
			workers = float64(s.Run.Workers)
		}
		e.CPUHours += cpu * hours * workers
		e.GPUHours += gpu * hours * workers
		if b := p.Backends[s.Backend]; b != nil && b.Prices != nil {
			e.Cost += (cpu*b.Prices.CPUHour + gpu*b.Prices.GPUHour + mem*b.Prices.MemoryGiBHour) * hours * workers
		}
	}
	e.CPUHours, e.GPUHours, e.Cost = round3(e.CPUHours), round3(e.GPUHours), round3(e.Cost)
	return e
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// memoryGiB parses a Kubernetes-style quantity into GiB.
func memoryGiB(q string) float64 {
	if q == "" {
		return 0
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(q, u.suffix) {
			q, mult = strings.TrimSuffix(q, u.suffix), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(q, 64)
	if err != nil {
		return 0
	}
	return f * mult / (1 << 30)
}
