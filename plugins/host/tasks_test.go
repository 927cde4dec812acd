package host_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/host"
	"weir.dev/weir/plugins/internal/wire"
	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/runtime/backend"
)

// tasksModes are the two ways of carrying the Tasks stream: the SDK's tasks
// socket, and gRPC (the SDK's server without the socket).
var tasksModes = []struct{ mode, transport string }{{"local", "socket"}, {"grpctasks", "tasks"}}

// eachTasksMode runs f against a plugin carrying its tasks each way.
func eachTasksMode(t *testing.T, f func(t *testing.T, p *host.Plugin)) {
	for _, m := range tasksModes {
		t.Run(m.transport, func(t *testing.T) {
			p := mustOpen(t, m.mode, host.Options{})
			f(t, p)
			assert.Equal(t, m.transport, host.Transport(p))
		})
	}
}

// TestTasksManyConcurrent runs 60 tasks at once over the Tasks stream:
// each gets its own lines, in order, and its own result.
func TestTasksManyConcurrent(t *testing.T) { eachTasksMode(t, testTasksManyConcurrent) }

func testTasksManyConcurrent(t *testing.T, p *host.Plugin) {
	ctx := context.Background()
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		tk := task(t, fmt.Sprintf("tasks.t%d", i), fmt.Sprintf(`for j in 1 2 3 4 5; do echo "task %d line $j"; done; exit %d`, i, i%3))
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := p.Submit(ctx, tk)
			if !assert.NoError(t, err) {
				return
			}
			var lines []string
			var states []backend.State
			res, err := p.Watch(ctx, id, func(e backend.Event) {
				if e.Line != "" {
					lines = append(lines, e.Line)
				}
				if e.State != "" {
					states = append(states, e.State)
				}
			})
			if !assert.NoError(t, err) {
				return
			}
			want := []string{}
			for j := 1; j <= 5; j++ {
				want = append(want, fmt.Sprintf("task %d line %d", i, j))
			}
			assert.Equal(t, want, lines, "task %d", i)
			assert.Equal(t, i%3, res.ExitCode, "task %d", i)
			if i%3 == 0 {
				assert.Equal(t, backend.StateSucceeded, res.State, "task %d", i)
			} else {
				assert.Equal(t, backend.StateFailed, res.State, "task %d", i)
			}
			assert.Equal(t, res.State, states[len(states)-1], "task %d: the final state is the result's", i)
		}()
	}
	wg.Wait()
}

// TestTasksSlowWatcher: a task whose watcher does not take its events holds
// up no other task on the shared stream, and gets them, in order, once it
// takes them again. (The local backend drops lines its own Watch does not
// read fast enough, so the count of lines is not checked.)
func TestTasksSlowWatcher(t *testing.T) { eachTasksMode(t, testTasksSlowWatcher) }

func testTasksSlowWatcher(t *testing.T, p *host.Plugin) {
	ctx := context.Background()
	noisy := task(t, "tasks.noisy", `i=0; while [ $i -lt 25 ]; do seq $((i*40+1)) $((i*40+40)); i=$((i+1)); sleep 0.02; done`)
	id, err := p.Submit(ctx, noisy)
	require.NoError(t, err)
	release := make(chan struct{})
	var got []string
	noisyDone := make(chan *backend.Result, 1)
	go func() {
		res, err := p.Watch(ctx, id, func(e backend.Event) {
			if e.Line != "" {
				if len(got) == 0 {
					<-release // stuck on its first line
				}
				got = append(got, e.Line)
			}
		})
		assert.NoError(t, err)
		noisyDone <- res
	}()
	for i := range 5 {
		id, err := p.Submit(ctx, task(t, "tasks.quick", "echo quick "+strconv.Itoa(i)))
		require.NoError(t, err)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := p.Watch(wctx, id, nil)
		cancel()
		require.NoError(t, err, "a quick task's watch waited for the stuck one")
		assert.Equal(t, backend.StateSucceeded, res.State)
	}
	close(release)
	res := <-noisyDone
	assert.Equal(t, backend.StateSucceeded, res.State)
	require.NotEmpty(t, got)
	assert.Equal(t, "1", got[0])
	last := 0
	for _, l := range got {
		n, err := strconv.Atoi(l)
		require.NoError(t, err)
		require.Greater(t, n, last, "lines out of order")
		last = n
	}
}

// TestTasksWatchContextAndCancel: ending one Watch's context ends only that
// watch (the task runs on and a new Watch follows it), and Cancel stops one
// task of several on the stream, also right after its Submit, before the
// plugin has said its ID.
func TestTasksWatchContextAndCancel(t *testing.T) {
	eachTasksMode(t, testTasksWatchContextAndCancel)
}

func testTasksWatchContextAndCancel(t *testing.T, p *host.Plugin) {
	ctx := context.Background()
	other := task(t, "tasks.other", `sleep 1; echo other done`)
	otherID, err := p.Submit(ctx, other)
	require.NoError(t, err)
	otherDone := make(chan *backend.Result, 1)
	go func() {
		res, err := p.Watch(ctx, otherID, nil)
		assert.NoError(t, err)
		otherDone <- res
	}()

	rewatched := task(t, "tasks.rewatched", `echo first; sleep 1; echo second; echo out > "$WORK/out"`)
	id, err := p.Submit(ctx, rewatched)
	require.NoError(t, err)
	wctx, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = p.Watch(wctx, id, nil)
	stop()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var lines []string
	res, err := p.Watch(ctx, id, func(e backend.Event) {
		if e.Line != "" {
			lines = append(lines, e.Line)
		}
	})
	require.NoError(t, err)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.Contains(t, lines, "second")
	b, err := os.ReadFile(filepath.Join(rewatched.WorkDir, "out"))
	require.NoError(t, err, "the task ran to its end")
	assert.Equal(t, "out\n", string(b))

	cancelled := task(t, "tasks.cancelled", `echo started; exec sleep 30`)
	cid, err := p.Submit(ctx, cancelled)
	require.NoError(t, err)
	started := make(chan struct{})
	cancelDone := make(chan *backend.Result, 1)
	go func() {
		var once sync.Once
		res, err := p.Watch(ctx, cid, func(e backend.Event) {
			if e.Line == "started" {
				once.Do(func() { close(started) })
			}
		})
		assert.NoError(t, err)
		cancelDone <- res
	}()
	<-started
	require.NoError(t, p.Cancel(ctx, cid, time.Second))
	res = <-cancelDone
	assert.Equal(t, backend.StateCancelled, res.State)

	atOnce := task(t, "tasks.cancelled-at-once", `exec sleep 30`)
	aid, err := p.Submit(ctx, atOnce)
	require.NoError(t, err)
	require.NoError(t, p.Cancel(ctx, aid, time.Second))
	res, err = p.Watch(ctx, aid, nil)
	require.NoError(t, err)
	assert.Equal(t, backend.StateCancelled, res.State)

	res = <-otherDone
	assert.Equal(t, backend.StateSucceeded, res.State, "cancelling one task left the other alone")
}

// TestTasksPluginDies: the plugin dies with several tasks in flight on the
// shared stream. Each fails with the plugin's exit and the end of its
// stderr; no step process outlives it; nothing is left unreaped; and the
// next Submit starts the plugin again, with a new stream.
func TestTasksPluginDies(t *testing.T) {
	p := mustOpen(t, "crash", host.Options{})
	pid := p.Pid()
	sock, _ := host.TasksSocket(p)
	require.NotEmpty(t, sock)
	ctx := context.Background()
	var tasks []*backend.Task
	var ids []string
	for i := range 4 {
		name := "tasks.waiting" + strconv.Itoa(i)
		if i == 3 {
			name = "tasks.crash"
		}
		tk := task(t, name, `echo $$ > "$WORK/pid"; echo running; exec sleep 30`)
		id, err := p.Submit(ctx, tk)
		require.NoError(t, err)
		tasks, ids = append(tasks, tk), append(ids, id)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Watch(ctx, id, nil)
			if !assert.NoError(t, err) {
				return
			}
			assert.Equal(t, backend.StateFailed, res.State)
			assert.Equal(t, -1, res.ExitCode)
			assert.Contains(t, res.Message, "backend plugin test exited while the step ran (exit status 3)")
			assert.Contains(t, res.Message, "fatal: lost the connection to the scheduler")
		}()
	}
	wg.Wait()
	assertGone(t, pid, "the plugin process")
	for _, tk := range tasks {
		b, err := os.ReadFile(filepath.Join(tk.WorkDir, "pid"))
		require.NoError(t, err)
		stepPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		assertGone(t, stepPid, "the step's process "+tk.Step)
	}
	assertNoZombies(t)

	id, err := p.Submit(ctx, task(t, "tasks.after", `echo fine`))
	require.NoError(t, err)
	res, err := p.Watch(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.NotEqual(t, pid, p.Pid())
	assert.Equal(t, "socket", host.Transport(p))
	assert.NoDirExists(t, filepath.Dir(sock), "the dead plugin's tasks socket is removed")
}

// TestTasksFallback: a plugin that says it serves Tasks but answers
// UNIMPLEMENTED gets the task again with Run, and every task after it.
func TestTasksFallback(t *testing.T) {
	p := mustOpen(t, "tasks-unimplemented", host.Options{})
	assert.Equal(t, "tasks", host.Transport(p), "the plugin says it serves Tasks")
	ctx := context.Background()
	for i := range 3 {
		id, err := p.Submit(ctx, task(t, "tasks.x", "echo hello "+strconv.Itoa(i)))
		require.NoError(t, err)
		var lines []string
		res, err := p.Watch(ctx, id, func(e backend.Event) {
			if e.Line != "" {
				lines = append(lines, e.Line)
			}
		})
		require.NoError(t, err)
		assert.Equal(t, backend.StateSucceeded, res.State)
		assert.Equal(t, []string{"hello " + strconv.Itoa(i)}, lines)
		assert.Equal(t, "run", host.Transport(p))
	}
}

// TestTasksSubmitError: a task the backend refuses fails with the backend's
// message: from Submit while Weir waits for the plugin's answer (the first
// task on a gRPC stream), else from Watch as a *backend.SubmitError. The
// stream goes on serving the next task.
func TestTasksSubmitError(t *testing.T) {
	eachTasksMode(t, func(t *testing.T, p *host.Plugin) {
		ctx := context.Background()
		refused := func(name string) error {
			bad := task(t, name, "true")
			bad.Argv = []string{"/no/such/program-here"}
			id, err := p.Submit(ctx, bad)
			if err != nil {
				return err
			}
			res, err := p.Watch(ctx, id, nil)
			require.Nil(t, res)
			var se *backend.SubmitError
			require.ErrorAs(t, err, &se)
			return err
		}
		for i := range 2 {
			err := refused("tasks.bad" + strconv.Itoa(i))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "/no/such/program-here")
			id, err := p.Submit(ctx, task(t, "tasks.good", "true"))
			require.NoError(t, err)
			res, err := p.Watch(ctx, id, nil)
			require.NoError(t, err)
			assert.Equal(t, backend.StateSucceeded, res.State)
		}
	})
}

// TestTasksSocketRefusesStrangers: a connection to the tasks socket without
// the token Describe gave is closed unanswered, and the plugin goes on
// serving Weir's.
func TestTasksSocketRefusesStrangers(t *testing.T) {
	p := mustOpen(t, "local", host.Options{})
	path, token := host.TasksSocket(p)
	require.NotEmpty(t, path)
	require.NotEmpty(t, token)
	fi, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "only its user may reach the socket")
	for _, tok := range []string{"", "wrong", token + "x"} {
		c, err := net.Dial("unix", path)
		require.NoError(t, err)
		f := wire.NewFrames(c)
		require.NoError(t, f.Write(&pb.TaskRequest{Request: &pb.TaskRequest_Open{Open: &pb.OpenTasks{Token: tok}}}))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		err = f.Read(&pb.TaskEvents{})
		assert.ErrorIs(t, err, io.EOF, "token %q: closed unanswered", tok)
		c.Close()
	}
	res := runTask(t, p, task(t, "tasks.after", "echo fine"))
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.Equal(t, "socket", host.Transport(p))
}

// TestTasksSocketFallback: a plugin whose tasks socket cannot be reached
// gets its tasks on the gRPC stream.
func TestTasksSocketFallback(t *testing.T) {
	p := mustOpen(t, "badsocket", host.Options{})
	for i := range 2 {
		res := runTask(t, p, task(t, "tasks.x", "echo "+strconv.Itoa(i)))
		assert.Equal(t, backend.StateSucceeded, res.State)
		assert.Equal(t, "tasks", host.Transport(p))
	}
}

// runTask submits a task and watches it to its end.
func runTask(t *testing.T, p *host.Plugin, tk *backend.Task) *backend.Result {
	t.Helper()
	ctx := context.Background()
	id, err := p.Submit(ctx, tk)
	require.NoError(t, err)
	res, err := p.Watch(ctx, id, nil)
	require.NoError(t, err)
	return res
}

// TestLeftRunningOverTheProtocol: the plugin's result says whether the task
// left processes running, over every way a task's events come; a plugin
// whose backend cannot tell says nothing, which counts as left running.
func TestLeftRunningOverTheProtocol(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"local", "notasks", "norun"} {
		p := mustOpen(t, mode, host.Options{})
		for _, c := range []struct {
			script string
			left   bool
		}{
			{`true`, false},
			{`echo hi; exit 1`, false},
			{`sleep 3 >/dev/null 2>&1 &`, true},
		} {
			id, err := p.Submit(ctx, task(t, "tasks.x", c.script))
			require.NoError(t, err)
			_, err = p.Watch(ctx, id, nil)
			require.NoError(t, err)
			assert.Equal(t, c.left, p.LeftRunning(id), "%s (%s)", c.script, host.Transport(p))
			assert.True(t, p.LeftRunning(id), "asked again: unknown")
		}
	}
	p := mustOpen(t, "instant", host.Options{})
	id, err := p.Submit(ctx, &backend.Task{Argv: []string{"true"}})
	require.NoError(t, err)
	_, err = p.Watch(ctx, id, nil)
	require.NoError(t, err)
	assert.True(t, p.LeftRunning(id), "a backend that cannot tell")
}
