package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"weir.dev/weir/internal/diag"
)

// PlanFormatVersion is the version of the plan file format. A reader refuses
// a plan whose major version differs.
const PlanFormatVersion = "1.0"

// Action is what apply will do with a step or a resource.
type Action string

const (
	ActionRun     Action = "run"     // ↻ the step executes
	ActionCached  Action = "cached"  // = a verified result exists; nothing runs
	ActionCreate  Action = "create"  // + a resource is created
	ActionUpdate  Action = "update"  // ~ a resource changes in place
	ActionDelete  Action = "delete"  // - a resource goes away
	ActionReplace Action = "replace" // -/+ a resource is destroyed and recreated
	ActionNoop    Action = "noop"    //   a resource is as the spec says
)

// Symbol is the one-column marker of an action in the printed plan.
func (a Action) Symbol() string {
	switch a {
	case ActionRun:
		return "↻"
	case ActionCached:
		return "="
	case ActionCreate:
		return "+"
	case ActionUpdate:
		return "~"
	case ActionDelete:
		return "-"
	case ActionReplace:
		return "-/+"
	}
	return " "
}

// IsChange reports whether the action changes anything (for
// -detailed-exitcode).
func (a Action) IsChange() bool { return a != ActionCached && a != ActionNoop && a != "" }

// Plan is the contract between `weir plan` and `weir apply`: everything apply
// needs, computed against one spec, lock and state serial. The same inputs
// give a byte-identical file.
type Plan struct {
	FormatVersion string `json:"format_version"`
	WeirVersion   string `json:"weir_version"`
	Project       string `json:"project"`
	// Dir is the project folder as given to weir plan; weir apply PLANFILE
	// applies the plan there.
	Dir string `json:"dir"`
	// SpecHash is the digest of the checked spec's IR: formatting and
	// comments do not change it.
	SpecHash string `json:"spec_hash"`
	// LockHash is the digest of weir.lock ("" when there is none).
	LockHash string `json:"lock_hash,omitempty"`
	// StateSerial is the state's serial the plan was computed against.
	StateSerial int64 `json:"state_serial"`
	// Backends are the backends the steps run on, by name, as configured.
	Backends map[string]*Backend `json:"backends,omitempty"`
	// Images are the spec's image references pinned to digests (from
	// weir.lock or the resolve pass); an image absent here is unpinned.
	Images map[string]string `json:"images,omitempty"`
	// Targets restrict the plan to these addresses and what they need.
	Targets []string `json:"targets,omitempty"`
	// Replace forces these addresses to run even if cached.
	Replace []string `json:"replace,omitempty"`
	// Steps in a deterministic topological order.
	Steps []*Step `json:"steps"`
	// Changes to long-lived resources: aliases, approvals, deployments,
	// schedules.
	Changes []*Change `json:"changes,omitempty"`
	// Findings are policy findings.
	Findings []Finding `json:"findings,omitempty"`
	// Estimate is the cost of what will run.
	Estimate *Estimate `json:"estimate,omitempty"`
	Summary  Summary   `json:"summary"`
	// Checksum is the sha256 of the file with this field empty; a reader
	// refuses a file whose checksum does not match.
	Checksum string `json:"checksum"`
}

// Step is the unit of execution.
type Step struct {
	// Address is stable across runs, e.g. "training.churn.trial[l2=0,lr=0.1]".
	Address string `json:"address"`
	// Kind: ingest, validate, profile, transform, materialize, train, trial,
	// select, evaluate, register, deploy, canary, monitor, score, task.
	Kind string `json:"kind"`
	// Element is the address of the spec element the step comes from.
	Element string `json:"element"`
	Backend string `json:"backend"`
	// Builtin steps are run by Weir itself; others run user code (Run).
	Builtin bool     `json:"builtin,omitempty"`
	Run     *StepRun `json:"run,omitempty"`
	// Params are the step's parameters, handed to it as WEIR_PARAMS.
	Params  map[string]any `json:"params,omitempty"`
	Inputs  []Input        `json:"inputs,omitempty"`
	Outputs []string       `json:"outputs,omitempty"`
	// Needs are the addresses of the steps this one runs after, sorted.
	Needs []string `json:"needs,omitempty"`
	// Config holds a builtin step's settings (see the *Config types).
	Config json.RawMessage `json:"config,omitempty"`
	// CacheKey is the sha256 of everything that can change the outputs.
	CacheKey string `json:"cache_key"`
	// KeyParts are the digests the key is made of, by component ("code",
	// "params", "command", "input:features" ...), so a plan can say what
	// changed since the last run.
	KeyParts map[string]string `json:"key_parts,omitempty"`
	// NoCache steps always run (deploys, approvals).
	NoCache bool `json:"no_cache,omitempty"`
	// Forced steps run even if a result exists (-replace, or downstream of
	// a replaced step).
	Forced bool   `json:"forced,omitempty"`
	Action Action `json:"action"`
	Reason string `json:"reason"`
	// Diff, for a deploy or canary step whose backend compared it with
	// what is live, lists what the rollout changes there: a line per
	// object ("~ apps/v1 Deployment ns/churn-v3"), indented lines per
	// changed field under it. Empty when nothing changes or nothing was
	// compared.
	Diff []string `json:"diff,omitempty"`
	// Task is the backend's lowering of the step, shown in the plan.
	Task   json.RawMessage `json:"task,omitempty"`
	Source *diag.Range     `json:"source,omitempty"`
}

// StepRun is the user code of a step, with defaults applied. Secrets appear
// as references only.
type StepRun struct {
	Image   string            `json:"image,omitempty"`
	Command []string          `json:"command"`
	Env     map[string]EnvVar `json:"env,omitempty"`
	// Code is the code folder relative to the project, CodeDigest its
	// content digest.
	Code             string     `json:"code,omitempty"`
	CodeDigest       string     `json:"code_digest,omitempty"`
	Resources        *Resources `json:"resources,omitempty"`
	Retries          int        `json:"retries,omitempty"`
	Timeout          string     `json:"timeout,omitempty"`
	ExpectedDuration string     `json:"expected_duration,omitempty"`
	Network          bool       `json:"network,omitempty"`
	// Workers > 1 is distributed training.
	Workers int `json:"workers,omitempty"`
}

// Input is one named input of a step: the Output of the Step at an address.
type Input struct {
	Name   string `json:"name"`
	Step   string `json:"step"`
	Output string `json:"output"`
}

// Change is a change to a long-lived resource.
type Change struct {
	Address string `json:"address"`
	// Type: "alias", "approval", "deployment", "schedule".
	Type   string `json:"type"`
	Action Action `json:"action"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Needs are steps that must finish first.
	Needs  []string    `json:"needs,omitempty"`
	Source *diag.Range `json:"source,omitempty"`
}

// Finding is a policy finding.
type Finding struct {
	Rule     string        `json:"rule"`
	Severity diag.Severity `json:"severity"`
	Message  string        `json:"message"`
	Address  string        `json:"address,omitempty"`
	Path     string        `json:"path,omitempty"`
	Source   *diag.Range   `json:"source,omitempty"`
	// Waived holds the waiver's reason when a waiver accepts the finding.
	Waived string `json:"waived,omitempty"`
}

// Estimate is the expected cost of the steps that will run.
type Estimate struct {
	CPUHours float64 `json:"cpu_hours"`
	GPUHours float64 `json:"gpu_hours"`
	Cost     float64 `json:"cost"`
	// UnknownSteps have neither an expectedDuration nor a history.
	UnknownSteps int `json:"unknown_steps,omitempty"`
}

// Summary counts steps and changes by action.
type Summary struct {
	Run     int `json:"run"`
	Cached  int `json:"cached"`
	Create  int `json:"create"`
	Update  int `json:"update"`
	Delete  int `json:"delete"`
	Replace int `json:"replace"`
}

// HasChanges reports whether applying the plan would do anything.
func (p *Plan) HasChanges() bool {
	s := p.Summary
	return s.Run+s.Create+s.Update+s.Delete+s.Replace > 0
}

// Tally recomputes Summary from Steps and Changes.
func (p *Plan) Tally() {
	var s Summary
	count := func(a Action) {
		switch a {
		case ActionRun:
			s.Run++
		case ActionCached:
			s.Cached++
		case ActionCreate:
			s.Create++
		case ActionUpdate:
			s.Update++
		case ActionDelete:
			s.Delete++
		case ActionReplace:
			s.Replace++
		}
	}
	for _, st := range p.Steps {
		count(st.Action)
	}
	for _, c := range p.Changes {
		count(c.Action)
	}
	p.Summary = s
}

// Step returns the step at addr, or nil.
func (p *Plan) Step(addr string) *Step {
	for _, s := range p.Steps {
		if s.Address == addr {
			return s
		}
	}
	return nil
}

// Encode renders the plan file: indented JSON with its checksum set. The
// checksum is the last field, so the file is marshalled once with it empty,
// hashed, and the hash written into its place.
//
// Source positions are left out of the file: they say where the spec wrote
// something (weir.cue, weir.hcl or weir.jsonnet), not what apply must do, so
// the same project in any front end gives the same plan file.
func (p *Plan) Encode() ([]byte, error) {
	q := p.withoutSources()
	body, err := marshal(q)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	p.Checksum = "sha256:" + hex.EncodeToString(sum[:])
	const empty = `"checksum": ""`
	i := bytes.LastIndex(body, []byte(empty))
	if i < 0 {
		q.Checksum = p.Checksum
		return marshal(q) // cannot happen: Checksum is the last field
	}
	out := make([]byte, 0, len(body)+len(p.Checksum))
	out = append(out, body[:i]...)
	out = append(out, `"checksum": "`+p.Checksum+`"`...)
	return append(out, body[i+len(empty):]...), nil
}

// withoutSources is a shallow copy of p with every source position cleared
// and no checksum.
func (p *Plan) withoutSources() *Plan {
	q := *p
	q.Checksum = ""
	q.Steps = make([]*Step, len(p.Steps))
	for i, s := range p.Steps {
		c := *s
		c.Source = nil
		q.Steps[i] = &c
	}
	q.Changes = make([]*Change, len(p.Changes))
	for i, ch := range p.Changes {
		c := *ch
		c.Source = nil
		q.Changes[i] = &c
	}
	if p.Changes == nil {
		q.Changes = nil
	}
	q.Findings = make([]Finding, len(p.Findings))
	for i, f := range p.Findings {
		f.Source = nil
		q.Findings[i] = f
	}
	if p.Findings == nil {
		q.Findings = nil
	}
	return &q
}

func marshal(p *Plan) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodePlan reads a plan file, refusing another major format version and a
// checksum that does not match the content.
func DecodePlan(data []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("not a Weir plan file: %v", err)
	}
	if p.FormatVersion == "" {
		return nil, fmt.Errorf("not a Weir plan file: no format_version")
	}
	if major(p.FormatVersion) != major(PlanFormatVersion) {
		return nil, fmt.Errorf("plan file format %s is not supported by this weir (format %s); re-run weir plan", p.FormatVersion, PlanFormatVersion)
	}
	want := p.Checksum
	p.Checksum = ""
	b, err := marshal(&p)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	got := "sha256:" + hex.EncodeToString(sum[:])
	p.Checksum = want
	if got != want {
		return nil, fmt.Errorf("plan file checksum mismatch (file says %s, content is %s): the plan was modified after weir plan wrote it; re-run weir plan", short(want), short(got))
	}
	return &p, nil
}

func major(v string) string {
	for i, c := range v {
		if c == '.' {
			return v[:i]
		}
	}
	return v
}

func short(s string) string {
	if len(s) > 19 {
		return s[:19] + "…"
	}
	if s == "" {
		return "nothing"
	}
	return s
}

// CacheKey is the digest of a step's key parts: sha256 over their JSON with
// sorted keys. The compiler computes keys with it at plan time; the runtime
// recomputes a key with it when a part is only known at apply time (the
// version an alias points at), so both always agree.
func CacheKey(parts map[string]string) string {
	b, _ := json.Marshal(parts) // a map of strings always marshals, keys sorted
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// AliasKeyPart is the key part holding the digest of the model an alias
// points at, for steps that read a model through an alias.
const AliasKeyPart = "input:model@alias"

// AliasInput reports whether a step reads its "model" input through an alias
// of a model ("models.m@production"), and which model and alias.
func AliasInput(s *Step) (model, alias string, ok bool) {
	alias, _ = s.Params["model_alias"].(string)
	if alias == "" {
		return "", "", false
	}
	for _, in := range s.Inputs {
		if in.Name == "model" && strings.HasPrefix(in.Step, "models.") {
			return strings.TrimSuffix(strings.TrimPrefix(in.Step, "models."), ".register"), alias, true
		}
	}
	return "", "", false
}
