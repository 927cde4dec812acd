package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/host"
	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// project is a folder with a real state file and artifact store, for
// applying plans through plugins with the real executor.
type project struct {
	dir   string
	db    *state.DB
	store *artifact.Store
	runs  int
}

func newProject(t testing.TB) *project {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(context.Background(), filepath.Join(dir, ".weir", "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	store, err := artifact.Open(filepath.Join(dir, ".weir", "artifacts"))
	require.NoError(t, err)
	return &project{dir: dir, db: db, store: store}
}

func (p *project) apply(t testing.TB, plan *schema.Plan, bs map[string]backend.Interface, parallelism int, keepGoing bool) (*exec.Report, error) {
	p.runs++
	return exec.Apply(context.Background(), plan, exec.Options{
		ProjectDir:  p.dir,
		WorkRoot:    filepath.Join(p.dir, ".weir", "runs"),
		State:       p.db,
		Store:       p.store,
		Backends:    bs,
		Parallelism: parallelism,
		KeepGoing:   keepGoing,
		BaseEnv:     map[string]string{"PATH": os.Getenv("PATH")},
		RunID:       fmt.Sprintf("run-%d", p.runs),
	})
}

// step is a task step running a shell script on a backend.
func step(addr, be, script string, needs ...string) *schema.Step {
	return &schema.Step{Address: addr, Kind: "task", Element: addr, Backend: be, Action: schema.ActionRun,
		Run: &schema.StepRun{Command: []string{"sh", "-c", script}}, Needs: needs, Outputs: []string{"out"},
		CacheKey: "sha256:" + addr}
}

func report(rep *exec.Report, addr string) *exec.StepReport {
	for _, s := range rep.Steps {
		if s.Address == addr {
			return s
		}
	}
	return nil
}

// TestApplyWhenThePluginDies applies a plan whose first step's plugin dies
// under it: the step fails with the plugin's stderr tail; without
// --keep-going the apply stops there, with it the independent step on the
// other backend still runs.
func TestApplyWhenThePluginDies(t *testing.T) {
	plan := &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "p", Steps: []*schema.Step{
		step("tasks.crash", "flaky", `echo working; sleep 30`),
		step("tasks.independent", "local", `echo fine > "$WEIR_OUTPUT_OUT"`),
		step("tasks.after", "flaky", `echo never > "$WEIR_OUTPUT_OUT"`, "tasks.crash"),
	}}
	for _, keepGoing := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep-going=%v", keepGoing), func(t *testing.T) {
			p := newProject(t)
			flaky := mustOpen(t, "crash", host.Options{Kind: "flaky"})
			rep, err := p.apply(t, plan, map[string]backend.Interface{"flaky": flaky, "local": local.New(0)}, 1, keepGoing)
			require.ErrorIs(t, err, exec.ErrFailed)
			crash := report(rep, "tasks.crash")
			assert.Equal(t, state.StatusFailed, crash.Status)
			assert.Contains(t, crash.Message, "backend plugin flaky exited while the step ran (exit status 3)")
			assert.Contains(t, crash.Message, "fatal: lost the connection to the scheduler")
			assert.Equal(t, exec.StatusSkipped, report(rep, "tasks.after").Status)
			if keepGoing {
				assert.Equal(t, state.StatusSucceeded, report(rep, "tasks.independent").Status)
			} else {
				assert.Equal(t, exec.StatusSkipped, report(rep, "tasks.independent").Status)
				assert.Contains(t, report(rep, "tasks.independent").Message, "an earlier step failed")
			}
			flaky.Close()
			assertNoZombies(t)
		})
	}
}

// TestApplyTimeoutOnAHungPlugin: a step's timeout cancels it; the plugin
// never answers Cancel, so it is killed, and the step fails as timed out.
func TestApplyTimeoutOnAHungPlugin(t *testing.T) {
	s := step("tasks.stuck", "hung", `sleep 30`)
	s.Run.Timeout = "300ms"
	plan := &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "p", Steps: []*schema.Step{s}}
	p := newProject(t)
	hung := mustOpen(t, "hang", host.Options{Kind: "hung", CancelMargin: 300 * time.Millisecond})
	start := time.Now()
	rep, err := exec.Apply(context.Background(), plan, exec.Options{
		ProjectDir: p.dir, WorkRoot: filepath.Join(p.dir, ".weir", "runs"), State: p.db, Store: p.store,
		Backends: map[string]backend.Interface{"hung": hung}, Grace: 200 * time.Millisecond,
		BaseEnv: map[string]string{"PATH": os.Getenv("PATH")}, RunID: "timeout",
	})
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Less(t, time.Since(start), 10*time.Second)
	r := report(rep, "tasks.stuck")
	assert.Equal(t, state.StatusFailed, r.Status)
	assert.Contains(t, r.Message, "timed out after 300ms")
	hung.Close()
	assertNoZombies(t)
}
