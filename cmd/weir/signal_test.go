package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/state"
)

// weirCmd runs this test binary as weir.
func weirCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "WEIR_TEST_MAIN=1", "NO_COLOR=1")
	return cmd
}

// wideProject writes a project of n short steps in layers of width w.
func wideProject(t *testing.T, n, w int, sleep string) string {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("project: \"kill\"\nowner: \"team:ml\"\n")
	for i := 0; i < n; i++ {
		// Each command differs, so no two steps share a cache key.
		fmt.Fprintf(&b, "tasks: s%02d: {command: [\"sh\", \"-c\", \"sleep %s; echo %d > $WEIR_OUTPUT_OUT\"], outputs: [\"out\"]", i, sleep, i)
		if i >= w {
			fmt.Fprintf(&b, ", needs: [\"tasks.s%02d\"]", i-w)
		}
		b.WriteString("}\n")
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "weir.cue"), []byte(b.String()), 0o644))
	return dir
}

// TestKillResume kills weir apply with SIGKILL at random moments, again and
// again: the state stays consistent, no temporary file is left in the
// store, and no step that finished ever runs again.
func TestKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; skipped with -short")
	}
	dir := wideProject(t, 16, 4, "0.3")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 6; i++ {
		cmd := weirCmd("apply", "--auto-approve", dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(150+rng.IntN(600)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		checkState(t, dir)
	}
	cmd := weirCmd("apply", "--auto-approve", dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	checkState(t, dir)
	// A killed writer's half-written blobs are cleared by the next apply.
	tmp, err := os.ReadDir(filepath.Join(dir, ".weir", "artifacts", "tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmp, "temporary files left in the artifact store")

	db, err := state.Open(context.Background(), filepath.Join(dir, ".weir", "state.db"))
	require.NoError(t, err)
	defer db.Close()
	runs, err := db.Runs(context.Background(), 0)
	require.NoError(t, err)
	succeeded := map[string]int{}
	for _, r := range runs {
		ex, err := db.Executions(context.Background(), r.ID)
		require.NoError(t, err)
		for _, e := range ex {
			if e.Status == state.StatusSucceeded {
				succeeded[e.Address]++
			}
		}
	}
	assert.Len(t, succeeded, 16)
	for addr, n := range succeeded {
		assert.Equal(t, 1, n, "%s finished %d times: a finished step ran again", addr, n)
	}
}

func checkState(t *testing.T, dir string) {
	t.Helper()
	db, err := state.Open(context.Background(), filepath.Join(dir, ".weir", "state.db"))
	if err != nil {
		if strings.Contains(err.Error(), "no such file") {
			return // killed before the state was created
		}
		t.Fatal(err)
	}
	defer db.Close()
	require.NoError(t, db.Check(context.Background()), "integrity check after a kill")
}

// TestInterrupt sends SIGINT mid-run: running steps are cancelled, weir
// exits 130, the run is recorded as cancelled, and the next apply resumes.
func TestInterrupt(t *testing.T) {
	dir := wideProject(t, 3, 1, "30")
	cmd := weirCmd("apply", "--auto-approve", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "tasks.s00: started") }, 20*time.Second, 20*time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, out.String())
	assert.Equal(t, 130, ee.ExitCode(), out.String())
	assert.Less(t, time.Since(start), 15*time.Second)
	assert.Contains(t, out.String(), "Apply cancelled")

	db, err := state.Open(context.Background(), filepath.Join(dir, ".weir", "state.db"))
	require.NoError(t, err)
	defer db.Close()
	runs, err := db.Runs(context.Background(), 1)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, state.StatusCancelled, runs[0].Status)
	ex, err := db.Executions(context.Background(), runs[0].ID)
	require.NoError(t, err)
	require.NotEmpty(t, ex)
	assert.Equal(t, state.StatusCancelled, ex[0].Status)
}
