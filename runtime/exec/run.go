package exec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// BuiltinFunc runs a step Weir implements itself.
type BuiltinFunc func(ctx context.Context, c *Call) (*BuiltinResult, error)

// Call is what a builtin step gets.
type Call struct {
	Step *schema.Step
	Run  *Run
	// Inputs are materialized input paths by name; InputOutputs the
	// artifacts they came from.
	Inputs       map[string]string
	InputOutputs map[string]state.Output
	// OutDir is where outputs are written, one file or folder per name.
	OutDir     string
	ProjectDir string
	State      *state.DB
	Store      *artifact.Store
	// ExecID is this execution's ID in the state.
	ExecID int64
	// Log receives lines for the step's log file.
	Log io.Writer
}

// BuiltinResult is what a builtin step produced besides files in OutDir.
type BuiltinResult struct {
	Metrics []state.Metric
	// Outputs are outputs passed through by digest (select hands on the best
	// trial's model as is); they take precedence over files in OutDir.
	Outputs map[string]state.Output
	// Message is a one-line summary for the progress view.
	Message string
}

// StepError is a failure of the step itself (as opposed to Weir's), with
// the log tail that explains it.
type StepError struct {
	Message string
	LogTail []string
	// ExitCode is the program's exit code when it exited on its own.
	ExitCode int
}

func (e *StepError) Error() string { return e.Message }

func (r *Run) runNode(ctx context.Context, n *node) *StepReport {
	s := n.step
	if r.opts.Deferred != nil {
		if why, ok := r.opts.Deferred(s); ok {
			r.event(Event{Type: EventDeferred, Step: s.Address, Message: why})
			return &StepReport{Address: s.Address, Status: StatusSkipped, Deferred: true, Message: "deferred: " + why}
		}
	}
	key, parts := r.effectiveKey(ctx, n)
	n.key, n.parts = key, parts
	if !s.NoCache && !s.Forced && (s.Action == schema.ActionCached || key != s.CacheKey) {
		if rep := r.reuse(ctx, n, key); rep != nil {
			return rep
		}
	}
	return r.execute(ctx, n, key)
}

// effectiveKey recomputes the step's key when an input is only known at
// apply time: an upstream step whose key changed during this run, or a model
// alias that moved.
func (r *Run) effectiveKey(ctx context.Context, n *node) (string, map[string]string) {
	s := n.step
	if len(s.KeyParts) == 0 {
		return s.CacheKey, nil
	}
	parts := make(map[string]string, len(s.KeyParts))
	for k, v := range s.KeyParts {
		parts[k] = v
	}
	changed := false
	r.mu.Lock()
	for _, in := range s.Inputs {
		k := "input:" + in.Name
		if _, ok := parts[k]; !ok {
			continue
		}
		if up := r.steps[in.Step]; up != nil && up.key != "" {
			v := up.key + "/" + in.Output
			if v != parts[k] {
				parts[k], changed = v, true
			}
		}
	}
	r.mu.Unlock()
	if model, alias, ok := schema.AliasInput(s); ok && r.opts.AliasDigest != nil {
		d, found := r.opts.AliasDigest(ctx, model, alias)
		if !found {
			d = "none"
		}
		if d != parts[schema.AliasKeyPart] {
			parts[schema.AliasKeyPart], changed = d, true
		}
	}
	if !changed {
		return s.CacheKey, s.KeyParts
	}
	return schema.CacheKey(parts), parts
}

// reuse records a reused result when one exists with its artifacts intact.
func (r *Run) reuse(ctx context.Context, n *node, key string) *StepReport {
	db := r.opts.State
	e, ok, err := db.LookupCache(ctx, key)
	if err != nil || !ok {
		return nil
	}
	for _, o := range e.Outputs {
		if err := r.opts.Store.Check(o.Digest, o.Size); err != nil {
			return nil // the result's artifact is gone: run again
		}
	}
	id, err := db.ReuseExecution(context.WithoutCancel(ctx), e.ID, state.Execution{RunID: r.ID, Address: n.step.Address, Kind: n.step.Kind,
		CacheKey: key, Backend: n.step.Backend, Attempt: 1, Started: time.Now()}, n.parts)
	if err != nil {
		return &StepReport{Address: n.step.Address, Status: state.StatusFailed, Message: "recording in the state: " + err.Error()}
	}
	msg := "reused from run " + e.RunID
	if e.Address != n.step.Address {
		msg += " (" + e.Address + ")"
	}
	r.event(Event{Type: EventCached, Step: n.step.Address, Status: state.StatusCached, Message: msg})
	return &StepReport{Address: n.step.Address, Status: state.StatusCached, Message: msg, ExecID: id, Outputs: e.Outputs, Attempts: 0}
}

// execute runs the step, retrying failures with exponential backoff.
func (r *Run) execute(ctx context.Context, n *node, key string) *StepReport {
	retries := 0
	if n.step.Run != nil {
		retries = n.step.Run.Retries
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		rep := r.attempt(ctx, n, key, attempt)
		rep.Attempts = attempt
		rep.Duration = time.Since(start)
		if rep.Status != state.StatusFailed || attempt > retries || ctx.Err() != nil || rep.refused {
			return rep
		}
		delay := r.opts.RetryBase << (attempt - 1)
		if delay > time.Minute {
			delay = time.Minute
		}
		r.event(Event{Type: EventRetry, Step: n.step.Address, Attempt: attempt + 1,
			Message: fmt.Sprintf("attempt %d failed (%s); retrying in %v", attempt, rep.Message, delay)})
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return &StepReport{Address: n.step.Address, Status: state.StatusCancelled, Message: "cancelled while waiting to retry"}
		}
	}
}

// attempt runs the step once and records the execution.
func (r *Run) attempt(ctx context.Context, n *node, key string, attempt int) *StepReport {
	s := n.step
	bg := context.WithoutCancel(ctx) // state writes finish even when cancelled
	work := r.workDir(s.Address)
	if attempt > 1 {
		work += "-" + strconv.Itoa(attempt)
	}
	logPath := filepath.Join(work, "log.txt")
	rep := &StepReport{Address: s.Address, LogPath: logPath}
	rec := &record{r: r, n: n, key: key, attempt: attempt, logPath: logPath}
	outs, metrics, msg, err := r.perform(ctx, n, rec, work, logPath)
	var ns *notStarted
	if errors.As(err, &ns) {
		// Refused by the scheduler: the attempt never started and leaves
		// no execution, nor the folder it prepared.
		os.RemoveAll(work)
		rep.Status, rep.Message, rep.LogPath, rep.refused = ns.status, ns.msg, "", true
		if ns.status == StatusSkipped {
			r.event(Event{Type: EventSkipped, Step: s.Address, Message: ns.msg})
		} else {
			r.event(Event{Type: EventDone, Step: s.Address, Status: ns.status, Attempt: attempt, Message: ns.msg})
		}
		return rep
	}
	if !rec.begun {
		// It ended before its program could start (its inputs, its
		// program, its backend ...): the attempt is recorded all the same.
		rec.begin(bg, time.Now(), false)
	}
	res := state.ExecutionResult{Status: state.StatusSucceeded, Params: s.Params, Metrics: metrics}
	var se *StepError
	switch {
	case err == nil:
		res.Outputs = outs
		res.KeyParts = n.parts
		rep.Outputs = outs
		rep.Message = msg
	case ctx.Err() != nil && !errors.As(err, new(*timeoutError)):
		res.Status, res.Error = state.StatusCancelled, "cancelled"
		rep.Message = "cancelled"
	default:
		res.Status, res.Error = state.StatusFailed, err.Error()
		rep.Message = err.Error()
		if errors.As(err, &se) && len(se.LogTail) > 0 {
			rep.Message += "\n" + strings.Join(se.LogTail, "\n")
		}
		if se != nil {
			res.ExitCode = se.ExitCode
		}
	}
	rep.Status = res.Status
	id, ferr := rec.finish(bg, res)
	if ferr != nil {
		rep.Status, rep.Message = state.StatusFailed, "recording in the state: "+ferr.Error()
	}
	rep.ExecID = id
	r.event(Event{Type: EventDone, Step: s.Address, Status: rep.Status, Attempt: attempt, Message: rep.Message, Elapsed: time.Since(rec.started)})
	return rep
}

// record keeps one attempt in the state. A step that ends within
// runningAfter of its start is recorded once, when it ends, in one
// transaction; a longer one is recorded as running after runningAfter (so
// that weir state and a later apply see it), and its end is recorded then.
// A process killed meanwhile loses at most the steps in flight, never half
// a result. Builtins are recorded as running at once: they get their
// execution's ID.
type record struct {
	r       *Run
	n       *node
	key     string
	attempt int
	logPath string

	mu      sync.Mutex
	ctx     context.Context // what begin was given, for writeRunning
	started time.Time
	begun   bool
	ended   bool
	id      int64 // the execution's ID once it is in the state
	err     error // writing the running execution failed
}

// runningAfter is how long a step runs before it is recorded as running
// (a variable for tests).
var runningAfter = time.Second

// begin announces the attempt's start (at started); now records it as
// running at once.
func (a *record) begin(ctx context.Context, started time.Time, now bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.begun {
		return a.err
	}
	a.begun, a.started, a.ctx = true, started, ctx
	if now {
		a.writeRunning(ctx)
		if a.err != nil {
			return a.err
		}
	} else {
		a.r.inflight.add(a)
	}
	s := a.n.step
	a.r.event(Event{Time: started, Type: EventStart, Step: s.Address, Attempt: a.attempt})
	return nil
}

// writeRunning records the execution as running; a.mu is held.
func (a *record) writeRunning(ctx context.Context) {
	if a.id != 0 || a.err != nil {
		return
	}
	s := a.n.step
	a.id, a.err = a.r.opts.State.StartExecution(ctx, state.Execution{RunID: a.r.ID, Address: s.Address, Kind: s.Kind, CacheKey: a.key,
		Backend: s.Backend, Attempt: a.attempt, Started: a.started, LogPath: a.logPath})
}

// inflight holds the attempts begun and not yet ended that are not
// recorded as running; one goroutine per run records those that have run
// for runningAfter (a timer per step costs more than the rest of a short
// step's bookkeeping).
type inflight struct {
	mu   sync.Mutex
	recs map[*record]struct{}
}

func (f *inflight) add(a *record) {
	f.mu.Lock()
	if f.recs == nil {
		f.recs = map[*record]struct{}{}
	}
	f.recs[a] = struct{}{}
	f.mu.Unlock()
}

func (f *inflight) remove(a *record) {
	f.mu.Lock()
	delete(f.recs, a)
	f.mu.Unlock()
}

// due takes out the attempts begun before t.
func (f *inflight) due(t time.Time) []*record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*record
	for a := range f.recs {
		if a.started.Before(t) {
			out = append(out, a)
			delete(f.recs, a)
		}
	}
	return out
}

// watchRunning records the attempts that have run for runningAfter as
// running, until stop is called.
func (r *Run) watchRunning() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(runningAfter / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				for _, a := range r.inflight.due(now.Add(-runningAfter)) {
					a.mu.Lock()
					if !a.ended {
						a.writeRunning(a.ctx)
					}
					a.mu.Unlock()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// groupWait is how long a step's result may wait for the results of
// steps running beside it, to be committed with them (see
// state.WithGroupWait): a commit costs more than the few rows of a
// result, so results committed by the dozen cost much less each. The wait
// never idles a slot: the scheduler flushes the waiting results as soon as
// it has a free slot and nothing to launch (schedule). A step that runs
// alone does not wait: whatever comes next may need its result.
const groupWait = 25 * time.Millisecond

// finish records how the attempt ended and returns its execution's ID.
func (a *record) finish(ctx context.Context, res state.ExecutionResult) (int64, error) {
	if a.r.active.Load() > 1 {
		ctx = state.WithGroupWait(ctx, groupWait)
	}
	a.r.inflight.remove(a)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ended = true // a watcher that took a meanwhile waits for a.mu, then sees it
	switch {
	case a.err != nil:
		return 0, a.err
	case a.id != 0:
		return a.id, a.r.opts.State.FinishExecution(ctx, a.id, res)
	}
	s := a.n.step
	started := a.started
	if !a.begun {
		started = time.Now()
	}
	id, err := a.r.opts.State.RecordExecution(ctx, state.Execution{RunID: a.r.ID, Address: s.Address, Kind: s.Kind, CacheKey: a.key,
		Backend: s.Backend, Attempt: a.attempt, Started: started, LogPath: a.logPath}, res)
	if err == nil {
		a.id = id
	}
	return id, err
}

type timeoutError struct{ d string }

func (e *timeoutError) Error() string { return "timed out after " + e.d }

// perform prepares the work folder, runs the step (builtin or on its
// backend) in a slot of the scheduler, and stores its outputs. It records
// the attempt's start (rec) once the step has its slot.
func (r *Run) perform(ctx context.Context, n *node, rec *record, work, logPath string) ([]state.Output, []state.Metric, string, error) {
	s := n.step
	if err := r.makeWork(work); err != nil {
		return nil, nil, "", err
	}
	// Only the folders the step uses: on some disks making a folder costs
	// a good part of starting a process.
	inDir, outDir := filepath.Join(work, "in"), filepath.Join(work, "out")
	var dirs []string
	if len(s.Inputs) > 0 {
		dirs = append(dirs, inDir)
	}
	builtin := r.isBuiltin(s)
	if len(s.Outputs) > 0 || builtin {
		dirs = append(dirs, outDir)
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, nil, "", err
		}
	}
	inputs, inputOutputs, err := r.materialize(ctx, s, inDir)
	if err != nil {
		return nil, nil, "", err
	}
	outputs := map[string]string{}
	for _, o := range s.Outputs {
		if err := artifact.SafeOutputName(o); err != nil {
			return nil, nil, "", fmt.Errorf("output %q: %w", o, err)
		}
		outputs[o] = filepath.Join(outDir, o)
	}
	var (
		f     BuiltinFunc
		task  *backend.Task
		be    backend.Interface
		mpath string
	)
	if builtin {
		if f = r.opts.Builtins[s.Kind]; f == nil {
			return nil, nil, "", fmt.Errorf("this weir cannot run %s steps", s.Kind)
		}
	} else if task, be, mpath, err = r.userTask(n, rec, work, logPath, inputs, outputs); err != nil {
		return nil, nil, "", err
	}
	if err := r.acquire(n, rec.attempt); err != nil {
		return nil, nil, "", err
	}
	var (
		outs    []state.Output
		metrics []state.Metric
		msg     string
	)
	if builtin {
		var res *BuiltinResult
		if res, err = r.runBuiltin(ctx, n, f, rec, inputs, inputOutputs, outDir, logPath); err == nil {
			metrics, msg = res.Metrics, res.Message
			outs, err = r.collect(s, outDir, res.Outputs)
		}
	} else {
		outs, metrics, err = r.runUserStep(ctx, n, rec, be, task, mpath)
	}
	// The slot goes back before the result is recorded. A step that fails
	// for good says so, so that nothing new starts meanwhile (without
	// --keep-going).
	retries := 0
	if s.Run != nil {
		retries = s.Run.Retries
	}
	r.release(n, err != nil && ctx.Err() == nil && rec.attempt > retries)
	return outs, metrics, msg, err
}

// isBuiltin reports whether Weir runs the step itself: a builtin step, or
// a step without user code whose kind has a function in Builtins (a model
// deployed to a backend that hosts services).
func (r *Run) isBuiltin(s *schema.Step) bool {
	return s.Builtin || (s.Run == nil && r.opts.Builtins[s.Kind] != nil)
}

// runBuiltin runs a builtin in the slot it holds.
func (r *Run) runBuiltin(ctx context.Context, n *node, f BuiltinFunc, rec *record, inputs map[string]string, inputOutputs map[string]state.Output, outDir, logPath string) (*BuiltinResult, error) {
	if err := rec.begin(context.WithoutCancel(ctx), time.Now(), true); err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s := n.step
	res, err := f(ctx, &Call{Step: s, Run: r, Inputs: inputs, InputOutputs: inputOutputs, OutDir: outDir,
		ProjectDir: r.opts.ProjectDir, State: r.opts.State, Store: r.opts.Store, ExecID: rec.id, Log: logf})
	if err != nil {
		fmt.Fprintln(logf, "error:", err)
		return nil, err
	}
	return res, nil
}

// makeWork makes the step's work folder, empty (a folder left by an
// earlier process with the same run ID is removed first).
func (r *Run) makeWork(work string) error {
	r.runDirOnce.Do(func() { r.runDirErr = os.MkdirAll(filepath.Dir(work), 0o755) })
	if r.runDirErr != nil {
		return r.runDirErr
	}
	if spare := r.takeSpare(); spare != "" {
		// syscall.Rename: os.Rename first checks that work is not a
		// folder, one more system call.
		if syscall.Rename(spare, work) == nil {
			return nil
		}
		r.putSpare(spare) // work exists and is not empty: see below
	}
	err := os.Mkdir(work, 0o755)
	switch {
	case errors.Is(err, fs.ErrExist):
		if err := os.RemoveAll(work); err != nil {
			return err
		}
		err = os.Mkdir(work, 0o755)
	case errors.Is(err, fs.ErrNotExist):
		err = os.MkdirAll(work, 0o755)
	}
	return err
}

// Work folders are recycled. Making a folder costs, on some disks, a good
// part of what starting a process costs, and most of a run's folders may
// end empty: a step that wrote nothing in it (no log, no metrics, no
// files), had nothing put in it (no inputs, outputs, params or code) and
// left no process behind (the backend says so) leaves its folder to the
// next step, renamed, instead of leaving it empty. Those left at the end
// of the run are removed.

// maxSpare caps the empty folders kept for the next steps.
const maxSpare = 8

// leftRunning is implemented by backends that can tell whether a task
// that ended left processes running; the others' folders are never
// recycled.
type leftRunning interface {
	LeftRunning(taskID string) bool
}

// recycle keeps the task's work folder for a later step if the step is
// done with it.
func (r *Run) recycle(be backend.Interface, id string, t *backend.Task) {
	lr, ok := be.(leftRunning)
	if !ok {
		return
	}
	if lr.LeftRunning(id) || t.Dir != t.WorkDir || len(t.Inputs) > 0 || len(t.Outputs) > 0 || t.Env["WEIR_PARAMS"] != "" {
		return
	}
	r.spareMu.Lock()
	full := len(r.spare) >= maxSpare
	r.spareMu.Unlock()
	if full {
		return
	}
	if isEmptyDir(t.WorkDir) {
		r.putSpare(t.WorkDir)
	}
}

func (r *Run) takeSpare() string {
	r.spareMu.Lock()
	defer r.spareMu.Unlock()
	if len(r.spare) == 0 {
		return ""
	}
	d := r.spare[len(r.spare)-1]
	r.spare = r.spare[:len(r.spare)-1]
	return d
}

func (r *Run) putSpare(d string) {
	r.spareMu.Lock()
	defer r.spareMu.Unlock()
	r.spare = append(r.spare, d)
}

// removeSpares removes the recycled folders no step took.
func (r *Run) removeSpares() {
	r.spareMu.Lock()
	defer r.spareMu.Unlock()
	for _, d := range r.spare {
		os.Remove(d)
	}
	r.spare = nil
}

// materialize copies each input artifact into the work folder.
func (r *Run) materialize(ctx context.Context, s *schema.Step, inDir string) (map[string]string, map[string]state.Output, error) {
	paths := map[string]string{}
	arts := map[string]state.Output{}
	aliasModel, alias, viaAlias := schema.AliasInput(s)
	for _, in := range s.Inputs {
		var out state.Output
		found := false
		if viaAlias && in.Name == "model" && r.opts.AliasDigest != nil {
			d, ok := r.opts.AliasDigest(ctx, aliasModel, alias)
			if !ok {
				return nil, nil, fmt.Errorf("input model: alias %s of model %s points at no version yet", alias, aliasModel)
			}
			a, err := r.opts.State.Artifact(ctx, d)
			if err != nil {
				return nil, nil, fmt.Errorf("input model: %w", err)
			}
			out, found = state.Output{Name: "model", Digest: a.Digest, Size: a.Size, IsDir: a.IsDir}, true
		} else {
			_, outs, ok := r.Upstream(in.Step)
			if !ok {
				return nil, nil, fmt.Errorf("input %s: %s has no result", in.Name, in.Step)
			}
			for _, o := range outs {
				if o.Name == in.Output {
					out, found = o, true
				}
			}
		}
		if !found {
			return nil, nil, fmt.Errorf("input %s: %s produced no output %q", in.Name, in.Step, in.Output)
		}
		dst := filepath.Join(inDir, in.Name)
		if err := r.opts.Store.Materialize(out.Digest, dst, out.IsDir); err != nil {
			return nil, nil, fmt.Errorf("input %s: %w", in.Name, err)
		}
		paths[in.Name] = dst
		arts[in.Name] = out
	}
	return paths, arts, nil
}

// collect stores the declared outputs found in outDir. A declared output
// that is missing, or a symlink that leads out of the work folder, fails
// the step.
func (r *Run) collect(s *schema.Step, outDir string, passed map[string]state.Output) ([]state.Output, error) {
	var outs []state.Output
	for _, name := range s.Outputs {
		if o, ok := passed[name]; ok {
			o.Name = name
			outs = append(outs, o)
			continue
		}
		p := filepath.Join(outDir, name)
		st, err := os.Lstat(p)
		if err != nil {
			return nil, &StepError{Message: fmt.Sprintf("the step wrote no output %q (expected at $WEIR_OUTPUT_%s)", name, backend.EnvName(name))}
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return nil, &StepError{Message: fmt.Sprintf("output %q is a symbolic link: write the file itself", name)}
		}
		if err := noEscapingLinks(p); err != nil {
			return nil, &StepError{Message: fmt.Sprintf("output %q: %v", name, err)}
		}
		obj, err := r.opts.Store.PutPath(p)
		if err != nil {
			return nil, fmt.Errorf("storing output %q: %w", name, err)
		}
		outs = append(outs, state.Output{Name: name, Digest: obj.Digest, Size: obj.Size, IsDir: obj.IsDir})
	}
	sort.Slice(outs, func(i, j int) bool { return outs[i].Name < outs[j].Name })
	return outs, nil
}

// noEscapingLinks refuses symlinks inside an output folder that point out
// of it.
func noEscapingLinks(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		rel, err := filepath.Rel(root, target)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("%s links outside the output (%s)", p, target)
		}
		return nil
	})
}

// userTask prepares the task of a user step under the contract: its code
// folder, environment and files. It returns the task, its backend and the
// path of its metrics file.
func (r *Run) userTask(n *node, rec *record, work, logPath string, inputs, outputs map[string]string) (*backend.Task, backend.Interface, string, error) {
	s := n.step
	be := r.opts.Backends[s.Backend]
	if be == nil {
		return nil, nil, "", fmt.Errorf("backend %s is not available in this weir", s.Backend)
	}
	dir := work
	if s.Run.Code != "" {
		dir = filepath.Join(work, "code")
		if err := copyTree(filepath.Join(r.opts.ProjectDir, s.Run.Code), dir); err != nil {
			return nil, nil, "", fmt.Errorf("copying code folder %s: %w", s.Run.Code, err)
		}
	}
	env := map[string]string{}
	for k, v := range r.opts.BaseEnv {
		env[k] = v
	}
	// The work folder is the step's own: its home and its temporary
	// folder too (one folder less to make per step).
	env["TMPDIR"] = work
	env["HOME"] = work
	for k, v := range s.Run.Env {
		if v.Secret != "" {
			if r.opts.Secret == nil {
				return nil, nil, "", fmt.Errorf("env %s: no way to resolve secret %s", k, v.Secret)
			}
			val, err := r.opts.Secret(v.Secret)
			if err != nil {
				return nil, nil, "", fmt.Errorf("env %s: %w", k, err)
			}
			env[k] = val
			continue
		}
		env[k] = v.Value
	}
	env["WEIR_RUN_ID"] = r.ID
	env["WEIR_STEP"] = s.Address
	// The metrics file is made by the step's first append: a step that
	// reports none costs no file.
	metricsPath := filepath.Join(work, "metrics.jsonl")
	env["WEIR_METRICS"] = metricsPath
	if len(s.Params) > 0 {
		pp := filepath.Join(work, "params.json")
		b, _ := json.Marshal(s.Params)
		if err := os.WriteFile(pp, b, 0o644); err != nil {
			return nil, nil, "", err
		}
		env["WEIR_PARAMS"] = pp
	}
	for name, p := range inputs {
		env["WEIR_INPUT_"+backend.EnvName(name)] = p
	}
	for name, p := range outputs {
		env["WEIR_OUTPUT_"+backend.EnvName(name)] = p
	}
	t := &backend.Task{RunID: r.ID, Step: s.Address, Attempt: rec.attempt, Argv: s.Run.Command, WorkDir: work, Dir: dir, Env: env,
		Inputs: inputs, Outputs: outputs, Image: s.Run.Image, Resources: s.Run.Resources, Network: s.Run.Network, LogPath: logPath,
		Kind: s.Kind, Element: s.Element, Workers: s.Run.Workers}
	if s.Run.Timeout != "" {
		t.Timeout, _ = time.ParseDuration(s.Run.Timeout) // checked by the schema
	}
	return t, be, metricsPath, nil
}

// runUserStep runs a user step's task in the slot it holds, and stores its
// outputs.
func (r *Run) runUserStep(ctx context.Context, n *node, rec *record, be backend.Interface, t *backend.Task, metricsPath string) ([]state.Output, []state.Metric, error) {
	s := n.step
	res, err := r.runProcess(ctx, n, rec, be, t)
	if err != nil {
		return nil, nil, err
	}
	metrics, merr := readMetrics(metricsPath)
	r.recycle(be, res.id, t)
	switch {
	case res.timedOut:
		return nil, metrics, &timeoutError{d: s.Run.Timeout}
	case res.State == backend.StateCancelled:
		return nil, metrics, errors.New("cancelled")
	case res.State != backend.StateSucceeded:
		return nil, metrics, &StepError{Message: res.Message, LogTail: logTail(t.LogPath, 20), ExitCode: res.ExitCode}
	}
	if merr != nil {
		return nil, metrics, &StepError{Message: merr.Error()}
	}
	outs, err := r.collect(s, filepath.Join(t.WorkDir, "out"), nil)
	return outs, metrics, err
}

// processResult is how a step's program ended.
type processResult struct {
	*backend.Result
	timedOut bool
	id       string // the backend's task ID
}

// runProcess runs the task on its backend.
func (r *Run) runProcess(ctx context.Context, n *node, rec *record, be backend.Interface, t *backend.Task) (*processResult, error) {
	s := n.step
	bg := context.WithoutCancel(ctx)
	rec.begin(bg, time.Now(), false)
	id, err := be.Submit(ctx, t)
	if err != nil {
		return nil, &StepError{Message: err.Error()}
	}
	var timeout time.Duration
	if s.Run.Timeout != "" {
		timeout, _ = time.ParseDuration(s.Run.Timeout)
	}
	// Cancelling (Ctrl-C) or the timeout stops the task; no goroutine
	// waits for either unless it happens.
	var (
		once     sync.Once
		timedOut bool
	)
	stopTask := func(timeout bool) {
		once.Do(func() {
			timedOut = timeout
			be.Cancel(bg, id, r.opts.Grace)
		})
	}
	stopOnCancel := context.AfterFunc(ctx, func() { stopTask(false) })
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() { stopTask(true) })
	}
	res, err := be.Watch(bg, id, func(e backend.Event) {
		if e.Line != "" {
			r.event(Event{Type: EventLog, Step: s.Address, Line: e.Line})
		}
	})
	stopOnCancel()
	if timer != nil {
		timer.Stop()
	}
	once.Do(func() {}) // waits for a Cancel under way; timedOut is then set
	var refused *backend.SubmitError
	if errors.As(err, &refused) {
		return nil, &StepError{Message: refused.Err.Error()}
	}
	if err != nil {
		return nil, fmt.Errorf("watching the step: %w", err)
	}
	return &processResult{Result: res, timedOut: timedOut, id: id}, nil
}

// readMetrics parses the step's metrics file: JSON objects, one per line,
// mapping names to numbers. The line number orders values of one metric.
func readMetrics(path string) ([]state.Metric, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil
	}
	var out []state.Metric
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	seen := map[string]int64{}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(text), &obj); err != nil {
			return out, fmt.Errorf("WEIR_METRICS line %d is not a JSON object: %v", line, err)
		}
		for _, k := range keyOrder(text, obj) {
			f, ok := obj[k].(float64)
			if !ok {
				continue // strings, nested values: not metrics
			}
			out = append(out, state.Metric{Name: k, Value: f, Step: seen[k]})
			seen[k]++
		}
	}
	return out, nil
}

// keyOrder returns the keys of a JSON object in the order the text gives
// them, so metrics are recorded in the order the step reported them on
// every run and every backend.
func keyOrder(text string, obj map[string]any) []string {
	keys := make([]string, 0, len(obj))
	in := map[string]bool{}
	dec := json.NewDecoder(strings.NewReader(text))
	if t, err := dec.Token(); err == nil && t == json.Delim('{') {
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				break
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				break
			}
			if k, ok := t.(string); ok && !in[k] {
				in[k] = true
				keys = append(keys, k)
			}
		}
	}
	var rest []string
	for k := range obj {
		if !in[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}

// logTail returns the last n lines of a log.
func logTail(path string, n int) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}

// copyTree copies a code folder into the work folder (files and symlinks;
// version control and caches left out).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "__pycache__" || d.Name() == ".weir") && rel != "." {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
