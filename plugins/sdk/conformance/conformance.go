// Package conformance is the test suite every Weir backend must pass: a
// plugin author runs it against their backend, in-process or through the
// plugin protocol (plugins/host), from an ordinary Go test:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, mybackend.New(), conformance.Options{})
//	}
//
// It checks the step contract of DESIGN section 5 as the executor relies on
// it: a step that succeeds, with its output lines streamed and written to
// the log, its outputs written where WEIR_OUTPUT_* say; a failing step with
// its exit code and log; Cancel, and a step that ignores SIGTERM being
// killed after the grace period; the task's environment being exactly the
// one given; Describe and Lower; and the refusal of services by a backend
// that does not host them. Each case is a subtest, so one can be run alone
// with -run.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Options adapt the suite to a backend.
type Options struct {
	// Shell runs the suite's scripts: Shell followed by the script is a
	// task's argv (default: sh -c).
	Shell []string
	// Image is set on every task, for backends that run containers.
	Image string
	// Env is added to every task's environment (PATH defaults to this
	// process's).
	Env map[string]string
	// Timeout bounds each case (default 60s).
	Timeout time.Duration
	// Grace is the grace period the Cancel cases give (default 1s).
	Grace time.Duration
	// Skip names cases to skip, with the reason (e.g. {"cancel": "..."}).
	Skip map[string]string
}

func (o *Options) defaults() {
	if len(o.Shell) == 0 {
		o.Shell = []string{"sh", "-c"}
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Grace == 0 {
		o.Grace = time.Second
	}
}

// leakVar is set in the test process's environment; a task must not see it.
const leakVar = "WEIR_CONFORMANCE_LEAK"

// Run runs every case against b, each as a subtest of t.
func Run(t *testing.T, b backend.Interface, opts Options) {
	opts.defaults()
	t.Setenv(leakVar, "leaked")
	s := &suite{b: b, o: opts}
	cases := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"describe", s.describe},
		{"lower", s.lower},
		{"success", s.success},
		{"failure", s.failure},
		{"artifacts", s.artifacts},
		{"environment", s.environment},
		{"cancel", s.cancel},
		{"timeout", s.timeout},
		{"watch-again", s.watchAgain},
		{"parallel", s.parallel},
		{"unknown-task", s.unknownTask},
		{"services", s.services},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if why, ok := opts.Skip[c.name]; ok {
				t.Skip(why)
			}
			c.fn(t)
		})
	}
}

type suite struct {
	b backend.Interface
	o Options
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// task returns a task running script in a fresh work folder laid out as
// the executor lays it out (in/, out/, tmp/, log.txt), with the given
// input files and declared outputs.
func (s *suite) task(t *testing.T, script string, inputs map[string]string, outputs ...string) *backend.Task {
	t.Helper()
	work := filepath.Join(t.TempDir(), "work")
	for _, d := range []string{"in", "out", "tmp"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	step := "tasks.conformance_" + strings.ReplaceAll(t.Name()[strings.LastIndex(t.Name(), "/")+1:], "-", "_")
	env := map[string]string{"PATH": os.Getenv("PATH"), "HOME": work, "TMPDIR": filepath.Join(work, "tmp"),
		"WEIR_RUN_ID": "conformance", "WEIR_STEP": step, "WEIR_METRICS": filepath.Join(work, "metrics.jsonl")}
	for k, v := range s.o.Env {
		env[k] = v
	}
	if err := os.WriteFile(env["WEIR_METRICS"], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	task := &backend.Task{RunID: "conformance", Step: step, Attempt: 1, Argv: append(append([]string{}, s.o.Shell...), script),
		WorkDir: work, Dir: work, Env: env, Inputs: map[string]string{}, Outputs: map[string]string{},
		Image: s.o.Image, LogPath: filepath.Join(work, "log.txt")}
	for name, content := range inputs {
		p := filepath.Join(work, "in", name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		task.Inputs[name] = p
		env["WEIR_INPUT_"+strings.ToUpper(name)] = p
	}
	for _, name := range outputs {
		p := filepath.Join(work, "out", name)
		task.Outputs[name] = p
		env["WEIR_OUTPUT_"+strings.ToUpper(name)] = p
	}
	return task
}

// events records what Watch reports.
type events struct {
	mu     sync.Mutex
	lines  []string
	states []backend.State
	seen   chan string
}

func newEvents() *events { return &events{seen: make(chan string, 1024)} }

func (e *events) fn(ev backend.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev.State != "" {
		e.states = append(e.states, ev.State)
	}
	if ev.Line != "" {
		e.lines = append(e.lines, ev.Line)
		select {
		case e.seen <- ev.Line:
		default:
		}
	}
}

func (e *events) Lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.lines...)
}

// waitLine waits for a line to be streamed.
func (e *events) waitLine(t *testing.T, line string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l := <-e.seen:
			if l == line {
				return
			}
		case <-deadline:
			t.Fatalf("the line %q was not streamed within %v (lines so far: %q)", line, d, e.Lines())
		}
	}
}

// run submits a task and watches it to its end.
func (s *suite) run(t *testing.T, task *backend.Task) (*backend.Result, *events) {
	t.Helper()
	ctx := s.ctx(t)
	id, err := s.b.Submit(ctx, task)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	ev := newEvents()
	res, err := s.b.Watch(ctx, id, ev.fn)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if res == nil {
		t.Fatal("Watch returned no result and no error")
	}
	return res, ev
}

func readLog(t *testing.T, task *backend.Task) string {
	t.Helper()
	b, err := os.ReadFile(task.LogPath)
	if err != nil {
		t.Fatalf("the task's log (LogPath): %v", err)
	}
	return string(b)
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func (s *suite) describe(t *testing.T) {
	d, err := s.b.Describe(s.ctx(t))
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if d.Name == "" {
		t.Error("Describe: no name")
	}
	if d.ProtocolVersion != backend.ProtocolVersion {
		t.Errorf("Describe: protocol version %d, want %d", d.ProtocolVersion, backend.ProtocolVersion)
	}
	if d.GPUs < 0 || d.MaxParallelism < 0 || d.CPUHourPrice < 0 || d.GPUHourPrice < 0 {
		t.Errorf("Describe: negative capability or price: %+v", d)
	}
}

func (s *suite) lower(t *testing.T) {
	step := &schema.Step{Address: "tasks.lowered", Kind: "task", Element: "tasks.lowered", Backend: "conformance",
		Run: &schema.StepRun{Image: s.o.Image, Command: []string{"echo", "hello"}, Env: map[string]schema.EnvVar{"A": {Value: "1"}},
			Resources: &schema.Resources{CPU: 1}, Timeout: "1m"},
		Outputs: []string{"out"}, CacheKey: "sha256:0", Action: schema.ActionRun}
	a, err := s.b.Lower(s.ctx(t), step)
	if err != nil {
		t.Fatalf("Lower of a plain command step: %v", err)
	}
	if !json.Valid(a) {
		t.Fatalf("Lower: not JSON: %s", a)
	}
	b, err := s.b.Lower(s.ctx(t), step)
	if err != nil || !bytes.Equal(a, b) {
		t.Errorf("Lower is not a function of the step: %s, then %s (%v)", a, b, err)
	}
	// A backend that lowers many steps at once (a plugin, through
	// LowerSteps) gives each what Lower gives it.
	if sl, ok := s.b.(backend.StepsLowerer); ok {
		other := *step
		other.Address, other.Element = "tasks.other", "tasks.other"
		tasks, errs, err := sl.LowerSteps(s.ctx(t), []*schema.Step{step, &other, step})
		if err != nil {
			t.Fatalf("LowerSteps: %v", err)
		}
		if len(tasks) != 3 || len(errs) != 3 {
			t.Fatalf("LowerSteps of 3 steps: %d tasks and %d errors", len(tasks), len(errs))
		}
		o, err := s.b.Lower(s.ctx(t), &other)
		for i, want := range []json.RawMessage{a, o, a} {
			if errs[i] != nil || err != nil || !bytes.Equal(tasks[i], want) {
				t.Errorf("LowerSteps gave step %d %s (%v), Lower %s (%v)", i, tasks[i], errs[i], want, err)
			}
		}
	}
}

func (s *suite) success(t *testing.T) {
	task := s.task(t, `echo hello; echo "$WEIR_STEP" > "$WEIR_OUTPUT_OUT"; echo done`, nil, "out")
	res, ev := s.run(t, task)
	if res.State != backend.StateSucceeded || res.ExitCode != 0 {
		t.Fatalf("result %+v, want succeeded with exit code 0 (log: %s)", res, readLog(t, task))
	}
	if lines := ev.Lines(); !contains(lines, "hello") || !contains(lines, "done") {
		t.Errorf("streamed lines %q, want hello and done", lines)
	}
	if log := readLog(t, task); !strings.Contains(log, "hello\n") || !strings.Contains(log, "done\n") {
		t.Errorf("log %q, want hello and done", log)
	}
	out, err := os.ReadFile(task.Outputs["out"])
	if err != nil || strings.TrimSpace(string(out)) != task.Step {
		t.Errorf("output out = %q (%v), want the step's address %q", out, err, task.Step)
	}
}

func (s *suite) failure(t *testing.T) {
	task := s.task(t, `echo to-stdout; echo to-stderr >&2; exit 3`, nil)
	res, ev := s.run(t, task)
	if res.State != backend.StateFailed || res.ExitCode != 3 {
		t.Fatalf("result %+v, want failed with exit code 3", res)
	}
	if res.Message == "" {
		t.Error("a failed result must say what failed (Message)")
	}
	log := readLog(t, task)
	for _, want := range []string{"to-stdout", "to-stderr"} {
		if !strings.Contains(log, want) {
			t.Errorf("log %q lacks %q: stdout and stderr both go to the log", log, want)
		}
		if !contains(ev.Lines(), want) {
			t.Errorf("streamed lines %q lack %q", ev.Lines(), want)
		}
	}
}

func (s *suite) artifacts(t *testing.T) {
	task := s.task(t, `set -e
cat "$WEIR_INPUT_DATA" > "$WEIR_OUTPUT_COPY"
mkdir "$WEIR_OUTPUT_TREE"; echo leaf > "$WEIR_OUTPUT_TREE/leaf.txt"
echo '{"rows": 3}' >> "$WEIR_METRICS"
pwd > "$WEIR_OUTPUT_CWD"
echo scratch > "$TMPDIR/scratch"`, map[string]string{"data": "a,b\n1,2\n"}, "copy", "tree", "cwd")
	res, _ := s.run(t, task)
	if res.State != backend.StateSucceeded {
		t.Fatalf("result %+v, want succeeded (log: %s)", res, readLog(t, task))
	}
	check := func(p, want string) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", p, b, err, want)
		}
	}
	check(task.Outputs["copy"], "a,b\n1,2\n")
	check(filepath.Join(task.Outputs["tree"], "leaf.txt"), "leaf\n")
	check(task.Env["WEIR_METRICS"], "{\"rows\": 3}\n")
	cwd, _ := os.ReadFile(task.Outputs["cwd"])
	if got, _ := filepath.EvalSymlinks(strings.TrimSpace(string(cwd))); got != mustEval(task.Dir) {
		t.Errorf("the task ran in %q, want its Dir %q", cwd, task.Dir)
	}
}

func mustEval(p string) string {
	q, err := filepath.EvalSymlinks(p)
	if err != nil {
		return p
	}
	return q
}

func (s *suite) environment(t *testing.T) {
	task := s.task(t, `env > "$WEIR_OUTPUT_ENV"`, nil, "env")
	task.Env["CONFORMANCE_GIVEN"] = "a value with spaces = and signs"
	res, _ := s.run(t, task)
	if res.State != backend.StateSucceeded {
		t.Fatalf("result %+v, want succeeded (log: %s)", res, readLog(t, task))
	}
	b, err := os.ReadFile(task.Outputs["env"])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	if got["CONFORMANCE_GIVEN"] != task.Env["CONFORMANCE_GIVEN"] {
		t.Errorf("CONFORMANCE_GIVEN = %q, want %q", got["CONFORMANCE_GIVEN"], task.Env["CONFORMANCE_GIVEN"])
	}
	if got["WEIR_STEP"] != task.Step {
		t.Errorf("WEIR_STEP = %q, want %q", got["WEIR_STEP"], task.Step)
	}
	if _, ok := got[leakVar]; ok {
		t.Errorf("the task sees %s from the host's environment: a task's environment is exactly Task.Env", leakVar)
	}
}

// cancelCase starts script, waits for its "started" line, cancels it and
// checks it ends cancelled within the grace period and a margin.
func (s *suite) cancelCase(t *testing.T, script string) {
	task := s.task(t, script, nil)
	ctx := s.ctx(t)
	id, err := s.b.Submit(ctx, task)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	ev := newEvents()
	type watched struct {
		res *backend.Result
		err error
	}
	done := make(chan watched, 1)
	go func() {
		r, err := s.b.Watch(ctx, id, ev.fn)
		done <- watched{r, err}
	}()
	ev.waitLine(t, "started", 20*time.Second)
	start := time.Now()
	if err := s.b.Cancel(ctx, id, s.o.Grace); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	limit := s.o.Grace + 5*time.Second
	if d := time.Since(start); d > limit {
		t.Errorf("Cancel took %v; it must end the task within the grace period (%v) and a margin", d, s.o.Grace)
	}
	select {
	case w := <-done:
		if w.err != nil {
			t.Fatalf("Watch: %v", w.err)
		}
		if w.res.State != backend.StateCancelled {
			t.Errorf("result %+v, want cancelled", w.res)
		}
	case <-time.After(limit):
		t.Fatalf("Watch did not return within %v of Cancel", limit)
	}
	if err := s.b.Cancel(ctx, id, s.o.Grace); err != nil && !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Cancel of an ended task: %v, want nil or ErrNotFound", err)
	}
}

func (s *suite) cancel(t *testing.T) {
	s.cancelCase(t, `echo started; sleep 60; echo not cancelled`)
}

// timeout is what the executor does when a step's timeout expires: Cancel,
// here of a program that ignores SIGTERM and must be killed after the grace
// period.
func (s *suite) timeout(t *testing.T) {
	s.cancelCase(t, `trap '' TERM; echo started; sleep 60; echo not killed`)
}

func (s *suite) watchAgain(t *testing.T) {
	task := s.task(t, `echo first; sleep 1; echo second > "$WEIR_OUTPUT_OUT"`, nil, "out")
	ctx := s.ctx(t)
	id, err := s.b.Submit(ctx, task)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	wctx, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = s.b.Watch(wctx, id, nil)
	stop()
	if err == nil {
		t.Fatal("Watch returned no error when its context ended before the task")
	}
	res, err := s.b.Watch(ctx, id, nil)
	if err != nil {
		t.Fatalf("Watch after an abandoned Watch: %v (ending a Watch's context must not end the task)", err)
	}
	if res.State != backend.StateSucceeded {
		t.Fatalf("result %+v, want succeeded", res)
	}
	if b, _ := os.ReadFile(task.Outputs["out"]); string(b) != "second\n" {
		t.Errorf("output %q: the task did not run to its end", b)
	}
}

func (s *suite) parallel(t *testing.T) {
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		task := s.task(t, fmt.Sprintf(`sleep 0.2; echo %d > "$WEIR_OUTPUT_OUT"`, i), nil, "out")
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := s.ctx(t)
			id, err := s.b.Submit(ctx, task)
			if err != nil {
				errs <- err
				return
			}
			res, err := s.b.Watch(ctx, id, nil)
			if err != nil {
				errs <- err
				return
			}
			if res.State != backend.StateSucceeded {
				errs <- fmt.Errorf("task %d: %+v", i, res)
				return
			}
			if b, _ := os.ReadFile(task.Outputs["out"]); strings.TrimSpace(string(b)) != fmt.Sprint(i) {
				errs <- fmt.Errorf("task %d wrote %q: tasks' folders got mixed up", i, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (s *suite) unknownTask(t *testing.T) {
	if _, err := s.b.Watch(s.ctx(t), "no-such-task", nil); err == nil {
		t.Error("Watch of an unknown task ID returned no error")
	}
}

func (s *suite) services(t *testing.T) {
	d, err := s.b.Describe(s.ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.Services {
		t.Skip("the backend hosts services; the suite does not test them yet")
	}
	_, err = s.b.Deploy(s.ctx(t), &backend.Service{Name: "serving.x", Revision: "v1", Argv: []string{"true"}})
	if !errors.Is(err, backend.ErrUnsupported) {
		t.Errorf("Deploy on a backend without services: %v, want an error wrapping backend.ErrUnsupported", err)
	}
	_, err = s.b.SetTraffic(s.ctx(t), "x", []backend.Split{{Revision: "v1", Weight: 100}})
	if !errors.Is(err, backend.ErrUnsupported) {
		t.Errorf("SetTraffic on a backend without services: %v, want an error wrapping backend.ErrUnsupported", err)
	}
	if err := s.b.Undeploy(s.ctx(t), "x", time.Second); !errors.Is(err, backend.ErrUnsupported) {
		t.Errorf("Undeploy on a backend without services: %v, want an error wrapping backend.ErrUnsupported", err)
	}
}
