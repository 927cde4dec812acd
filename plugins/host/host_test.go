package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/host"
	"weir.dev/weir/plugins/sdk/conformance"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// open starts this test binary as a plugin serving mode.
func open(t testing.TB, mode string, o host.Options) (*host.Plugin, error) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	if o.Kind == "" {
		o.Kind = "test"
	}
	o.Name = o.Kind
	o.Path = self
	o.Env = append(o.Env, pluginEnv+"="+mode)
	if o.StartTimeout == 0 {
		o.StartTimeout = 20 * time.Second
	}
	p, err := host.Open(context.Background(), o)
	if p != nil {
		t.Cleanup(func() { p.Close() })
	}
	return p, err
}

func mustOpen(t testing.TB, mode string, o host.Options) *host.Plugin {
	t.Helper()
	p, err := open(t, mode, o)
	require.NoError(t, err)
	return p
}

// TestConformanceOutOfProcess runs the conformance suite against the local
// backend served as a plugin process, its tasks on the tasks socket and on
// the gRPC stream: everything the executor relies on crosses the protocol.
func TestConformanceOutOfProcess(t *testing.T) {
	eachTasksMode(t, func(t *testing.T, p *host.Plugin) {
		conformance.Run(t, p, conformance.Options{})
	})
	assertNoZombies(t)
}

// TestConformanceWithoutRun: a plugin that answers Run and Tasks with
// UNIMPLEMENTED (they are optional) is driven with Submit and Watch, and
// passes the suite.
func TestConformanceWithoutRun(t *testing.T) {
	p := mustOpen(t, "norun", host.Options{})
	conformance.Run(t, p, conformance.Options{})
	assert.Equal(t, "submit", host.Transport(p))
}

// TestConformanceWithoutTasks: a plugin built before Tasks (its Describe
// does not say tasks_stream) is driven with Run, and passes the suite.
func TestConformanceWithoutTasks(t *testing.T) {
	p := mustOpen(t, "notasks", host.Options{})
	conformance.Run(t, p, conformance.Options{})
	assert.Equal(t, "run", host.Transport(p))
}

func TestDescribeAndConfigure(t *testing.T) {
	p := mustOpen(t, "local", host.Options{Settings: &schema.Backend{Kind: "local", GPUs: 3}})
	d, err := p.Describe(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "local", d.Name)
	assert.Equal(t, backend.ProtocolVersion, d.ProtocolVersion)
	assert.Equal(t, 3, d.GPUs, "Configure carried the spec's gpus to the plugin")
	assert.Equal(t, d, p.Description())
}

func TestLowerOverTheProtocol(t *testing.T) {
	p := mustOpen(t, "local", host.Options{})
	step := &schema.Step{Address: "tasks.x", Run: &schema.StepRun{Command: []string{"python3", "x.py"}, Code: "./x"}}
	task, err := p.Lower(context.Background(), step)
	require.NoError(t, err)
	assert.JSONEq(t, `{"argv":["python3","x.py"],"dir":"code"}`, string(task))

	step.Run.Workers = 4
	_, err = p.Lower(context.Background(), step)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "distributed training (4 workers) needs a cluster backend")
}

// TestLowerStepsOverTheProtocol lowers a plan's worth of steps in one
// LowerSteps call: each step gets what Lower gives it, a task or its own
// error, in order; steps whose JSON is more than one message holds go in
// several calls.
func TestLowerStepsOverTheProtocol(t *testing.T) {
	for _, mode := range []string{"local", "notasks"} {
		t.Run(mode, func(t *testing.T) {
			p := mustOpen(t, mode, host.Options{})
			var steps []*schema.Step
			// 5 MiB of steps, more than a gRPC server takes in one
			// message: at least 5 calls.
			env := map[string]schema.EnvVar{"BIG": {Value: strings.Repeat("v", 10<<10)}}
			for i := range 500 {
				s := &schema.Step{Address: fmt.Sprintf("tasks.t%d", i), Run: &schema.StepRun{Command: []string{"echo", strconv.Itoa(i)}, Env: env}}
				if i%100 == 7 {
					s.Run.Workers = 4
				}
				steps = append(steps, s)
			}
			tasks, errs, err := p.LowerSteps(context.Background(), steps)
			require.NoError(t, err)
			require.Len(t, tasks, len(steps))
			require.Len(t, errs, len(steps))
			for i, s := range steps {
				want, wantErr := p.Lower(context.Background(), s)
				if i%100 == 7 {
					require.Error(t, errs[i], s.Address)
					assert.Equal(t, wantErr.Error(), errs[i].Error())
					assert.Contains(t, errs[i].Error(), "distributed training (4 workers) needs a cluster backend")
					assert.Nil(t, tasks[i])
					continue
				}
				require.NoError(t, errs[i], s.Address)
				assert.JSONEq(t, string(want), string(tasks[i]), s.Address)
				assert.Contains(t, string(tasks[i]), fmt.Sprintf(`["echo","%d"]`, i))
			}
			assert.Equal(t, mode == "notasks", host.LowersOneByOne(p), "a plugin without LowerSteps gets a Lower call per step")
		})
	}
}

// TestLowerStepsPluginDies: a plugin that dies while it lowers fails the
// call as a whole, with its exit and the end of its stderr, whether it
// serves LowerSteps or gets a Lower call per step.
func TestLowerStepsPluginDies(t *testing.T) {
	for _, mode := range []string{"lowercrash", "lowercrash-old"} {
		t.Run(mode, func(t *testing.T) {
			p := mustOpen(t, mode, host.Options{})
			var steps []*schema.Step
			for _, a := range []string{"tasks.a", "tasks.crash", "tasks.b"} {
				steps = append(steps, &schema.Step{Address: a, Run: &schema.StepRun{Command: []string{"true"}}})
			}
			tasks, errs, err := p.LowerSteps(context.Background(), steps)
			require.Error(t, err)
			assert.Nil(t, tasks)
			assert.Nil(t, errs)
			assert.Contains(t, err.Error(), "exited (exit status 3)")
			assert.Contains(t, err.Error(), "fatal: out of lowering juice")
			assert.Equal(t, mode == "lowercrash-old", host.LowersOneByOne(p))
		})
	}
}

// TestLowerStepsBigAnswer: the answer to a LowerSteps call may be more
// than gRPC's default limit of 4 MiB (100 steps lowered to 100 KB each).
func TestLowerStepsBigAnswer(t *testing.T) {
	p := mustOpen(t, "fat", host.Options{})
	var steps []*schema.Step
	for i := range 100 {
		steps = append(steps, &schema.Step{Address: fmt.Sprintf("tasks.t%d", i), Run: &schema.StepRun{Command: []string{"true"}}})
	}
	tasks, errs, err := p.LowerSteps(context.Background(), steps)
	require.NoError(t, err)
	for i, s := range steps {
		require.NoError(t, errs[i], s.Address)
		var got struct{ Step, Padding string }
		require.NoError(t, json.Unmarshal(tasks[i], &got))
		assert.Equal(t, s.Address, got.Step)
		assert.Len(t, got.Padding, 100<<10)
	}
	assert.False(t, host.LowersOneByOne(p))
}

func TestServicesRefusedOverTheProtocol(t *testing.T) {
	p := mustOpen(t, "local", host.Options{})
	_, err := p.Deploy(context.Background(), &backend.Service{Name: "serving.x", Revision: "v1"})
	require.ErrorIs(t, err, backend.ErrUnsupported)
	assert.Contains(t, err.Error(), "does not host long-lived services")
}

func TestUnknownTask(t *testing.T) {
	p := mustOpen(t, "local", host.Options{})
	_, err := p.Watch(context.Background(), "7/123", nil)
	assert.ErrorIs(t, err, backend.ErrNotFound)
	_, err = p.Watch(context.Background(), "nonsense", nil)
	assert.ErrorIs(t, err, backend.ErrNotFound)
}

// task is a task running script in a fresh work folder.
func task(t *testing.T, step, script string) *backend.Task {
	work := t.TempDir()
	return &backend.Task{RunID: "r", Step: step, Attempt: 1, Argv: []string{"sh", "-c", script}, WorkDir: work, Dir: work,
		Env: map[string]string{"PATH": os.Getenv("PATH"), "WORK": work}, LogPath: filepath.Join(work, "log.txt")}
}

// TestPluginExitsMidStep: the plugin process dies while a step runs. The
// step fails with the plugin's exit and the end of its stderr; the step's
// own process does not outlive it; nothing is left unreaped; and the next
// Submit starts the plugin again.
func TestPluginExitsMidStep(t *testing.T) {
	p := mustOpen(t, "crash", host.Options{})
	pid := p.Pid()
	tk := task(t, "tasks.crash", `echo $$ > "$WORK/pid"; echo running; exec sleep 30`)
	ctx := context.Background()
	id, err := p.Submit(ctx, tk)
	require.NoError(t, err)
	start := time.Now()
	res, err := p.Watch(ctx, id, nil)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, backend.StateFailed, res.State)
	assert.Equal(t, -1, res.ExitCode)
	assert.Contains(t, res.Message, "backend plugin test exited while the step ran (exit status 3)")
	assert.Contains(t, res.Message, "fatal: lost the connection to the scheduler")

	assertGone(t, pid, "the plugin process")
	b, err := os.ReadFile(filepath.Join(tk.WorkDir, "pid"))
	require.NoError(t, err)
	stepPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	assertGone(t, stepPid, "the step's process")
	assertNoZombies(t)

	// The next task starts a new plugin process.
	tk = task(t, "tasks.after", `echo fine`)
	id, err = p.Submit(ctx, tk)
	require.NoError(t, err)
	res, err = p.Watch(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.NotEqual(t, pid, p.Pid())
}

// watchAway watches a task in a goroutine; its result comes on the channel.
func watchAway(t *testing.T, p *host.Plugin, id string) <-chan *backend.Result {
	watched := make(chan *backend.Result, 1)
	go func() {
		res, err := p.Watch(context.Background(), id, nil)
		assert.NoError(t, err)
		watched <- res
	}()
	return watched
}

// assertLost checks that a watched task failed with its killed plugin.
func assertLost(t *testing.T, watched <-chan *backend.Result) {
	t.Helper()
	select {
	case res := <-watched:
		assert.Equal(t, backend.StateFailed, res.State)
		assert.Contains(t, res.Message, "backend plugin test exited while the step ran")
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not end after the plugin was killed")
	}
}

// TestPluginHangsInSubmit: a task handed on without waiting for its ID,
// whose Submit hangs in the plugin, is cancelled as a hung Cancel is: once
// the grace period and CancelMargin are over, the plugin is killed and the
// task fails.
func TestPluginHangsInSubmit(t *testing.T) {
	p := mustOpen(t, "hang-submit", host.Options{CancelMargin: 500 * time.Millisecond})
	pid := p.Pid()
	ctx := context.Background()
	res := runTask(t, p, task(t, "tasks.fine", "true")) // the stream works
	require.Equal(t, backend.StateSucceeded, res.State)
	id, err := p.Submit(ctx, task(t, "tasks.stuck", "true"))
	require.NoError(t, err, "handed on without waiting")
	watched := watchAway(t, p, id)
	start := time.Now()
	err = p.Cancel(ctx, id, 200*time.Millisecond)
	took := time.Since(start)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not start task")
	assert.Contains(t, err.Error(), "killed the plugin")
	assert.GreaterOrEqual(t, took, 700*time.Millisecond, "killed before the deadline")
	assertLost(t, watched)
	assertGone(t, pid, "the hung plugin")
	assertNoZombies(t)
}

// TestPluginHangs: a plugin that never answers Cancel is killed once the
// grace period and the margin are over; the task's Watch ends failed.
func TestPluginHangs(t *testing.T) {
	p := mustOpen(t, "hang", host.Options{CancelMargin: 500 * time.Millisecond})
	pid := p.Pid()
	tk := task(t, "tasks.stuck", `echo $$ > "$WORK/pid"; exec sleep 30`)
	ctx := context.Background()
	id, err := p.Submit(ctx, tk)
	require.NoError(t, err)
	watched := watchAway(t, p, id)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	err = p.Cancel(ctx, id, 200*time.Millisecond)
	took := time.Since(start)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not stop task")
	assert.Contains(t, err.Error(), "killed the plugin")
	assert.GreaterOrEqual(t, took, 700*time.Millisecond, "killed before the deadline")
	assert.Less(t, took, 5*time.Second)
	assertLost(t, watched)
	assertGone(t, pid, "the hung plugin")
	b, err := os.ReadFile(filepath.Join(tk.WorkDir, "pid"))
	require.NoError(t, err)
	stepPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	assertGone(t, stepPid, "the step's process")
	assertNoZombies(t)
}

func TestHandshakeNotAPlugin(t *testing.T) {
	dir := t.TempDir()
	talker := filepath.Join(dir, "weir-backend-talker")
	require.NoError(t, os.WriteFile(talker, []byte("#!/bin/sh\necho hello, I am a shell script\nsleep 5\n"), 0o755))
	_, err := host.Open(context.Background(), host.Options{Kind: "talker", Path: talker, StartTimeout: 10 * time.Second})
	var he *host.HandshakeError
	require.ErrorAs(t, err, &he)
	assert.Contains(t, err.Error(), `backend plugin talker (`+talker+`) failed the plugin handshake: it printed "hello, I am a shell script" instead of the handshake line`)

	quitter := filepath.Join(dir, "weir-backend-quitter")
	require.NoError(t, os.WriteFile(quitter, []byte("#!/bin/sh\necho 'cannot read my config' >&2\nexit 4\n"), 0o755))
	_, err = host.Open(context.Background(), host.Options{Kind: "quitter", Path: quitter, StartTimeout: 10 * time.Second})
	require.ErrorAs(t, err, &he)
	assert.Contains(t, err.Error(), "it exited before the handshake (exit status 4)")
	assert.Contains(t, err.Error(), "cannot read my config")

	silent := filepath.Join(dir, "weir-backend-silent")
	require.NoError(t, os.WriteFile(silent, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755))
	_, err = host.Open(context.Background(), host.Options{Kind: "silent", Path: silent, StartTimeout: 500 * time.Millisecond})
	require.ErrorAs(t, err, &he)
	assert.Contains(t, err.Error(), "it did not complete the handshake within 500ms")
	assertNoZombies(t)
}

func TestHandshakeWrongMagicCookie(t *testing.T) {
	_, err := open(t, "cookie", host.Options{})
	var he *host.HandshakeError
	require.ErrorAs(t, err, &he)
	assert.Contains(t, err.Error(), "it exited before the handshake (exit status 1) (it is a plugin of another program: the magic cookie is not Weir's)")
	assert.Contains(t, err.Error(), "This binary is a plugin")
}

func TestProtocolVersionMismatch(t *testing.T) {
	_, err := open(t, "v2", host.Options{})
	var pe *host.ProtocolError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 2, pe.Plugin)
	assert.Equal(t, 1, pe.Weir)
	assert.Contains(t, err.Error(), "speaks plugin protocol version 2, but this weir speaks version 1")

	// A plugin that completes the handshake but describes itself with
	// another version is refused the same way.
	_, err = open(t, "describe-v2", host.Options{})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 2, pe.Plugin)
	assertNoZombies(t)
}

func TestChecksumMismatch(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	sum, err := host.FileSHA256(self)
	require.NoError(t, err)
	p, err := open(t, "local", host.Options{SHA256: "sha256:" + sum})
	require.NoError(t, err, "the right checksum is accepted")
	p.Close()

	want := "sha256:" + strings.Repeat("0", 64)
	_, err = open(t, "local", host.Options{SHA256: want})
	var ce *host.ChecksumError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, want, ce.Want)
	assert.Equal(t, "sha256:"+sum, ce.Got)
	assert.Contains(t, err.Error(), "has changed since weir.lock pinned it")
	assert.Contains(t, err.Error(), "accept it with: weir init -upgrade")
}

func TestCloseStopsEverything(t *testing.T) {
	p := mustOpen(t, "local", host.Options{})
	pid := p.Pid()
	tk := task(t, "tasks.long", `echo $$ > "$WORK/pid"; exec sleep 30`)
	id, err := p.Submit(context.Background(), tk)
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	require.NoError(t, p.Close())
	assert.Less(t, time.Since(start), 5*time.Second)
	assertGone(t, pid, "the plugin")
	b, _ := os.ReadFile(filepath.Join(tk.WorkDir, "pid"))
	stepPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	assertGone(t, stepPid, "the step's process")
	_, err = p.Submit(context.Background(), tk)
	assert.ErrorContains(t, err, "closed")
	_ = id
	assertNoZombies(t)
}

// assertGone waits for a process to be gone (reaped by whoever is its
// parent).
func assertGone(t *testing.T, pid int, what string) {
	t.Helper()
	if pid <= 0 {
		t.Errorf("%s: no pid", what)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if st := procState(pid); st == "Z" && ppid(pid) != os.Getpid() {
			return // a zombie of another parent (init reaps it)
		}
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) is still there (state %s)", what, pid, procState(pid))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func procState(pid int) string {
	if f := procStat(pid); len(f) > 0 {
		return f[0]
	}
	return ""
}

func ppid(pid int) int {
	if f := procStat(pid); len(f) > 1 {
		n, _ := strconv.Atoi(f[1])
		return n
	}
	return 0
}

// assertNoZombies fails if a child of this process has exited and not been
// reaped.
func assertNoZombies(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return // no /proc here
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		var zombies []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if f := procStat(pid); len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(os.Getpid()) {
				zombies = append(zombies, pid)
			}
		}
		if len(zombies) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("zombie children left: %v", zombies)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
