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
	bg := context.WithoutCancel(ctx)
	id, err := db.StartExecution(bg, state.Execution{RunID: r.ID, Address: n.step.Address, Kind: n.step.Kind,
		CacheKey: key, Backend: n.step.Backend, Attempt: 1, Started: time.Now()})
	if err != nil {
		return &StepReport{Address: n.step.Address, Status: state.StatusFailed, Message: "recording in the state: " + err.Error()}
	}
	metrics, _ := db.Metrics(bg, e.ID)
	params, _ := db.Params(bg, e.ID)
	if err := db.FinishExecution(bg, id, state.ExecutionResult{Status: state.StatusCached, Outputs: e.Outputs,
		Metrics: metrics, Params: params}); err != nil {
		return &StepReport{Address: n.step.Address, Status: state.StatusFailed, Message: "recording in the state: " + err.Error()}
	}
	r.recordParts(bg, id, n)
	msg := "reused from run " + e.RunID
	if e.Address != n.step.Address {
		msg += " (" + e.Address + ")"
	}
	r.event(Event{Type: EventCached, Step: n.step.Address, Status: state.StatusCached, Message: msg})
	return &StepReport{Address: n.step.Address, Status: state.StatusCached, Message: msg, ExecID: id, Outputs: e.Outputs, Attempts: 0}
}

// recordParts keeps the key's parts with the execution, so the next plan
// can say what changed. Losing them only makes that explanation vaguer.
func (r *Run) recordParts(ctx context.Context, id int64, n *node) {
	if len(n.parts) > 0 {
		_ = r.opts.State.RecordKeyParts(ctx, id, n.parts)
	}
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
		if rep.Status != state.StatusFailed || attempt > retries || ctx.Err() != nil {
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
	db := r.opts.State
	bg := context.WithoutCancel(ctx) // state writes finish even when cancelled
	work := r.workDir(s.Address)
	if attempt > 1 {
		work += "-" + strconv.Itoa(attempt)
	}
	logPath := filepath.Join(work, "log.txt")
	rep := &StepReport{Address: s.Address, LogPath: logPath}
	id, err := db.StartExecution(bg, state.Execution{RunID: r.ID, Address: s.Address, Kind: s.Kind, CacheKey: key,
		Backend: s.Backend, Attempt: attempt, Started: time.Now(), LogPath: logPath})
	if err != nil {
		rep.Status, rep.Message = state.StatusFailed, "recording in the state: "+err.Error()
		return rep
	}
	rep.ExecID = id
	r.event(Event{Type: EventStart, Step: s.Address, Attempt: attempt})
	started := time.Now()
	outs, metrics, msg, err := r.perform(ctx, n, id, work, logPath)
	res := state.ExecutionResult{Status: state.StatusSucceeded, Params: s.Params, Metrics: metrics}
	var se *StepError
	switch {
	case err == nil:
		res.Outputs = outs
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
	if ferr := db.FinishExecution(bg, id, res); ferr != nil {
		rep.Status, rep.Message = state.StatusFailed, "recording in the state: "+ferr.Error()
	} else if rep.Status == state.StatusSucceeded {
		r.recordParts(bg, id, n)
	}
	r.event(Event{Type: EventDone, Step: s.Address, Status: rep.Status, Attempt: attempt, Message: rep.Message, Elapsed: time.Since(started)})
	return rep
}

type timeoutError struct{ d string }

func (e *timeoutError) Error() string { return "timed out after " + e.d }

// perform prepares the work folder, runs the step (builtin or on its
// backend), and stores its outputs.
func (r *Run) perform(ctx context.Context, n *node, execID int64, work, logPath string) ([]state.Output, []state.Metric, string, error) {
	s := n.step
	if err := os.RemoveAll(work); err != nil {
		return nil, nil, "", err
	}
	inDir, outDir, tmpDir := filepath.Join(work, "in"), filepath.Join(work, "out"), filepath.Join(work, "tmp")
	for _, d := range []string{inDir, outDir, tmpDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
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
	if s.Builtin {
		f := r.opts.Builtins[s.Kind]
		if f == nil {
			return nil, nil, "", fmt.Errorf("this weir cannot run %s steps", s.Kind)
		}
		logf, err := os.Create(logPath)
		if err != nil {
			return nil, nil, "", err
		}
		defer logf.Close()
		res, err := f(ctx, &Call{Step: s, Run: r, Inputs: inputs, InputOutputs: inputOutputs, OutDir: outDir,
			ProjectDir: r.opts.ProjectDir, State: r.opts.State, Store: r.opts.Store, ExecID: execID, Log: logf})
		if err != nil {
			fmt.Fprintln(logf, "error:", err)
			return nil, nil, "", err
		}
		outs, err := r.collect(s, outDir, res.Outputs)
		return outs, res.Metrics, res.Message, err
	}
	return r.runUserStep(ctx, n, work, logPath, inputs, outputs, tmpDir)
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
			return nil, &StepError{Message: fmt.Sprintf("the step wrote no output %q (expected at $WEIR_OUTPUT_%s)", name, envName(name))}
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

// envName is the upper-case form of an input or output name in variables.
func envName(name string) string {
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteRune(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteRune('_')
		}
	}
	return b.String()
}

// runUserStep runs user code on the step's backend under the contract.
func (r *Run) runUserStep(ctx context.Context, n *node, work, logPath string, inputs, outputs map[string]string, tmpDir string) ([]state.Output, []state.Metric, string, error) {
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
	env["TMPDIR"] = tmpDir
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
	metricsPath := filepath.Join(work, "metrics.jsonl")
	env["WEIR_METRICS"] = metricsPath
	if err := os.WriteFile(metricsPath, nil, 0o644); err != nil {
		return nil, nil, "", err
	}
	if len(s.Params) > 0 {
		pp := filepath.Join(work, "params.json")
		b, _ := json.Marshal(s.Params)
		if err := os.WriteFile(pp, b, 0o644); err != nil {
			return nil, nil, "", err
		}
		env["WEIR_PARAMS"] = pp
	}
	for name, p := range inputs {
		env["WEIR_INPUT_"+envName(name)] = p
	}
	for name, p := range outputs {
		env["WEIR_OUTPUT_"+envName(name)] = p
	}
	t := &backend.Task{RunID: r.ID, Step: s.Address, Argv: s.Run.Command, WorkDir: work, Dir: dir, Env: env,
		Inputs: inputs, Outputs: outputs, Image: s.Run.Image, Resources: s.Run.Resources, Network: s.Run.Network, LogPath: logPath}
	id, err := be.Submit(ctx, t)
	if err != nil {
		return nil, nil, "", &StepError{Message: err.Error()}
	}
	var timeout time.Duration
	if s.Run.Timeout != "" {
		timeout, _ = time.ParseDuration(s.Run.Timeout)
	}
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	var timedOut bool
	stop := make(chan struct{})
	go func() {
		var timer <-chan time.Time
		if timeout > 0 {
			timer = time.After(timeout)
		}
		select {
		case <-stop:
			return
		case <-ctx.Done():
		case <-timer:
			timedOut = true
		}
		be.Cancel(context.WithoutCancel(ctx), id, r.opts.Grace)
	}()
	res, err := be.Watch(watchCtx, id, func(e backend.Event) {
		if e.Line != "" {
			r.event(Event{Type: EventLog, Step: s.Address, Line: e.Line})
		}
	})
	close(stop)
	if err != nil {
		return nil, nil, "", fmt.Errorf("watching the step: %w", err)
	}
	metrics, merr := readMetrics(metricsPath)
	switch {
	case timedOut:
		return nil, metrics, "", &timeoutError{d: s.Run.Timeout}
	case res.State == backend.StateCancelled:
		return nil, metrics, "", errors.New("cancelled")
	case res.State != backend.StateSucceeded:
		return nil, metrics, "", &StepError{Message: res.Message, LogTail: logTail(logPath, 20), ExitCode: res.ExitCode}
	}
	if merr != nil {
		return nil, metrics, "", &StepError{Message: merr.Error()}
	}
	outs, err := r.collect(s, filepath.Join(work, "out"), nil)
	return outs, metrics, "", err
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
		for k, v := range obj {
			f, ok := v.(float64)
			if !ok {
				continue // strings, nested values: not metrics
			}
			out = append(out, state.Metric{Name: k, Value: f, Step: seen[k]})
			seen[k]++
		}
	}
	return out, nil
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
