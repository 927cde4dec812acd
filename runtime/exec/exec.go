// Package exec runs a plan: the steps' DAG with bounded parallelism (in all,
// per backend, and GPU slots), retries with exponential backoff, per-step
// timeouts, cancellation, and a state that stays consistent whenever the
// process stops. It talks to backends only through backend.Interface, keeps
// results in the artifact store and the state, and never imports the
// compiler, CUE or OPA. It never prints: progress goes out as Events.
package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// Options configure Apply.
type Options struct {
	// ProjectDir is the project folder (code folders are relative to it).
	ProjectDir string
	// WorkRoot holds the runs' work folders (.weir/runs).
	WorkRoot string
	State    *state.DB
	Store    *artifact.Store
	// Backends by the name the spec gives them ("local", "gpu").
	Backends map[string]backend.Interface
	// Limits caps running steps per backend name (0: no cap).
	Limits map[string]int
	// GPUs is the number of GPU slots per backend name.
	GPUs map[string]int
	// Parallelism caps running steps in all (default: number of cores).
	Parallelism int
	// KeepGoing launches independent steps after a failure.
	KeepGoing bool
	// Grace is how long a cancelled step gets before it is killed.
	Grace time.Duration
	// RetryBase is the first retry's delay; each retry doubles it.
	RetryBase time.Duration
	// Builtins run the steps Weir implements itself, by kind.
	Builtins map[string]BuiltinFunc
	// Changes applies resource changes (aliases) once their needs are done;
	// it returns what it did, or "" with deferred reason.
	Changes func(ctx context.Context, c *schema.Change, run *Run) (done string, err error)
	// Deferred reports steps this weir plans but cannot apply yet (serving on
	// a backend without services), with the reason.
	Deferred func(s *schema.Step) (reason string, deferred bool)
	// Secret resolves a secret reference ("env:NAME", "file:PATH").
	Secret func(ref string) (string, error)
	// BaseEnv is the environment every step starts from (PATH, LANG ...).
	BaseEnv map[string]string
	// Events receives progress; it is called from several goroutines.
	Events func(Event)
	// RunID names the run; User and Command are recorded with it.
	RunID   string
	User    string
	Command string
	// AliasDigest resolves a model alias to its artifact digest (apply time).
	AliasDigest func(ctx context.Context, model, alias string) (string, bool)
}

// EventType says what an Event reports.
type EventType string

const (
	EventStart    EventType = "start"
	EventLog      EventType = "log"
	EventRetry    EventType = "retry"
	EventDone     EventType = "done"
	EventCached   EventType = "cached"
	EventSkipped  EventType = "skipped"
	EventDeferred EventType = "deferred"
	EventChange   EventType = "change"
)

// Event is one thing that happened during a run.
type Event struct {
	Time    time.Time     `json:"time"`
	Type    EventType     `json:"type"`
	Step    string        `json:"step"`
	Status  state.Status  `json:"status,omitempty"`
	Attempt int           `json:"attempt,omitempty"`
	Message string        `json:"message,omitempty"`
	Line    string        `json:"line,omitempty"`
	Elapsed time.Duration `json:"elapsed,omitempty"`
}

// StepReport is how one step ended.
type StepReport struct {
	Address  string
	Status   state.Status
	Message  string
	ExecID   int64
	Attempts int
	Duration time.Duration
	Outputs  []state.Output
	// LogPath is the last attempt's log.
	LogPath string
	// Deferred steps are planned but not applied by this weir (Message
	// says why); they do not fail the run.
	Deferred bool
	// refused: the scheduler did not let the attempt start.
	refused bool
}

// Report is how a run ended.
type Report struct {
	RunID  string
	Status state.Status
	Steps  []*StepReport
	// Changes are what resource changes did or why they were deferred.
	Changes []string
	Counts  map[state.Status]int
}

// ErrCancelled is returned when the run was interrupted (Ctrl-C).
var ErrCancelled = errors.New("apply cancelled")

// ErrFailed is returned when a step failed.
var ErrFailed = errors.New("apply failed")

// Run is the state of one apply, shared with builtins and change hooks.
type Run struct {
	ID    string
	opts  *Options
	plan  *schema.Plan
	mu    sync.Mutex
	steps map[string]*node
	// changed records the resource changes handled; changeLog what they did.
	changed   map[string]bool
	changeLog []string
	// wants and frees carry slot requests and releases to the scheduler.
	wants chan slotRequest
	frees chan slotRelease
	// active counts the launched steps that have not reported.
	active atomic.Int32
	// inflight holds the attempts under way not yet recorded as running.
	inflight inflight
	// spare holds empty work folders for the next steps (see recycle).
	spareMu sync.Mutex
	spare   []string
	// values are what builtins keep for later steps of the run.
	values sync.Map
	// runDir is made once, by the first step that needs its work folder.
	runDirOnce sync.Once
	runDirErr  error
}

type node struct {
	// blocked names an upstream step that did not succeed.
	blocked string
	// index is the step's place in the plan: ready steps launch, and
	// waiting steps get slots, in plan order.
	index   int
	step    *schema.Step
	key     string // effective cache key (recomputed at apply time)
	parts   map[string]string
	deps    []*node
	down    []*node
	pending int
	report  *StepReport
	done    bool
	// phase and grant belong to the scheduler (see sched.go).
	phase phase
	grant chan *notStarted
}

// Upstream returns the execution ID and outputs of a finished step of this
// run (run or reused); ok is false for a step that has not succeeded.
func (r *Run) Upstream(addr string) (execID int64, outs []state.Output, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.steps[addr]
	if n == nil || n.report == nil || (n.report.Status != state.StatusSucceeded && n.report.Status != state.StatusCached) {
		return 0, nil, false
	}
	return n.report.ExecID, n.report.Outputs, true
}

// Apply runs the plan. It returns the report and ErrFailed or ErrCancelled
// when the run did not succeed; other errors mean the run could not start or
// the state could not be written.
func Apply(ctx context.Context, p *schema.Plan, opts Options) (*Report, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = runtime.NumCPU()
	}
	if opts.Grace == 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.RetryBase == 0 {
		opts.RetryBase = time.Second
	}
	if opts.Events == nil {
		opts.Events = func(Event) {}
	}
	r := &Run{ID: opts.RunID, opts: &opts, plan: p, steps: map[string]*node{}, changed: map[string]bool{},
		wants: make(chan slotRequest), frees: make(chan slotRelease)}
	// The run's record must outlive a cancelled context: write it with a
	// context of its own.
	bg := context.WithoutCancel(ctx)
	if err := opts.State.BeginRun(bg, state.Run{ID: r.ID, Project: p.Project, SpecHash: p.SpecHash,
		PlanChecksum: p.Checksum, User: opts.User, Command: opts.Command, Started: time.Now()}); err != nil {
		return nil, fmt.Errorf("recording the run: %w", err)
	}
	var order []*node
	for i, s := range p.Steps {
		n := &node{step: s, key: s.CacheKey, index: i, grant: make(chan *notStarted, 1)}
		r.steps[s.Address] = n
		order = append(order, n)
	}
	for _, n := range order {
		for _, need := range n.step.Needs {
			if d := r.steps[need]; d != nil {
				n.deps = append(n.deps, d)
				d.down = append(d.down, n)
			}
		}
		n.pending = len(n.deps)
	}
	rep := &Report{RunID: r.ID, Counts: map[state.Status]int{}}
	r.applyReadyChanges(ctx) // changes that need nothing
	stopWatch := r.watchRunning()
	err := r.schedule(ctx, order)
	stopWatch()
	r.removeSpares()
	for _, n := range order {
		rep.Steps = append(rep.Steps, n.report)
		rep.Counts[n.report.Status]++
	}
	rep.Changes = r.finishChanges()
	status := state.StatusSucceeded
	switch {
	case errors.Is(err, ErrCancelled):
		status = state.StatusCancelled
	case err != nil:
		status = state.StatusFailed
	}
	rep.Status = status
	if ferr := opts.State.FinishRun(bg, r.ID, status, time.Now()); ferr != nil && err == nil {
		err = fmt.Errorf("recording the end of the run: %w", ferr)
	}
	return rep, err
}

func (r *Run) event(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	r.opts.Events(e)
}

// applyReadyChanges applies the resource changes whose needs have all
// finished well, once each.
func (r *Run) applyReadyChanges(ctx context.Context) {
	for _, c := range r.plan.Changes {
		if r.changed[c.Address] || (c.Action == schema.ActionNoop && c.Type != "alias") {
			continue
		}
		ready := true
		for _, n := range c.Needs {
			if !r.finishedWell(n) {
				ready = false
			}
		}
		if !ready {
			continue
		}
		r.changed[c.Address] = true
		if r.opts.Changes == nil {
			continue
		}
		msg, err := r.opts.Changes(context.WithoutCancel(ctx), c, r)
		if err != nil {
			msg = c.Address + ": " + err.Error()
		}
		if msg != "" {
			r.changeLog = append(r.changeLog, msg)
			r.event(Event{Type: EventChange, Step: c.Address, Message: msg})
		}
	}
}

// finishedWell reports whether a step succeeded, was reused, or is deferred.
func (r *Run) finishedWell(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.steps[addr]
	if n == nil || n.report == nil || !n.done {
		return false
	}
	return n.report.Status == state.StatusSucceeded || n.report.Status == state.StatusCached || n.report.Deferred
}

// finishChanges reports the changes that could not be applied.
func (r *Run) finishChanges() []string {
	for _, c := range r.plan.Changes {
		if r.changed[c.Address] || (c.Action == schema.ActionNoop && c.Type != "alias") {
			continue
		}
		msg := c.Address + ": not applied: a step it needs did not succeed"
		r.changeLog = append(r.changeLog, msg)
		r.event(Event{Type: EventChange, Step: c.Address, Message: msg})
	}
	return r.changeLog
}

// workDir is the folder of one step in one run.
func (r *Run) workDir(addr string) string {
	return r.opts.WorkRoot + "/" + r.ID + "/" + safeName(addr)
}

// safeName turns an address into a folder name.
func safeName(addr string) string {
	var b strings.Builder
	for _, c := range addr {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			b.WriteRune(c)
		case c == '=' || c == ',':
			b.WriteRune('-')
		default:
			b.WriteRune('_')
		}
	}
	return b.String()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// StatusSkipped marks a step that did not start (an upstream step failed,
// the run was cancelled, or the step is deferred). Skipped steps have no
// execution in the state.
const StatusSkipped state.Status = "skipped"

// Plan returns the plan being applied.
func (r *Run) Plan() *schema.Plan { return r.plan }

// Step returns the plan's step at addr, or nil.
func (r *Run) Step(addr string) *schema.Step {
	if n := r.steps[addr]; n != nil {
		return n.step
	}
	return nil
}

// User is who runs the apply.
func (r *Run) User() string { return r.opts.User }

// ProjectDir is the project folder.
func (r *Run) ProjectDir() string { return r.opts.ProjectDir }

// State is the state the run records into.
func (r *Run) State() *state.DB { return r.opts.State }

// Backend returns the backend the spec names name, or nil.
func (r *Run) Backend(name string) backend.Interface { return r.opts.Backends[name] }

// Secret resolves a secret reference ("env:NAME", "file:PATH").
func (r *Run) Secret(ref string) (string, error) {
	if r.opts.Secret == nil {
		return "", fmt.Errorf("no way to resolve secret %s", ref)
	}
	return r.opts.Secret(ref)
}

// BaseEnv is the environment every step starts from; callers must not
// change it.
func (r *Run) BaseEnv() map[string]string { return r.opts.BaseEnv }

// Value returns what a builtin kept for later steps of this run under key.
func (r *Run) Value(key any) (any, bool) { return r.values.Load(key) }

// SetValue keeps v for later steps of this run under key.
func (r *Run) SetValue(key, v any) { r.values.Store(key, v) }
