package local

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/backend"
)

func task(t *testing.T, script string) *backend.Task {
	dir := t.TempDir()
	return &backend.Task{RunID: "r", Step: "tasks.x", Argv: []string{"sh", "-c", script}, WorkDir: dir, Dir: dir,
		Env: map[string]string{"PATH": os.Getenv("PATH")}, LogPath: filepath.Join(dir, "log.txt")}
}

// watch runs the task to its end and returns the lines Watch handed out,
// with the time each came.
func watch(t *testing.T, tk *backend.Task) ([]string, []time.Time, *backend.Result) {
	lines, times, res, _ := watchOn(t, New(0), tk)
	return lines, times, res
}

func watchOn(t *testing.T, b *Backend, tk *backend.Task) ([]string, []time.Time, *backend.Result, string) {
	id, err := b.Submit(context.Background(), tk)
	require.NoError(t, err)
	t.Cleanup(func() { // what the task left running in its group
		pid, _, _ := strings.Cut(id, "-")
		if n, err := strconv.Atoi(pid); err == nil {
			signalGroup(n, syscall.SIGKILL)
		}
	})
	var lines []string
	var times []time.Time
	res, err := b.Watch(context.Background(), id, func(e backend.Event) {
		if e.Line != "" {
			lines = append(lines, e.Line)
			times = append(times, time.Now())
		}
	})
	require.NoError(t, err)
	return lines, times, res, id
}

func TestOutputGoesToTheLogAndToWatch(t *testing.T) {
	tk := task(t, `echo one; echo two >&2; echo; printf 'no newline'; exit 3`)
	lines, _, res := watch(t, tk)
	assert.Equal(t, []string{"one", "two", "no newline"}, lines)
	assert.Equal(t, backend.StateFailed, res.State)
	assert.Equal(t, 3, res.ExitCode)
	b, err := os.ReadFile(tk.LogPath)
	require.NoError(t, err)
	assert.Equal(t, "one\ntwo\n\nno newline", string(b))
}

func TestWatchStreamsWhileTheTaskRuns(t *testing.T) {
	tk := task(t, `echo first; sleep 1; echo second`)
	start := time.Now()
	lines, times, res := watch(t, tk)
	end := time.Now()
	assert.Equal(t, backend.StateSucceeded, res.State)
	require.Equal(t, []string{"first", "second"}, lines)
	assert.Less(t, times[0].Sub(start), end.Sub(start)-300*time.Millisecond, "the first line comes while the task runs")
}

func TestLongLinesComeInPieces(t *testing.T) {
	tk := task(t, `head -c 2500000 /dev/zero | tr '\0' x; echo; echo after`)
	lines, _, res := watch(t, tk)
	assert.Equal(t, backend.StateSucceeded, res.State)
	require.Len(t, lines, 4)
	assert.Len(t, lines[0], maxLine)
	assert.Len(t, lines[1], maxLine)
	assert.Equal(t, strings.Repeat("x", 2500000-2*maxLine), lines[2])
	assert.Equal(t, "after", lines[3])
}

func TestStdinIsEmpty(t *testing.T) {
	tk := task(t, `n=$(wc -c); echo "stdin $n"`)
	lines, _, res := watch(t, tk)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.Equal(t, []string{"stdin 0"}, lines)
	// The shared stdin survives its processes.
	lines, _, _ = watch(t, tk)
	assert.Equal(t, []string{"stdin 0"}, lines)
}

func TestSilentTaskMakesNoLog(t *testing.T) {
	tk := task(t, `true`)
	lines, _, res := watch(t, tk)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.Empty(t, lines)
	assert.NoFileExists(t, tk.LogPath)
}

// TestBackgroundChildDoesNotHoldWatch: a child left running with the
// task's output open does not keep Watch waiting for ever.
func TestBackgroundChildDoesNotHoldWatch(t *testing.T) {
	tk := task(t, `echo started; (sleep 30; echo late) & exit 0`)
	start := time.Now()
	lines, _, res := watch(t, tk)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.Equal(t, []string{"started"}, lines)
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestLeftRunning(t *testing.T) {
	b := New(0)
	for _, c := range []struct {
		script string
		left   bool
	}{
		{`true`, false},
		{`echo hi; exit 1`, false},
		{`sleep 30 >/dev/null 2>&1 &`, true},  // in the group, output closed
		{`(setsid sleep 3 &) ; exit 0`, true}, // out of the group, output open
	} {
		if strings.Contains(c.script, "setsid") {
			if _, err := exec.LookPath("setsid"); err != nil {
				continue
			}
		}
		_, _, _, id := watchOn(t, b, task(t, c.script))
		assert.Equal(t, c.left, b.LeftRunning(id), c.script)
		assert.False(t, b.LeftRunning(id), "answered once")
	}
}

// TestProgramFoundAgainAfterItMoves: a program found once and then removed
// is reported missing, and found again where it is now.
func TestProgramFoundAgainAfterItMoves(t *testing.T) {
	b := New(0)
	dir1, dir2 := t.TempDir(), t.TempDir()
	script := []byte("#!/bin/sh\necho here\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir1, "weir-test-prog"), script, 0o755))
	tk := task(t, "")
	tk.Argv = []string{"weir-test-prog"}
	tk.Env["PATH"] = dir1 + ":" + dir2 + ":" + os.Getenv("PATH")
	lines, _, res, _ := watchOn(t, b, tk)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.Equal(t, []string{"here"}, lines)

	require.NoError(t, os.Rename(filepath.Join(dir1, "weir-test-prog"), filepath.Join(dir2, "weir-test-prog")))
	_, err := b.Submit(context.Background(), tk)
	var nf *NotFoundError
	require.ErrorAs(t, err, &nf)
	lines, _, res, _ = watchOn(t, b, tk)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.Equal(t, []string{"here"}, lines)
}

// TestExitBySignal: a process killed by a signal fails with the signal's
// name and no exit code.
func TestExitBySignal(t *testing.T) {
	_, _, res := watch(t, task(t, `kill -TERM $$`))
	assert.Equal(t, backend.StateFailed, res.State)
	assert.Equal(t, -1, res.ExitCode)
	assert.Equal(t, "killed by signal terminated", res.Message)
}

// TestMissingFolder: a task whose folder is gone is refused naming the
// folder, not its program.
func TestMissingFolder(t *testing.T) {
	tk := task(t, `true`)
	tk.Dir = filepath.Join(tk.Dir, "gone")
	_, err := New(0).Submit(context.Background(), tk)
	require.Error(t, err)
	var nf *NotFoundError
	assert.False(t, errors.As(err, &nf), "the program is there: %v", err)
	assert.Contains(t, err.Error(), tk.Dir)
}

// TestArgvAsGiven: the process sees its argv as the task gives it, the
// program's name first as written, not the path it was found at; and
// exactly the task's environment.
func TestArgvAsGiven(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("reads the process's argv from /proc")
	}
	tk := task(t, "")
	tk.Argv = []string{"sh", "-c", `tr '\0' '|' </proc/$$/cmdline; echo; env | sort`, "a b"}
	tk.Env["ONLY"] = "this"
	lines, _, res := watch(t, tk)
	assert.Equal(t, backend.StateSucceeded, res.State)
	assert.Equal(t, []string{"sh|-c|" + tk.Argv[2] + "|a b|", "ONLY=this", "PATH=" + os.Getenv("PATH"), "PWD=" + tk.Dir}, lines)
}
