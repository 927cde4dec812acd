package state_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/state"
)

func TestFinishExecutionRecordsKeyParts(t *testing.T) {
	db, path := openDB(t)
	beginRun(t, db, "r1")
	parts := map[string]string{"command": `["true"]`, "input:data": "k0/data"}
	id, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "tasks.a", CacheKey: "k1"})
	require.NoError(t, err)
	require.NoError(t, db.FinishExecution(ctx, id, state.ExecutionResult{Status: state.StatusSucceeded, KeyParts: parts}))
	got, ok := db.LastKeyParts(ctx, "tasks.a")
	require.True(t, ok)
	assert.Equal(t, parts, got)

	// A failed execution's key parts are not kept: they explain results.
	id, err = db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "tasks.b", CacheKey: "k2"})
	require.NoError(t, err)
	require.NoError(t, db.FinishExecution(ctx, id, state.ExecutionResult{Status: state.StatusFailed, KeyParts: parts}))
	assert.Zero(t, count(t, raw(t, path), `SELECT count(*) FROM key_parts WHERE execution_id = ?`, id))
}

func TestReuseExecution(t *testing.T) {
	db, path := openDB(t)
	beginRun(t, db, "r1")
	id, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "training.m.trial[0]", Kind: "trial", CacheKey: "k1", Backend: "local"})
	require.NoError(t, err)
	res := state.ExecutionResult{Status: state.StatusSucceeded,
		Outputs: []state.Output{{Name: "model", Digest: digest("m"), Size: 4, IsDir: true}, {Name: "report", Digest: digest("r"), Size: 2}},
		Params:  map[string]any{"lr": 0.5},
		Metrics: []state.Metric{{Name: "loss", Value: 2, Step: 0}, {Name: "loss", Value: 1, Step: 1}}}
	require.NoError(t, db.FinishExecution(ctx, id, res))
	serial, err := db.Serial(ctx)
	require.NoError(t, err)

	require.NoError(t, db.FinishRun(ctx, "r1", state.StatusSucceeded, time.Time{}))
	beginRun(t, db, "r2")
	parts := map[string]string{"command": "x"}
	reused, err := db.ReuseExecution(ctx, id, state.Execution{RunID: "r2", Address: "training.m2.trial[0]", Kind: "trial", CacheKey: "k1", Backend: "local"}, parts)
	require.NoError(t, err)

	e, err := db.Execution(ctx, reused)
	require.NoError(t, err)
	assert.Equal(t, state.StatusCached, e.Status)
	assert.Equal(t, "r2", e.RunID)
	assert.Equal(t, "training.m2.trial[0]", e.Address)
	assert.Equal(t, 1, e.Attempt)
	assert.False(t, e.Ended.IsZero())
	orig, err := db.Execution(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, orig.Outputs, e.Outputs)
	params, err := db.Params(ctx, reused)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"lr": 0.5}, params)
	ms, err := db.Metrics(ctx, reused)
	require.NoError(t, err)
	assert.Equal(t, res.Metrics, ms)
	got, ok := db.LastKeyParts(ctx, "training.m2.trial[0]")
	require.True(t, ok)
	assert.Equal(t, parts, got)
	after, err := db.Serial(ctx)
	require.NoError(t, err)
	assert.Equal(t, serial, after, "a reused result is not a new result")
	// The cache still answers with the succeeded execution.
	hit, ok, err := db.LookupCache(ctx, "k1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, id, hit.ID)

	// Only a succeeded execution of a running run can be reused.
	_, err = db.ReuseExecution(ctx, reused, state.Execution{RunID: "r2", Address: "x"}, nil)
	assert.ErrorContains(t, err, "only a succeeded execution")
	_, err = db.ReuseExecution(ctx, 9999, state.Execution{RunID: "r2", Address: "x"}, nil)
	assert.ErrorIs(t, err, state.ErrNotFound)
	_, err = db.ReuseExecution(ctx, id, state.Execution{RunID: "r1", Address: "x"}, nil)
	assert.ErrorContains(t, err, "not running")
	assert.Equal(t, 2, count(t, raw(t, path), `SELECT count(*) FROM executions`), "a refused reuse records nothing")
}

// TestConcurrentWritesOfOneProcess: many goroutines writing at once all
// succeed (they queue in the process, not in SQLite's busy handler).
func TestConcurrentWritesOfOneProcess(t *testing.T) {
	db, path := openDB(t)
	beginRun(t, db, "r1")
	var wg sync.WaitGroup
	const n = 64
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "a", CacheKey: digest(string(rune(i)))})
			if err == nil {
				err = db.FinishExecution(ctx, id, state.ExecutionResult{Status: state.StatusSucceeded, KeyParts: map[string]string{"i": "x"}})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	r := raw(t, path)
	assert.Equal(t, n, count(t, r, `SELECT count(*) FROM executions WHERE status = 'succeeded'`))
	assert.Equal(t, n, count(t, r, `SELECT count(*) FROM key_parts`))
	assert.Equal(t, n, count(t, r, `SELECT value FROM serial`))
}

func TestRecordExecution(t *testing.T) {
	db, _ := openDB(t)
	beginRun(t, db, "r1")
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	parts := map[string]string{"command": "x"}
	res := state.ExecutionResult{Status: state.StatusSucceeded, Outputs: []state.Output{{Name: "out", Digest: digest("o"), Size: 1}},
		Params: map[string]any{"k": "v"}, Metrics: []state.Metric{{Name: "rows", Value: 3}}, KeyParts: parts}
	id, err := db.RecordExecution(ctx, state.Execution{RunID: "r1", Address: "tasks.a", Kind: "task", CacheKey: "k1", Backend: "local",
		Started: started, LogPath: "log.txt"}, res)
	require.NoError(t, err)
	e, err := db.Execution(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, state.StatusSucceeded, e.Status)
	assert.Equal(t, started, e.Started)
	assert.False(t, e.Ended.IsZero())
	assert.Equal(t, "log.txt", e.LogPath)
	assert.Equal(t, res.Outputs, e.Outputs)
	hit, ok, err := db.LookupCache(ctx, "k1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, id, hit.ID)
	got, ok := db.LastKeyParts(ctx, "tasks.a")
	require.True(t, ok)
	assert.Equal(t, parts, got)
	serial, err := db.Serial(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), serial)

	id, err = db.RecordExecution(ctx, state.Execution{RunID: "r1", Address: "tasks.b", CacheKey: "k2", Attempt: 2},
		state.ExecutionResult{Status: state.StatusFailed, ExitCode: 3, Error: "exited with code 3"})
	require.NoError(t, err)
	e, err = db.Execution(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, state.StatusFailed, e.Status)
	assert.Equal(t, 3, e.ExitCode)
	assert.Equal(t, 2, e.Attempt)

	_, err = db.RecordExecution(ctx, state.Execution{RunID: "r1", Address: "tasks.c"}, state.ExecutionResult{Status: state.StatusRunning})
	assert.ErrorContains(t, err, "not a final status")
	require.NoError(t, db.FinishRun(ctx, "r1", state.StatusSucceeded, time.Time{}))
	_, err = db.RecordExecution(ctx, state.Execution{RunID: "r1", Address: "tasks.c"}, state.ExecutionResult{Status: state.StatusSucceeded})
	assert.ErrorContains(t, err, "not running")
}
