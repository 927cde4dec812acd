package exec_test

import (
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// env is a project folder with a real state file, a real artifact store and
// the real local backend.
type env struct {
	t      *testing.T
	dir    string
	db     *state.DB
	store  *artifact.Store
	mu     sync.Mutex
	events []exec.Event
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(context.Background(), filepath.Join(dir, ".weir", "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	store, err := artifact.Open(filepath.Join(dir, ".weir", "artifacts"))
	require.NoError(t, err)
	return &env{t: t, dir: dir, db: db, store: store}
}

// blob reads an artifact's content.
func (e *env) blob(digest string) ([]byte, error) {
	p, err := e.store.Path(digest)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

var runSeq int

func (e *env) options(mod func(*exec.Options)) exec.Options {
	runSeq++
	o := exec.Options{
		ProjectDir:  e.dir,
		WorkRoot:    filepath.Join(e.dir, ".weir", "runs"),
		State:       e.db,
		Store:       e.store,
		Backends:    map[string]backend.Interface{"local": local.New(0)},
		Parallelism: 4,
		Grace:       200 * time.Millisecond,
		RetryBase:   10 * time.Millisecond,
		BaseEnv:     map[string]string{"PATH": os.Getenv("PATH")},
		RunID:       "run" + strings.Repeat("0", 3) + string(rune('a'+runSeq%26)) + time.Now().Format("150405.000000"),
		Events: func(ev exec.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&o)
	}
	return o
}

// sh is a step running a shell script.
func sh(addr, script string, needs ...string) *schema.Step {
	s := &schema.Step{Address: addr, Kind: "task", Element: addr, Backend: "local", Action: schema.ActionRun,
		Run: &schema.StepRun{Command: []string{"sh", "-c", script}}, Needs: needs, CacheKey: "key:" + addr + ":" + script}
	return s
}

func plan(steps ...*schema.Step) *schema.Plan {
	return &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "test", Steps: steps}
}

func (e *env) apply(p *schema.Plan, mod func(*exec.Options)) (*exec.Report, error) {
	return exec.Apply(context.Background(), p, e.options(mod))
}

func status(rep *exec.Report, addr string) *exec.StepReport {
	for _, s := range rep.Steps {
		if s.Address == addr {
			return s
		}
	}
	return nil
}

func TestRunsDAGWithContract(t *testing.T) {
	e := newEnv(t)
	a := sh("tasks.a", `printf 'hello' > "$WEIR_OUTPUT_DATA"; echo '{"rows": 1}' >> "$WEIR_METRICS"`)
	a.Outputs = []string{"data"}
	b := sh("tasks.b", `tr a-z A-Z < "$WEIR_INPUT_DATA" > "$WEIR_OUTPUT_UPPER"; cat "$WEIR_PARAMS" > "$WEIR_OUTPUT_PARAMS"; echo "$WEIR_STEP" >> "$WEIR_OUTPUT_PARAMS"`, "tasks.a")
	b.Inputs = []schema.Input{{Name: "data", Step: "tasks.a", Output: "data"}}
	b.Outputs = []string{"upper", "params"}
	b.Params = map[string]any{"lr": 0.1}
	rep, err := e.apply(plan(a, b), nil)
	require.NoError(t, err)
	assert.Equal(t, state.StatusSucceeded, rep.Status)
	sb := status(rep, "tasks.b")
	require.Equal(t, state.StatusSucceeded, sb.Status, sb.Message)
	require.Len(t, sb.Outputs, 2)
	var upper state.Output
	for _, o := range sb.Outputs {
		if o.Name == "upper" {
			upper = o
		}
	}
	got, err := e.blob(upper.Digest)
	require.NoError(t, err)
	assert.Equal(t, "HELLO", string(got))

	ms, err := e.db.Metrics(context.Background(), status(rep, "tasks.a").ExecID)
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, "rows", ms[0].Name)
	assert.Equal(t, 1.0, ms[0].Value)

	// A second apply of the same plan, marked cached, runs nothing.
	a.Action, b.Action = schema.ActionCached, schema.ActionCached
	rep, err = e.apply(plan(a, b), nil)
	require.NoError(t, err)
	assert.Equal(t, state.StatusCached, status(rep, "tasks.a").Status)
	assert.Equal(t, state.StatusCached, status(rep, "tasks.b").Status)
	assert.Equal(t, sb.Outputs, status(rep, "tasks.b").Outputs)
}

func TestFailureShowsLogTailAndStops(t *testing.T) {
	e := newEnv(t)
	bad := sh("tasks.bad", `echo "loading"; echo "boom: no such column" >&2; exit 3`)
	after := sh("tasks.after", `true`, "tasks.bad")
	other := sh("tasks.other", `sleep 0.2`)
	rep, err := e.apply(plan(bad, after, other), func(o *exec.Options) { o.Parallelism = 1 })
	require.ErrorIs(t, err, exec.ErrFailed)
	sb := status(rep, "tasks.bad")
	assert.Equal(t, state.StatusFailed, sb.Status)
	assert.Contains(t, sb.Message, "exited with code 3")
	assert.Contains(t, sb.Message, "boom: no such column")
	assert.Equal(t, exec.StatusSkipped, status(rep, "tasks.after").Status)
	// Without --keep-going nothing new is launched after the failure.
	assert.Equal(t, exec.StatusSkipped, status(rep, "tasks.other").Status)

	ex, err := e.db.Executions(context.Background(), rep.RunID)
	require.NoError(t, err)
	require.Len(t, ex, 1)
	assert.Equal(t, 3, ex[0].ExitCode)

	// With --keep-going independent steps still run.
	rep, err = e.apply(plan(bad, after, other), func(o *exec.Options) { o.Parallelism, o.KeepGoing = 1, true })
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Equal(t, state.StatusSucceeded, status(rep, "tasks.other").Status)
	assert.Equal(t, exec.StatusSkipped, status(rep, "tasks.after").Status)
}

func TestTimeout(t *testing.T) {
	e := newEnv(t)
	s := sh("tasks.slow", `sleep 20`)
	s.Run.Timeout = "300ms"
	start := time.Now()
	rep, err := e.apply(plan(s), nil)
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, state.StatusFailed, status(rep, "tasks.slow").Status)
	assert.Equal(t, "timed out after 300ms", status(rep, "tasks.slow").Message)
}

func TestMissingOutputAndProgram(t *testing.T) {
	e := newEnv(t)
	lazy := sh("tasks.lazy", `echo done`)
	lazy.Outputs = []string{"model"}
	missing := &schema.Step{Address: "tasks.missing", Kind: "task", Element: "tasks.missing", Backend: "local", Action: schema.ActionRun,
		Run: &schema.StepRun{Command: []string{"no-such-program-weir", "x"}}, CacheKey: "k2"}
	rep, err := e.apply(plan(lazy, missing), func(o *exec.Options) { o.KeepGoing = true })
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Contains(t, status(rep, "tasks.lazy").Message, `the step wrote no output "model" (expected at $WEIR_OUTPUT_MODEL)`)
	assert.Contains(t, status(rep, "tasks.missing").Message, `program "no-such-program-weir" is not installed`)
}

// TestRefusalFromWatch: a backend that hands tasks on without waiting for
// the answer (a plugin's Tasks stream) reports a refused task from Watch as
// a *backend.SubmitError; the step fails with the refusal's message, as it
// does when Submit returns it.
func TestRefusalFromWatch(t *testing.T) {
	e := newEnv(t)
	missing := &schema.Step{Address: "tasks.missing", Kind: "task", Element: "tasks.missing", Backend: "local", Action: schema.ActionRun,
		Run: &schema.StepRun{Command: []string{"no-such-program-weir", "x"}}, CacheKey: "k2"}
	rep, err := e.apply(plan(missing), func(o *exec.Options) {
		o.Backends = map[string]backend.Interface{"local": &lateRefusal{Backend: local.New(0)}}
	})
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Equal(t, `program "no-such-program-weir" is not installed (not found in PATH=`+os.Getenv("PATH")+`)`, status(rep, "tasks.missing").Message)
}

// lateRefusal reports Submit's errors from Watch.
type lateRefusal struct {
	*local.Backend
	mu      sync.Mutex
	refused map[string]error
}

func (l *lateRefusal) Submit(ctx context.Context, t *backend.Task) (string, error) {
	id, err := l.Backend.Submit(ctx, t)
	if err == nil {
		return id, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused == nil {
		l.refused = map[string]error{}
	}
	id = fmt.Sprintf("refused-%d", len(l.refused))
	l.refused[id] = err
	return id, nil
}

func (l *lateRefusal) Watch(ctx context.Context, id string, fn func(backend.Event)) (*backend.Result, error) {
	l.mu.Lock()
	err := l.refused[id]
	l.mu.Unlock()
	if err != nil {
		return nil, &backend.SubmitError{Err: err}
	}
	return l.Backend.Watch(ctx, id, fn)
}

func TestOutputLinkOutsideIsRefused(t *testing.T) {
	e := newEnv(t)
	s := sh("tasks.link", `mkdir "$WEIR_OUTPUT_OUT"; ln -s /etc/passwd "$WEIR_OUTPUT_OUT/x"`)
	s.Outputs = []string{"out"}
	rep, err := e.apply(plan(s), nil)
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Contains(t, status(rep, "tasks.link").Message, "links outside the output")
}

func TestRetriesWithBackoff(t *testing.T) {
	e := newEnv(t)
	counter := filepath.Join(e.dir, "count")
	s := sh("tasks.flaky", `n=$(cat `+counter+` 2>/dev/null || echo 0); n=$((n+1)); echo $n > `+counter+`; [ $n -ge 3 ]`)
	s.Run.Retries = 2
	rep, err := e.apply(plan(s), nil)
	require.NoError(t, err)
	sr := status(rep, "tasks.flaky")
	assert.Equal(t, state.StatusSucceeded, sr.Status)
	assert.Equal(t, 3, sr.Attempts)
	retries := 0
	for _, ev := range e.events {
		if ev.Type == exec.EventRetry {
			retries++
		}
	}
	assert.Equal(t, 2, retries)
	ex, _ := e.db.Executions(context.Background(), rep.RunID)
	require.Len(t, ex, 3)
	assert.Equal(t, state.StatusFailed, ex[0].Status)
	assert.Equal(t, state.StatusSucceeded, ex[2].Status)
}

func TestCancelKillsProcessGroup(t *testing.T) {
	e := newEnv(t)
	pidFile := filepath.Join(e.dir, "child.pid")
	// The step ignores SIGTERM and has a child: both must die after the grace.
	s := sh("tasks.stubborn", `trap "" TERM; sleep 30 & echo $! > `+pidFile+`; wait`)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(pidFile); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	rep, err := exec.Apply(ctx, plan(s, sh("tasks.later", "true", "tasks.stubborn")), e.options(nil))
	require.ErrorIs(t, err, exec.ErrCancelled)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, state.StatusCancelled, status(rep, "tasks.stubborn").Status)
	assert.Equal(t, exec.StatusSkipped, status(rep, "tasks.later").Status)
	run, err := e.db.Run(context.Background(), rep.RunID)
	require.NoError(t, err)
	assert.Equal(t, state.StatusCancelled, run.Status)
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	assert.Eventually(t, func() bool { return !processAlive(strings.TrimSpace(string(b))) }, 5*time.Second, 50*time.Millisecond,
		"the step's child process survived the cancel")
}

func TestParallelismAndGPUSlots(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(e.dir, "log")
	var steps []*schema.Step
	for _, n := range []string{"a", "b", "c", "d"} {
		s := sh("tasks."+n, `echo start >> `+log+`; sleep 0.3; echo end >> `+log)
		steps = append(steps, s)
	}
	_, err := e.apply(plan(steps...), func(o *exec.Options) { o.Parallelism = 2 })
	require.NoError(t, err)
	assert.Equal(t, 2, maxConcurrent(t, log))

	// One GPU: GPU steps run one at a time even with room in parallelism.
	require.NoError(t, os.Remove(log))
	for _, s := range steps {
		s.Run.Resources = &schema.Resources{GPU: 1}
	}
	_, err = e.apply(plan(steps...), func(o *exec.Options) { o.GPUs = map[string]int{"local": 1} })
	require.NoError(t, err)
	assert.Equal(t, 1, maxConcurrent(t, log))

	// A step that wants more GPUs than there are fails at once.
	big := sh("tasks.big", "true")
	big.Run.Resources = &schema.Resources{GPU: 2}
	rep, err := e.apply(plan(big), func(o *exec.Options) { o.GPUs = map[string]int{"local": 1} })
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Equal(t, "needs 2 GPUs but backend local has 1", status(rep, "tasks.big").Message)
}

func maxConcurrent(t *testing.T, log string) int {
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	cur, best := 0, 0
	for _, l := range strings.Fields(string(b)) {
		if l == "start" {
			cur++
		} else {
			cur--
		}
		best = max(best, cur)
	}
	return best
}

func TestSecretsReachTheStepOnly(t *testing.T) {
	e := newEnv(t)
	s := sh("tasks.secret", `printf '%s' "$TOKEN" > "$WEIR_OUTPUT_OUT"; env > "$WEIR_OUTPUT_ENV"`)
	s.Outputs = []string{"out", "env"}
	s.Run.Env = map[string]schema.EnvVar{"TOKEN": {Secret: "env:WEIR_TEST_TOKEN"}, "MODE": {Value: "fast"}}
	rep, err := e.apply(plan(s), func(o *exec.Options) {
		o.Secret = func(ref string) (string, error) {
			if ref == "env:WEIR_TEST_TOKEN" {
				return "s3cr3t", nil
			}
			return "", errors.New("unknown")
		}
	})
	require.NoError(t, err)
	outs := status(rep, "tasks.secret").Outputs
	byName := map[string]state.Output{}
	for _, o := range outs {
		byName[o.Name] = o
	}
	got, _ := e.blob(byName["out"].Digest)
	assert.Equal(t, "s3cr3t", string(got))
	env, _ := e.blob(byName["env"].Digest)
	assert.Contains(t, string(env), "MODE=fast")
	assert.NotContains(t, string(env), "HOSTNAME=", "the step's environment must hold only declared variables")
	// The secret's value is nowhere in the state.
	raw, err := os.ReadFile(filepath.Join(e.dir, ".weir", "state.db"))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "s3cr3t")
	p, _ := json.Marshal(s)
	assert.NotContains(t, string(p), "s3cr3t")
}

func TestMetricsKeepTheirOrder(t *testing.T) {
	e := newEnv(t)
	s := sh("tasks.m", `echo '{"zeta": 1, "alpha": 2, "note": "x", "mid": 3}' >> "$WEIR_METRICS"; echo '{"alpha": 4, "zeta": 5}' >> "$WEIR_METRICS"`)
	rep, err := e.apply(plan(s), nil)
	require.NoError(t, err)
	ms, err := e.db.Metrics(context.Background(), status(rep, "tasks.m").ExecID)
	require.NoError(t, err)
	assert.Equal(t, []state.Metric{{Name: "zeta", Value: 1}, {Name: "alpha", Value: 2}, {Name: "mid", Value: 3},
		{Name: "alpha", Value: 4, Step: 1}, {Name: "zeta", Value: 5, Step: 1}}, ms)
}

// TestEmptyWorkFoldersAreRecycled: the folder of a step that left nothing
// in it and no process behind goes to a later step; the folders that hold
// something, or may still be used, stay.
func TestEmptyWorkFoldersAreRecycled(t *testing.T) {
	e := newEnv(t)
	var steps []*schema.Step
	for i := range 10 {
		steps = append(steps, sh("tasks.quiet"+string(rune('a'+i)), "true"))
	}
	steps = append(steps,
		sh("tasks.talks", "echo hello"),
		sh("tasks.writes", "touch file; echo $HOME $TMPDIR > where"),
		sh("tasks.leaves", "sleep 2 >/dev/null 2>&1 &"))
	var o exec.Options
	rep, err := e.apply(plan(steps...), func(opts *exec.Options) { opts.Parallelism = 2; o = *opts })
	require.NoError(t, err)
	assert.Equal(t, 13, rep.Counts[state.StatusSucceeded])
	ents, err := os.ReadDir(filepath.Join(o.WorkRoot, o.RunID))
	require.NoError(t, err)
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	assert.ElementsMatch(t, []string{"tasks.talks", "tasks.writes", "tasks.leaves"}, names)
	b, err := os.ReadFile(filepath.Join(o.WorkRoot, o.RunID, "tasks.talks", "log.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(b))
	work := filepath.Join(o.WorkRoot, o.RunID, "tasks.writes")
	b, err = os.ReadFile(filepath.Join(work, "where"))
	require.NoError(t, err)
	assert.Equal(t, work+" "+work+"\n", string(b), "HOME and TMPDIR are the step's own folder")
	assert.FileExists(t, filepath.Join(work, "file"))
}

// TestCancelSkipsStepsWaitingForASlot: steps prepared while another runs
// do not start once the apply is cancelled, and leave no execution and no
// folder.
func TestCancelSkipsStepsWaitingForASlot(t *testing.T) {
	e := newEnv(t)
	started := filepath.Join(e.dir, "started")
	long := sh("tasks.long", `touch `+started+`; sleep 30`)
	b, c := sh("tasks.b", "true"), sh("tasks.c", "true")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for i := 0; i < 200; i++ {
			if _, err := os.Stat(started); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // b is prepared and waiting
		cancel()
	}()
	var o exec.Options
	rep, err := exec.Apply(ctx, plan(long, b, c), e.options(func(opts *exec.Options) { opts.Parallelism = 1; o = *opts }))
	require.ErrorIs(t, err, exec.ErrCancelled)
	assert.Equal(t, state.StatusCancelled, status(rep, "tasks.long").Status)
	for _, a := range []string{"tasks.b", "tasks.c"} {
		assert.Equal(t, exec.StatusSkipped, status(rep, a).Status, a)
		assert.Equal(t, "not started: apply was cancelled", status(rep, a).Message, a)
		assert.NoDirExists(t, filepath.Join(o.WorkRoot, o.RunID, a))
	}
	ex, err := e.db.Executions(context.Background(), rep.RunID)
	require.NoError(t, err)
	require.Len(t, ex, 1)
	assert.Equal(t, "tasks.long", ex[0].Address)
}

// TestRetryWaitsForASlot: a retry takes a slot like any attempt, so
// parallelism holds across retries.
func TestRetryWaitsForASlot(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(e.dir, "log")
	counter := filepath.Join(e.dir, "count")
	flaky := sh("tasks.flaky", `echo start >> `+log+`; sleep 0.1; n=$(cat `+counter+` 2>/dev/null || echo 0); n=$((n+1)); echo $n > `+counter+`; echo end >> `+log+`; [ $n -ge 2 ]`)
	flaky.Run.Retries = 1
	var steps []*schema.Step
	steps = append(steps, flaky)
	for _, n := range []string{"a", "b", "c"} {
		steps = append(steps, sh("tasks."+n, `echo start >> `+log+`; sleep 0.1; echo end >> `+log))
	}
	rep, err := e.apply(plan(steps...), func(o *exec.Options) { o.Parallelism = 2 })
	require.NoError(t, err)
	assert.Equal(t, 2, status(rep, "tasks.flaky").Attempts)
	assert.LessOrEqual(t, maxConcurrent(t, log), 2)
}

// TestLongStepIsRecordedAsRunning: a step that runs longer than a moment
// is in the state as running while it runs (weir state and a concurrent
// plan see it), and ends as succeeded; a short one is written once.
func TestLongStepIsRecordedAsRunning(t *testing.T) {
	defer exec.SetRunningAfter(50 * time.Millisecond)()
	e := newEnv(t)
	gate := filepath.Join(e.dir, "gate")
	long := sh("tasks.long", `while [ ! -e "`+gate+`" ]; do sleep 0.01; done`)
	short := sh("tasks.short", `true`)
	opts := e.options(nil)
	type result struct {
		rep *exec.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := exec.Apply(context.Background(), plan(long, short), opts)
		done <- result{rep, err}
	}()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		es, err := e.db.Executions(ctx, opts.RunID)
		require.NoError(t, err)
		running := false
		for _, x := range es {
			running = running || x.Address == "tasks.long" && x.Status == state.StatusRunning
		}
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks.long is not recorded as running: %d executions", len(es))
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	res := <-done
	require.NoError(t, res.err)
	es, err := e.db.Executions(ctx, opts.RunID)
	require.NoError(t, err)
	require.Len(t, es, 2)
	for _, x := range es {
		assert.Equal(t, state.StatusSucceeded, x.Status, x.Address)
	}
}
