package state_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/state"
)

// The test binary re-executes itself as a helper process when
// WEIR_STATE_HELPER names a helper; WEIR_STATE_DB is the database.
func TestMain(m *testing.M) {
	if h := os.Getenv("WEIR_STATE_HELPER"); h != "" {
		os.Exit(runHelper(h, os.Getenv("WEIR_STATE_DB")))
	}
	os.Exit(m.Run())
}

func runHelper(name, path string) int {
	ctx := context.Background()
	db, err := state.Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		return 2
	}
	defer db.Close()
	switch name {
	case "hold-lock":
		// Take the lock, say so, hold it until stdin closes.
		unlock, err := db.Lock(ctx, state.LockInfo{Operation: "weir apply", User: "alice"})
		if err != nil {
			fmt.Println("lock:", err)
			return 3
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		if err := unlock(); err != nil {
			fmt.Println("unlock:", err)
			return 4
		}
		return 0
	case "race-lock":
		// Wait for the start file, try once, hold a winning lock a while.
		start := os.Getenv("WEIR_STATE_START")
		for {
			if _, err := os.Stat(start); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		unlock, err := db.Lock(ctx, state.LockInfo{Operation: "weir apply"})
		var le *state.LockedError
		switch {
		case err == nil:
			fmt.Println("won")
			time.Sleep(1500 * time.Millisecond)
			unlock()
		case errors.As(err, &le):
			fmt.Println("lost")
		default:
			fmt.Println("error:", err)
			return 5
		}
		return 0
	case "writer":
		return writer(ctx, db)
	}
	fmt.Println("unknown helper", name)
	return 1
}

const (
	writerOutputs = 5
	writerParams  = 20
	writerMetrics = 50
)

// writer records succeeded executions with many rows each, forever, so that
// a kill lands in the middle of FinishExecution's transaction.
func writer(ctx context.Context, db *state.DB) int {
	run := fmt.Sprintf("run-%d", os.Getpid())
	if err := db.BeginRun(ctx, state.Run{ID: run, Command: "weir apply"}); err != nil {
		fmt.Println("begin:", err)
		return 2
	}
	for i := 0; ; i++ {
		id, err := db.StartExecution(ctx, state.Execution{RunID: run, Address: fmt.Sprintf("training.m.trial[%d]", i), CacheKey: fmt.Sprintf("%s-%d", run, i)})
		if err != nil {
			fmt.Println("start:", err)
			return 2
		}
		res := state.ExecutionResult{Status: state.StatusSucceeded, Params: map[string]any{}}
		for j := range writerOutputs {
			res.Outputs = append(res.Outputs, state.Output{Name: fmt.Sprint("out", j), Digest: digest(fmt.Sprint(run, i, j)), Size: int64(j)})
		}
		for j := range writerParams {
			res.Params[fmt.Sprint("p", j)] = strings.Repeat("v", 100)
		}
		for j := range writerMetrics {
			res.Metrics = append(res.Metrics, state.Metric{Name: "loss", Value: float64(j), Step: int64(j)})
		}
		if err := db.FinishExecution(ctx, id, res); err != nil {
			fmt.Println("finish:", err)
			return 2
		}
		if err := db.Update(ctx, func(tx *state.Tx) error {
			mv, err := tx.AddModelVersion(state.ModelVersion{Model: "m", ArtifactDigest: res.Outputs[0].Digest, ExecutionID: id, RunID: run, Status: state.ModelCandidate})
			if err != nil {
				return err
			}
			_, err = tx.AppendAudit(state.Event{Actor: "weir", Action: "model.register", Subject: fmt.Sprintf("m v%d", mv.Version)})
			return err
		}); err != nil {
			fmt.Println("register:", err)
			return 2
		}
		if i == 0 {
			fmt.Println("ready")
		}
	}
}

func helper(t *testing.T, name, path string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"WEIR_STATE_HELPER=" + name, "WEIR_STATE_DB=" + path}, env...)...)
	return cmd
}

// waitLine starts cmd and waits for it to print want.
func waitLine(t *testing.T, cmd *exec.Cmd, want string) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "helper said %q", line)
	require.Equal(t, want, strings.TrimSpace(line))
}

func TestLockInProcess(t *testing.T) {
	db, path := openDB(t)
	info := state.LockInfo{ID: "lock-1", Operation: "weir apply", User: "alice", Host: "laptop", PID: 123, Created: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)}
	unlock, err := db.Lock(ctx, info)
	require.NoError(t, err)

	start := time.Now()
	_, err = db.Lock(ctx, state.NewLockInfo("weir plan"))
	assert.Less(t, time.Since(start), time.Second, "a second Lock fails at once")
	var le *state.LockedError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, info, le.Holder)
	assert.False(t, le.Stale, "another host: cannot tell")
	assert.Equal(t, "state "+path+" is locked by alice@laptop (pid 123, weir apply) since 2026-03-01T09:30:00Z; run `weir state unlock` if that process is gone", err.Error())

	h, err := db.LockHolder(ctx)
	require.NoError(t, err)
	assert.Equal(t, &info, h)

	require.NoError(t, unlock())
	require.NoError(t, unlock(), "unlock is idempotent")
	h, err = db.LockHolder(ctx)
	require.NoError(t, err)
	assert.Nil(t, h)

	// ForceUnlock takes anyone's lock; the old holder's unlock then says so.
	unlock, err = db.Lock(ctx, state.NewLockInfo("weir apply"))
	require.NoError(t, err)
	held, err := db.ForceUnlock(ctx)
	require.NoError(t, err)
	assert.Equal(t, "weir apply", held.Operation)
	_, err = db.ForceUnlock(ctx)
	assert.ErrorIs(t, err, state.ErrNotLocked)
	unlock2, err := db.Lock(ctx, state.NewLockInfo("weir apply"))
	require.NoError(t, err)
	err = unlock()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already released")
	h, _ = db.LockHolder(ctx)
	require.NotNil(t, h, "the old holder did not release the new holder's lock")
	require.NoError(t, unlock2())

	_, err = db.Lock(ctx, state.LockInfo{})
	assert.Error(t, err, "an operation is required")
}

func TestLockStaleHolder(t *testing.T) {
	db, _ := openDB(t)
	host, _ := os.Hostname()
	_, err := db.Lock(ctx, state.LockInfo{Operation: "weir apply", User: "bob", Host: host, PID: deadPID(t)})
	require.NoError(t, err)
	_, err = db.Lock(ctx, state.NewLockInfo("weir apply"))
	var le *state.LockedError
	require.ErrorAs(t, err, &le)
	assert.True(t, le.Stale)
	assert.Contains(t, err.Error(), "no longer running, so the lock is stale: run `weir state unlock`")
}

func TestLockAcrossProcesses(t *testing.T) {
	db, path := openDB(t)
	cmd := helper(t, "hold-lock", path)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	waitLine(t, cmd, "locked")

	_, err = db.Lock(ctx, state.NewLockInfo("weir apply"))
	var le *state.LockedError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, cmd.Process.Pid, le.Holder.PID)
	assert.Equal(t, "alice", le.Holder.User)
	assert.False(t, le.Stale, "the holder is alive")
	assert.Contains(t, err.Error(), fmt.Sprintf("locked by alice@%s (pid %d, weir apply)", le.Holder.Host, cmd.Process.Pid))

	// The holder releases: we can lock.
	stdin.Close()
	require.NoError(t, cmd.Wait())
	unlock, err := db.Lock(ctx, state.NewLockInfo("weir apply"))
	require.NoError(t, err)
	require.NoError(t, unlock())

	// A holder killed with the lock: the lock stays, reported stale, until
	// ForceUnlock.
	cmd = helper(t, "hold-lock", path)
	_, err = cmd.StdinPipe()
	require.NoError(t, err)
	waitLine(t, cmd, "locked")
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	_, err = db.Lock(ctx, state.NewLockInfo("weir apply"))
	require.ErrorAs(t, err, &le)
	assert.True(t, le.Stale)
	held, err := db.ForceUnlock(ctx)
	require.NoError(t, err)
	assert.Equal(t, cmd.Process.Pid, held.PID)
	unlock, err = db.Lock(ctx, state.NewLockInfo("weir apply"))
	require.NoError(t, err)
	require.NoError(t, unlock())
}

func TestLockRaceOneWinner(t *testing.T) {
	_, path := openDB(t)
	start := filepath.Join(t.TempDir(), "start")
	const n = 6
	results := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		cmd := helper(t, "race-lock", path, "WEIR_STATE_START="+start)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := io.ReadAll(out)
			cmd.Wait()
			results[i] = strings.TrimSpace(string(b))
		}()
	}
	time.Sleep(300 * time.Millisecond) // let them all open the database
	require.NoError(t, os.WriteFile(start, nil, 0o644))
	wg.Wait()
	won := 0
	for _, r := range results {
		require.Contains(t, []string{"won", "lost"}, r)
		if r == "won" {
			won++
		}
	}
	assert.Equal(t, 1, won, "results: %v", results)
}

// TestKilledWriter kills a process at random moments while it records
// executions and model versions, and checks after each kill that the file is
// sound and that nothing is half-recorded.
func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	db, path := openDB(t)
	db.Close()
	r := raw(t, path)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 8 {
		cmd := helper(t, "writer", path)
		waitLine(t, cmd, "ready")
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill()) // SIGKILL
		cmd.Wait()

		db, err := state.Open(ctx, path)
		require.NoError(t, err, "round %d", round)
		require.NoError(t, db.Check(ctx), "round %d: integrity_check", round)
		var ok string
		require.NoError(t, r.QueryRow(`PRAGMA integrity_check`).Scan(&ok))
		require.Equal(t, "ok", ok)

		// No half-recorded execution: a succeeded one has all its rows,
		// any other none.
		assert.Zero(t, count(t, r, `SELECT count(*) FROM executions e WHERE e.status = 'succeeded' AND (
			(SELECT count(*) FROM outputs WHERE execution_id = e.id) != ? OR
			(SELECT count(*) FROM params WHERE execution_id = e.id) != ? OR
			(SELECT count(*) FROM metrics WHERE execution_id = e.id) != ?)`, writerOutputs, writerParams, writerMetrics), "round %d", round)
		assert.Zero(t, count(t, r, `SELECT count(*) FROM executions e WHERE e.status != 'succeeded' AND (
			EXISTS (SELECT 1 FROM outputs WHERE execution_id = e.id) OR
			EXISTS (SELECT 1 FROM params WHERE execution_id = e.id) OR
			EXISTS (SELECT 1 FROM metrics WHERE execution_id = e.id))`), "round %d", round)
		// Every artifact an output names is recorded.
		assert.Zero(t, count(t, r, `SELECT count(*) FROM outputs o LEFT JOIN artifacts a USING (digest) WHERE a.digest IS NULL`))
		// The serial counts exactly the committed result changes.
		succeeded := count(t, r, `SELECT count(*) FROM executions WHERE status = 'succeeded'`)
		models := count(t, r, `SELECT count(*) FROM model_versions`)
		serial, err := db.Serial(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(succeeded+models), serial, "round %d", round)
		// Each model version has its audit event, and the chain holds.
		assert.Equal(t, models, count(t, r, `SELECT count(*) FROM audit WHERE action = 'model.register'`))
		require.NoError(t, db.VerifyAudit(ctx))

		// The killed run is detected and closed.
		runs, _, err := db.MarkInterrupted(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, runs, "round %d", round)
		assert.Zero(t, count(t, r, `SELECT count(*) FROM executions WHERE status = 'running'`))
		t.Logf("round %d: killed after %d executions, %d model versions", round, succeeded, models)
		db.Close()
	}
}
