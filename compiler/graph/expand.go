package graph

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"weir.dev/weir/schema"
)

// addStep registers a step; duplicate addresses are an error.
func (b *builder) addStep(s *schema.Step, path string) *schema.Step {
	if _, dup := b.byAddr[s.Address]; dup {
		b.errorf("duplicate-address", path, "two steps have the address %s", s.Address)
		return s
	}
	if s.Source == nil {
		s.Source = b.sm.Lookup(path)
	}
	b.byAddr[s.Address] = s
	b.steps = append(b.steps, s)
	return s
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("graph: marshal %T: %v", v, err)) // IR types always marshal
	}
	return b
}

// inputsFrom wires the main outputs of the referenced elements as inputs:
// one reference gives input `single`, several give inputs named after the
// elements. It returns the inputs and the steps to wait for.
func (b *builder) inputsFrom(refs []ref, single string) ([]schema.Input, []string) {
	var ins []schema.Input
	var needs []string
	for _, r := range refs {
		t := b.elems[r.target]
		name := single
		if len(refs) > 1 {
			name = t.name
		}
		fs := b.byAddr[t.final]
		out := ""
		if fs != nil && len(fs.Outputs) > 0 {
			out = fs.Outputs[0]
		}
		if out != "" {
			ins = append(ins, schema.Input{Name: name, Step: t.final, Output: out})
		}
		needs = append(needs, t.final)
		needs = append(needs, t.gates...)
	}
	return ins, needs
}

// refsAt returns the element's references written at field paths with the
// given prefix.
func refsAt(e *element, prefix string) []ref {
	var out []ref
	for _, r := range e.refs {
		if r.path == prefix || strings.HasPrefix(r.path, prefix+"[") || strings.HasPrefix(r.path, prefix+".") {
			out = append(out, r)
		}
	}
	return out
}

func (b *builder) expand(e *element) {
	p := b.p
	switch e.section {
	case "datasets":
		b.expandDataset(e, p.Datasets[e.name])
	case "features":
		b.expandFeatures(e, p.Features[e.name])
	case "training":
		b.expandTraining(e, p.Training[e.name])
	case "models":
		b.expandModel(e, p.Models[e.name])
	case "serving":
		b.expandServing(e, p.Serving[e.name])
	case "monitoring":
		b.expandMonitoring(e, p.Monitoring[e.name])
	case "batch":
		b.expandBatch(e, p.Batch[e.name])
	case "tasks":
		b.expandTask(e, p.Tasks[e.name])
	}
}

func (b *builder) expandDataset(e *element, ds *schema.Dataset) {
	path := e.addr
	format := ds.Source.Format
	if format == "" {
		format = formatOf(ds.Source.URI)
	}
	ing := &schema.IngestConfig{Dataset: e.name, Source: ds.Source}
	noCache, reason := false, ""
	switch ds.Source.Kind {
	case "file":
		src := ds.Source.URI
		if !filepath.IsAbs(src) {
			src = filepath.Join(b.opts.Dir, src)
		}
		d, err := b.opts.Digests.File(src)
		if err != nil {
			b.errorf("missing-source", path+".source.uri", "%s.source.uri: data file %s: %v", path, ds.Source.URI, errText(err))
		}
		ing.SourceDigest = d
	case "http", "s3":
		if ds.Source.SHA256 != "" {
			ing.SourceDigest = "sha256:" + ds.Source.SHA256
		} else {
			noCache, reason = true, "source "+ds.Source.URI+" has no sha256: fetched again on every apply"
		}
	case "sql":
		noCache, reason = true, "sql source: queried again on every apply"
	}
	in := b.addStep(&schema.Step{Address: e.addr + ".ingest", Kind: "ingest", Element: e.addr, Builtin: true,
		Outputs: []string{"data"}, Config: mustJSON(ing), NoCache: noCache, Reason: reason}, path+".source")
	e.final = in.Address
	dataIn := []schema.Input{{Name: "data", Step: in.Address, Output: "data"}}
	if len(ds.Schema) > 0 || ds.Checks != nil {
		v := b.addStep(&schema.Step{Address: e.addr + ".validate", Kind: "validate", Element: e.addr, Builtin: true,
			Inputs: dataIn, Needs: []string{in.Address}, Outputs: []string{"report"},
			Config: mustJSON(&schema.ValidateConfig{Dataset: e.name, Format: format, Rules: ds.Rules, Checks: ds.Checks})}, path+".schema")
		e.gates = append(e.gates, v.Address)
	}
	b.addStep(&schema.Step{Address: e.addr + ".profile", Kind: "profile", Element: e.addr, Builtin: true,
		Inputs: dataIn, Needs: []string{in.Address}, Outputs: []string{"profile"},
		Config: mustJSON(&schema.ProfileConfig{Dataset: e.name, Format: format, PII: ds.PII})}, path)
}

func formatOf(uri string) string {
	switch strings.ToLower(filepath.Ext(uri)) {
	case ".jsonl", ".ndjson":
		return "jsonl"
	case ".parquet":
		return "parquet"
	}
	return "csv"
}

func (b *builder) expandFeatures(e *element, f *schema.FeatureSet) {
	refs := refsAt(e, e.addr+".from")
	ins, needs := b.inputsFrom(refs, "data")
	if f.Transform != nil {
		s := b.runStep(e.addr+".transform", "transform", e, f.Transform, e.addr+".transform")
		s.Inputs, s.Needs, s.Outputs = ins, needs, []string{"features"}
		e.final = s.Address
		return
	}
	if len(refs) > 1 {
		b.errorf("needs-transform", e.addr+".from", "%s.from: joining %d sources needs a transform (user code that joins them)", e.addr, len(refs))
		return
	}
	var pii []string
	if ds, ok := b.p.Datasets[strings.TrimPrefix(refs[0].target, "datasets.")]; ok && strings.HasPrefix(refs[0].target, "datasets.") {
		pii = ds.PII
	}
	s := b.addStep(&schema.Step{Address: e.addr + ".materialize", Kind: "materialize", Element: e.addr, Builtin: true,
		Inputs: ins, Needs: needs, Outputs: []string{"features"},
		Config: mustJSON(&schema.MaterializeConfig{Columns: f.Columns, Exclude: pii})}, e.addr)
	e.final = s.Address
}

// runStep builds a step that runs user code, with defaults applied and the
// run's fields checked (backend, code folder).
func (b *builder) runStep(addr, kind string, e *element, r *schema.Run, path string) *schema.Step {
	d := b.p.Defaults
	if d == nil {
		d = &schema.Defaults{}
	}
	sr := &schema.StepRun{Image: r.Image, Command: r.Command, Env: r.Env, Code: r.Code, Resources: r.Resources,
		Timeout: r.Timeout, ExpectedDuration: r.ExpectedDuration, Network: r.Network}
	if sr.Image == "" {
		sr.Image = d.Image
	}
	if sr.Resources == nil {
		sr.Resources = d.Resources
	}
	if sr.Timeout == "" {
		sr.Timeout = d.Timeout
	}
	switch {
	case r.Retries != nil:
		sr.Retries = *r.Retries
	case d.Retries != nil:
		sr.Retries = *d.Retries
	}
	backend := r.Backend
	bpath := path + ".backend"
	if backend == "" {
		backend, bpath = d.Backend, "defaults.backend"
	}
	if backend == "" {
		backend = "local"
	}
	if _, ok := b.p.Backends[backend]; !ok && backend != "local" {
		b.errorf("unknown-backend", bpath, "%s: backend %q is not defined in backends%s", bpath, backend, didYouMean(backend, append(sortedKeys(b.p.Backends), "local")))
	}
	if len(sr.Command) == 0 {
		b.errorf("required", path, "%s: missing required field \"command\"", path)
	}
	if r.Code != "" {
		sr.Code = relPath(r.Code)
		b.checkCode(path+".code", r.Code)
	}
	return b.addStep(&schema.Step{Address: addr, Kind: kind, Element: e.addr, Backend: backend, Run: sr}, path)
}

// checkCode reports a code folder that does not exist, is not a folder, or
// lies outside the project.
func (b *builder) checkCode(path, code string) {
	if filepath.IsAbs(code) {
		b.errorf("bad-code", path, "%s: code folder %s is an absolute path: give a folder inside the project", path, code)
		return
	}
	clean := filepath.Clean(code)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		b.errorf("bad-code", path, "%s: code folder %s lies outside the project folder", path, code)
		return
	}
	isDir, err := b.opts.Digests.stat(filepath.Join(b.opts.Dir, clean))
	switch {
	case err != nil:
		b.errorf("missing-code", path, "%s: code folder %s does not exist", path, code)
	case !isDir:
		b.errorf("missing-code", path, "%s: code %s is a file, not a folder", path, code)
	}
}

func (b *builder) expandTraining(e *element, t *schema.Training) {
	path := e.addr
	ins, needs := b.inputsFrom(refsAt(e, path+".features"), "features")
	outputs := t.Outputs
	if len(outputs) == 0 {
		outputs = []string{"model"}
	}
	workers := 0
	if t.Distributed != nil {
		workers = t.Distributed.Workers
	}
	mk := func(addr, kind string, params map[string]any) *schema.Step {
		s := b.runStep(addr, kind, e, &t.Run, path)
		s.Inputs, s.Needs, s.Outputs, s.Params = ins, needs, outputs, params
		s.Run.Workers = workers
		return s
	}
	final := ""
	if t.Search == nil {
		final = mk(path+".train", "train", t.Params).Address
	} else {
		trials := b.trials(path+".search", t.Search)
		var addrs []string
		for _, tr := range trials {
			params := map[string]any{}
			for k, v := range t.Params {
				params[k] = v
			}
			for k, v := range tr.values {
				params[k] = v
			}
			s := mk(path+".trial["+tr.key+"]", "trial", params)
			addrs = append(addrs, s.Address)
		}
		if len(addrs) == 0 {
			return
		}
		var selIns []schema.Input
		for i, a := range addrs {
			for _, o := range outputs {
				selIns = append(selIns, schema.Input{Name: fmt.Sprintf("trial%d_%s", i, o), Step: a, Output: o})
			}
		}
		sel := b.addStep(&schema.Step{Address: path + ".select", Kind: "select", Element: e.addr, Builtin: true,
			Inputs: selIns, Needs: addrs, Outputs: outputs,
			Config: mustJSON(&schema.SelectConfig{Objective: t.Search.Objective, Trials: addrs})}, path+".search.objective")
		final = sel.Address
	}
	e.final = final
	if t.Evaluate != nil {
		dataRefs := refsAt(e, path+".evaluate.data")
		var dataIn []schema.Input
		var dataNeeds []string
		if len(dataRefs) > 0 {
			dataIn, dataNeeds = b.inputsFrom(dataRefs, "data")
		} else {
			dataIn, dataNeeds = b.inputsFrom(refsAt(e, path+".features"), "data")
		}
		ev := b.runStep(path+".evaluate", "evaluate", e, &t.Evaluate.Run, path+".evaluate")
		ev.Inputs = append([]schema.Input{{Name: "model", Step: final, Output: outputs[0]}}, dataIn...)
		ev.Needs = append([]string{final}, dataNeeds...)
		e.gates = append(e.gates, ev.Address)
	}
}

// trial is one point of a search, with its address key.
type trial struct {
	key    string
	values map[string]any
}

// trials expands a search: every combination for grid (capped by budget),
// budget seeded samples for random.
func (b *builder) trials(path string, s *schema.Search) []trial {
	names := sortedKeys(s.Params)
	for _, n := range names {
		sp := s.Params[n]
		if sp.Range != nil {
			if s.Method == "grid" {
				b.errorf("bad-search", path+".params."+n, "%s.params.%s: a grid needs a list of values, not a range", path, n)
			}
			if sp.Range.Min > sp.Range.Max || (sp.Range.Log && sp.Range.Min <= 0) {
				b.errorf("bad-search", path+".params."+n, "%s.params.%s: bad range [%v, %v]", path, n, sp.Range.Min, sp.Range.Max)
			}
		} else if len(sp.Values) == 0 {
			b.errorf("bad-search", path+".params."+n, "%s.params.%s: empty list: a search parameter needs at least one value", path, n)
		}
	}
	if len(names) == 0 {
		b.errorf("bad-search", path+".params", "%s.params: a search needs at least one parameter", path)
	}
	if b.diags.HasErrors() {
		return nil
	}
	var out []trial
	switch s.Method {
	case "grid":
		idx := make([]int, len(names))
		for {
			vals := map[string]any{}
			var kv []string
			for i, n := range names {
				v := s.Params[n].Values[idx[i]]
				vals[n] = v
				kv = append(kv, n+"="+formatValue(v))
			}
			out = append(out, trial{key: strings.Join(kv, ","), values: vals})
			if s.Budget > 0 && len(out) >= s.Budget {
				break
			}
			i := len(names) - 1
			for i >= 0 {
				idx[i]++
				if idx[i] < len(s.Params[names[i]].Values) {
					break
				}
				idx[i] = 0
				i--
			}
			if i < 0 {
				break
			}
		}
	case "random":
		if s.Budget == 0 {
			b.errorf("bad-search", path+".budget", "%s: random search needs a budget (the number of trials)", path)
			return nil
		}
		rng := rand.New(rand.NewPCG(uint64(s.Seed), 0x5eed_1ab5))
		for i := 0; i < s.Budget; i++ {
			vals := map[string]any{}
			for _, n := range names {
				sp := s.Params[n]
				if sp.Range == nil {
					vals[n] = sp.Values[rng.IntN(len(sp.Values))]
					continue
				}
				r := sp.Range
				var x float64
				if r.Log {
					x = math.Exp(math.Log(r.Min) + rng.Float64()*(math.Log(r.Max)-math.Log(r.Min)))
				} else {
					x = r.Min + rng.Float64()*(r.Max-r.Min)
				}
				if r.Int {
					vals[n] = math.Round(x)
				} else {
					vals[n] = roundSig(x, 6)
				}
			}
			out = append(out, trial{key: strconv.Itoa(i), values: vals})
		}
	}
	return out
}

// roundSig keeps n significant digits so addresses and plans stay readable.
func roundSig(x float64, n int) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', n, 64), 64)
	return f
}

// formatValue renders a parameter value in an address.
func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (b *builder) expandModel(e *element, m *schema.Model) {
	tr := b.elems[e.refs[0].target]
	t := b.p.Training[tr.name]
	fs := b.byAddr[tr.final]
	var ins []schema.Input
	if fs != nil {
		for _, o := range fs.Outputs {
			ins = append(ins, schema.Input{Name: o, Step: fs.Address, Output: o})
		}
	}
	needs := append([]string{tr.final}, tr.gates...)
	var obj *schema.Objective
	if t.Search != nil {
		obj = &t.Search.Objective
	}
	cfg := &schema.RegisterConfig{Model: e.name, Gates: m.GateRules, Approval: m.Approval, Training: tr.addr,
		Datasets: b.upstreamDatasets(tr), Objective: obj}
	for _, g := range tr.gates {
		if strings.HasSuffix(g, ".evaluate") {
			cfg.Evaluation = g
		}
	}
	s := b.addStep(&schema.Step{Address: e.addr + ".register", Kind: "register", Element: e.addr, Builtin: true,
		Inputs: ins, Needs: needs, Outputs: []string{"model"}, Config: mustJSON(cfg)}, e.addr)
	e.final = s.Address
	for _, alias := range sortedKeys(m.Aliases) {
		a := m.Aliases[alias]
		after := "latest"
		if !a.Latest {
			after = "v" + strconv.Itoa(a.Version)
		}
		b.changes = append(b.changes, &schema.Change{Address: e.addr + ".alias[" + alias + "]", Type: "alias",
			After: after, Needs: []string{s.Address}, Source: b.sm.Lookup(e.addr + ".aliases." + alias)})
	}
}

// upstreamDatasets lists the datasets an element depends on, transitively.
func (b *builder) upstreamDatasets(e *element) []string {
	seen := map[string]bool{}
	var walk func(e *element)
	walk = func(e *element) {
		for _, r := range e.refs {
			if seen[r.target] {
				continue
			}
			seen[r.target] = true
			walk(b.elems[r.target])
		}
	}
	walk(e)
	var out []string
	for a := range seen {
		if strings.HasPrefix(a, "datasets.") {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func (b *builder) expandServing(e *element, s *schema.Serving) {
	r := e.refs[0]
	model := b.elems[r.target]
	prev := []string{model.final}
	stages := []int{100}
	if s.Canary != nil {
		stages = s.Canary.Steps
		for i, w := range stages {
			if i > 0 && w <= stages[i-1] {
				b.errorf("bad-canary", e.addr+".canary.steps", "%s.canary.steps: traffic steps must increase (%d after %d)", e.addr, w, stages[i-1])
				return
			}
		}
		if len(stages) == 0 || stages[len(stages)-1] != 100 {
			b.errorf("bad-canary", e.addr+".canary.steps", "%s.canary.steps: the last traffic step must be 100", e.addr)
			return
		}
	}
	backend := s.Backend
	if backend == "" {
		backend = "local"
		if b.p.Defaults != nil && b.p.Defaults.Backend != "" {
			backend = b.p.Defaults.Backend
		}
	}
	if _, ok := b.p.Backends[backend]; !ok && backend != "local" {
		b.errorf("unknown-backend", e.addr+".backend", "%s.backend: backend %q is not defined in backends%s", e.addr, backend, didYouMean(backend, append(sortedKeys(b.p.Backends), "local")))
	}
	for _, w := range stages {
		addr := e.addr + ".deploy"
		kind := "deploy"
		if s.Canary != nil {
			addr, kind = fmt.Sprintf("%s.canary[%d]", e.addr, w), "canary"
		}
		st := b.addStep(&schema.Step{Address: addr, Kind: kind, Element: e.addr, Backend: backend, NoCache: true,
			Needs: prev, Config: mustJSON(&schema.DeployConfig{Serving: e.name, Model: r.target, Alias: r.alias, Weight: w, Spec: s})}, e.addr)
		prev = []string{st.Address}
	}
	e.final = prev[0]
}

func (b *builder) expandMonitoring(e *element, m *schema.Monitoring) {
	var needs []string
	serving := ""
	for _, r := range e.refs {
		t := b.elems[r.target]
		needs = append(needs, t.final)
		if t.section == "serving" {
			serving = t.addr
		}
	}
	s := b.addStep(&schema.Step{Address: e.addr + ".monitor", Kind: "monitor", Element: e.addr, Builtin: true, NoCache: true,
		Needs: needs, Config: mustJSON(&schema.MonitorConfig{Monitoring: e.name, Serving: serving, Spec: m})}, e.addr)
	e.final = s.Address
	schedule := m.Schedule
	if schedule == "" {
		schedule = "@hourly"
	}
	b.changes = append(b.changes, &schema.Change{Address: e.addr + ".schedule", Type: "schedule", After: schedule,
		Needs: []string{s.Address}, Source: b.sm.Lookup(e.addr)})
}

func (b *builder) expandBatch(e *element, bt *schema.Batch) {
	modelRef, inputRef := e.refs[0], e.refs[1]
	model := b.elems[modelRef.target]
	s := b.runStep(e.addr+".score", "score", e, &bt.Run, e.addr)
	ins, needs := b.inputsFrom([]ref{inputRef}, "data")
	s.Inputs = append([]schema.Input{{Name: "model", Step: model.final, Output: "model"}}, ins...)
	s.Needs = append([]string{model.final}, needs...)
	s.Outputs = []string{"scores"}
	if modelRef.alias != "" {
		s.Params = map[string]any{"model_alias": modelRef.alias}
	}
	e.final = s.Address
	if bt.Schedule != "" {
		b.changes = append(b.changes, &schema.Change{Address: e.addr + ".schedule", Type: "schedule", After: bt.Schedule,
			Needs: []string{s.Address}, Source: b.sm.Lookup(e.addr + ".schedule")})
	}
}

func (b *builder) expandTask(e *element, t *schema.Task) {
	s := b.runStep(e.addr, "task", e, &t.Run, e.addr)
	s.Outputs = t.Outputs
	e.final = s.Address
	taken := map[string]bool{}
	for _, r := range e.refs {
		up := b.elems[r.target]
		s.Needs = append(s.Needs, up.final)
		s.Needs = append(s.Needs, up.gates...)
		fs := b.byAddr[up.final]
		if fs == nil {
			continue
		}
		for _, o := range fs.Outputs {
			name := o
			if taken[name] {
				name = up.name + "_" + o
			}
			taken[name] = true
			s.Inputs = append(s.Inputs, schema.Input{Name: name, Step: fs.Address, Output: o})
		}
	}
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
