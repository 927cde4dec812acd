package state_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/state"
)

var ctx = context.Background()

// openDB opens a fresh state in a temp dir, as a project would.
func openDB(t testing.TB) (*state.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".weir", "state.db")
	db, err := state.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db, path
}

// raw opens the same file with plain SQL, to look behind the API (or to
// tamper with it).
func raw(t testing.TB, path string) *sql.DB {
	t.Helper()
	r, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func count(t testing.TB, r *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, r.QueryRow(query, args...).Scan(&n))
	return n
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func beginRun(t testing.TB, db *state.DB, id string) {
	t.Helper()
	require.NoError(t, db.BeginRun(ctx, state.Run{ID: id, Project: "churn", SpecHash: "sha256:spec", PlanChecksum: "sha256:plan", Command: "weir apply"}))
}

func TestOpenMigratesAndSetsPragmas(t *testing.T) {
	db, path := openDB(t)
	r := raw(t, path)
	assert.Positive(t, count(t, r, `SELECT version FROM schema_version`)) // exactly: TestMigrationsApplied
	var mode string
	require.NoError(t, r.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	assert.Equal(t, "wal", mode, "WAL is persistent in the file")
	require.NoError(t, db.Close())

	// Reopening does not migrate again and keeps data.
	db2, err := state.Open(ctx, path)
	require.NoError(t, err)
	defer db2.Close()
	s, err := db2.Serial(ctx)
	require.NoError(t, err)
	assert.Zero(t, s)
	assert.Equal(t, 1, count(t, r, `SELECT count(*) FROM schema_version`))
	require.NoError(t, db2.Check(ctx))
}

func TestOpenRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".weir", "state.db")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	garbage := []byte(strings.Repeat("this is not a database, it is a shopping list\n", 200))
	require.NoError(t, os.WriteFile(path, garbage, 0o644))

	_, err := state.Open(ctx, path)
	require.Error(t, err)
	assert.ErrorIs(t, err, state.ErrCorrupt)
	msg := err.Error()
	assert.Contains(t, msg, path, "names the file")
	assert.Contains(t, msg, "not a SQLite database")
	assert.Contains(t, msg, "move it away")
	assert.Contains(t, msg, "restore it from a backup")

	// The file is left as it was for the user to inspect.
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, garbage, got)
}

func TestOpenEmptyFile(t *testing.T) {
	// An empty file is an empty SQLite database: Open makes it a state.
	path := filepath.Join(t.TempDir(), "state.db")
	require.NoError(t, os.WriteFile(path, nil, 0o644))
	db, err := state.Open(ctx, path)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Check(ctx))
}

func TestCheckFindsDamageInsideTheFile(t *testing.T) {
	db, path := openDB(t)
	beginRun(t, db, "r1")
	for i := range 200 {
		id, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: fmt.Sprintf("tasks.t%d", i), CacheKey: strings.Repeat("k", 200) + fmt.Sprint(i)})
		require.NoError(t, err)
		require.NoError(t, db.FinishExecution(ctx, id, state.ExecutionResult{Status: state.StatusFailed, Error: strings.Repeat("x", 500)}))
	}
	require.NoError(t, db.Close())
	// Checkpoint the WAL into the main file, then scribble over a page in
	// the middle of it.
	r := raw(t, path)
	_, err := r.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	fi, _ := f.Stat()
	require.Greater(t, fi.Size(), int64(40000))
	_, err = f.WriteAt([]byte(strings.Repeat("\xff\x00garbage", 400)), 4096*5)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	db, err = state.Open(ctx, path) // the header is fine: Open succeeds
	require.NoError(t, err)
	defer db.Close()
	err = db.Check(ctx)
	require.ErrorIs(t, err, state.ErrCorrupt)
	assert.Contains(t, err.Error(), path)
}

func TestOpenRefusesOtherSQLiteDatabases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	r := raw(t, path)
	_, err := r.Exec(`CREATE TABLE customers (id INTEGER)`)
	require.NoError(t, err)
	_, err = state.Open(ctx, path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a Weir state")
	assert.Contains(t, err.Error(), path)
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	db, path := openDB(t)
	db.Close()
	r := raw(t, path)
	_, err := r.Exec(`UPDATE schema_version SET version = 99`)
	require.NoError(t, err)
	_, err = state.Open(ctx, path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "schema version 99")
	assert.Contains(t, err.Error(), "upgrade weir")
}

func TestRunsLifecycle(t *testing.T) {
	db, _ := openDB(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, db.BeginRun(ctx, state.Run{ID: "r1", Project: "churn", SpecHash: "s1", PlanChecksum: "p1", User: "alice", Command: "weir apply", Started: t0}))
	require.NoError(t, db.BeginRun(ctx, state.Run{ID: "r2", Project: "churn", Started: t0.Add(time.Hour)}))
	err := db.BeginRun(ctx, state.Run{ID: "r1"})
	require.Error(t, err, "run IDs are unique")

	r, err := db.Run(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, state.StatusRunning, r.Status)
	assert.Equal(t, "alice", r.User)
	assert.Equal(t, os.Getpid(), r.PID)
	assert.True(t, r.Started.Equal(t0))
	assert.True(t, r.Ended.IsZero())

	require.NoError(t, db.FinishRun(ctx, "r1", state.StatusSucceeded, t0.Add(time.Minute)))
	require.Error(t, db.FinishRun(ctx, "r1", state.StatusFailed, time.Time{}), "a run ends once")
	require.ErrorIs(t, db.FinishRun(ctx, "nope", state.StatusFailed, time.Time{}), state.ErrNotFound)
	require.Error(t, db.FinishRun(ctx, "r2", state.StatusCached, time.Time{}))

	r, err = db.Run(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, state.StatusSucceeded, r.Status)
	assert.True(t, r.Ended.Equal(t0.Add(time.Minute)))

	runs, err := db.Runs(ctx, 0)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	assert.Equal(t, "r2", runs[0].ID, "newest first")
	runs, err = db.Runs(ctx, 1)
	require.NoError(t, err)
	assert.Len(t, runs, 1)

	_, err = db.Run(ctx, "nope")
	assert.ErrorIs(t, err, state.ErrNotFound)
}

func TestExecutionsOutputsParamsMetrics(t *testing.T) {
	db, _ := openDB(t)
	beginRun(t, db, "r1")
	id, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "training.churn.trial[lr=0.1]", Kind: "trial", CacheKey: "k1", Backend: "local", LogPath: "logs/1.log"})
	require.NoError(t, err)

	e, err := db.Execution(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, state.StatusRunning, e.Status)
	assert.Equal(t, 1, e.Attempt)
	assert.Nil(t, e.Outputs)

	res := state.ExecutionResult{
		Status: state.StatusSucceeded,
		Outputs: []state.Output{
			{Name: "model", Digest: digest("m"), Size: 10, IsDir: true},
			{Name: "metrics", Digest: digest("x"), Size: 3},
		},
		Params: map[string]any{"lr": 0.1, "layers": []any{"a", "b"}, "epochs": 10},
		Metrics: []state.Metric{
			{Name: "loss", Value: 0.9, Step: 0},
			{Name: "loss", Value: 0.5, Step: 1},
			{Name: "loss", Value: math.NaN(), Step: 2},
			{Name: "auc", Value: 0.81},
			{Name: "big", Value: math.Inf(1)},
		},
	}
	require.NoError(t, db.FinishExecution(ctx, id, res))
	err = db.FinishExecution(ctx, id, res)
	require.Error(t, err, "an execution ends once")
	assert.Contains(t, err.Error(), "already ended")

	e, err = db.Execution(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, state.StatusSucceeded, e.Status)
	assert.False(t, e.Ended.IsZero())
	assert.Equal(t, []state.Output{
		{Name: "metrics", Digest: digest("x"), Size: 3},
		{Name: "model", Digest: digest("m"), Size: 10, IsDir: true},
	}, e.Outputs, "sorted by name")

	params, err := db.Params(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"lr": 0.1, "layers": []any{"a", "b"}, "epochs": 10.0}, params)

	ms, err := db.Metrics(ctx, id)
	require.NoError(t, err)
	require.Len(t, ms, 5)
	assert.Equal(t, state.Metric{Name: "loss", Value: 0.5, Step: 1}, ms[1])
	assert.True(t, math.IsNaN(ms[2].Value), "NaN round-trips")
	assert.True(t, math.IsInf(ms[4].Value, 1))

	a, err := db.Artifact(ctx, digest("m"))
	require.NoError(t, err)
	assert.True(t, a.IsDir)
	assert.Equal(t, int64(10), a.Size)
	_, err = db.Artifact(ctx, digest("nope"))
	assert.ErrorIs(t, err, state.ErrNotFound)

	// A failed execution records metrics but may not have outputs.
	id2, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "a", CacheKey: "k2", Attempt: 2})
	require.NoError(t, err)
	err = db.FinishExecution(ctx, id2, state.ExecutionResult{Status: state.StatusFailed, Outputs: []state.Output{{Name: "x", Digest: digest("y")}}})
	require.Error(t, err)
	require.NoError(t, db.FinishExecution(ctx, id2, state.ExecutionResult{Status: state.StatusFailed, ExitCode: 3, Error: "exit status 3", Metrics: []state.Metric{{Name: "loss", Value: 2}}}))

	es, err := db.Executions(ctx, "r1")
	require.NoError(t, err)
	require.Len(t, es, 2)
	assert.Equal(t, id, es[0].ID)
	assert.Len(t, es[0].Outputs, 2)
	assert.Equal(t, 3, es[1].ExitCode)
	assert.Equal(t, 2, es[1].Attempt)
	assert.Equal(t, "exit status 3", es[1].Error)

	// Starting an execution needs a running run.
	_, err = db.StartExecution(ctx, state.Execution{RunID: "nope", Address: "a"})
	require.ErrorIs(t, err, state.ErrNotFound)
	require.NoError(t, db.FinishRun(ctx, "r1", state.StatusSucceeded, time.Time{}))
	_, err = db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "a"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not running")
}

func TestSerialCountsResultChanges(t *testing.T) {
	db, _ := openDB(t)
	serial := func() int64 {
		s, err := db.Serial(ctx)
		require.NoError(t, err)
		return s
	}
	beginRun(t, db, "r1")
	assert.Zero(t, serial(), "a run is not a result")
	unlock, err := db.Lock(ctx, state.NewLockInfo("weir apply"))
	require.NoError(t, err)
	require.NoError(t, unlock())
	assert.Zero(t, serial(), "a lock is not a result")

	for _, st := range []state.Status{state.StatusFailed, state.StatusCancelled, state.StatusCached, state.StatusSucceeded, state.StatusSucceeded} {
		id, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "a", CacheKey: "k"})
		require.NoError(t, err)
		require.NoError(t, db.FinishExecution(ctx, id, state.ExecutionResult{Status: st}))
	}
	assert.Equal(t, int64(2), serial(), "only succeeded executions change results")

	_, err = db.AppendAudit(ctx, state.Event{Actor: "alice", Action: "note"})
	require.NoError(t, err)
	assert.Equal(t, int64(2), serial(), "audit events are not results")

	// Several changes in one Update bump the serial once.
	require.NoError(t, db.Update(ctx, func(tx *state.Tx) error {
		if _, err := tx.AddModelVersion(state.ModelVersion{Model: "churn", ArtifactDigest: digest("m"), Status: state.ModelCandidate}); err != nil {
			return err
		}
		_, err := tx.SetAlias("churn", "staging", 1, "alice")
		return err
	}))
	assert.Equal(t, int64(3), serial())

	// A failed Update changes nothing, the serial included.
	boom := errors.New("boom")
	err = db.Update(ctx, func(tx *state.Tx) error {
		if _, err := tx.AddModelVersion(state.ModelVersion{Model: "churn", ArtifactDigest: digest("m"), Status: state.ModelCandidate}); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, int64(3), serial())
	require.NoError(t, db.View(ctx, func(tx *state.Tx) error {
		vs, err := tx.ModelVersions("churn")
		assert.Len(t, vs, 1)
		return err
	}))
}

func TestViewRefusesWrites(t *testing.T) {
	db, _ := openDB(t)
	err := db.View(ctx, func(tx *state.Tx) error {
		_, err := tx.AppendAudit(state.Event{Actor: "a", Action: "b"})
		return err
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read-only")
}

func TestUpdateRollsBackOnPanic(t *testing.T) {
	db, path := openDB(t)
	func() {
		defer func() { recover() }()
		db.Update(ctx, func(tx *state.Tx) error {
			tx.AppendAudit(state.Event{Actor: "a", Action: "b"})
			panic("boom")
		})
	}()
	assert.Zero(t, count(t, raw(t, path), `SELECT count(*) FROM audit`))
	// The database is usable afterwards.
	_, err := db.AppendAudit(ctx, state.Event{Actor: "a", Action: "b"})
	require.NoError(t, err)
}

func TestLookupCache(t *testing.T) {
	db, _ := openDB(t)
	beginRun(t, db, "r1")
	finish := func(addr, key string, st state.Status, out string) int64 {
		id, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: addr, CacheKey: key})
		require.NoError(t, err)
		res := state.ExecutionResult{Status: st}
		if st == state.StatusSucceeded {
			res.Outputs = []state.Output{{Name: "out", Digest: digest(out), Size: int64(len(out))}}
		}
		require.NoError(t, db.FinishExecution(ctx, id, res))
		return id
	}
	_, ok, err := db.LookupCache(ctx, "k1")
	require.NoError(t, err)
	assert.False(t, ok)

	finish("features.a", "k1", state.StatusSucceeded, "v1")
	latest := finish("features.b", "k1", state.StatusSucceeded, "v2") // another address, same key
	finish("features.a", "k1", state.StatusFailed, "")
	finish("features.c", "k2", state.StatusFailed, "")
	running, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "features.d", CacheKey: "k3"})
	require.NoError(t, err)

	e, ok, err := db.LookupCache(ctx, "k1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, latest, e.ID, "the latest succeeded execution, at any address")
	assert.Equal(t, "features.b", e.Address)
	assert.Equal(t, []state.Output{{Name: "out", Digest: digest("v2"), Size: 2}}, e.Outputs)

	for _, k := range []string{"k2", "k3", "nope"} {
		_, ok, err := db.LookupCache(ctx, k)
		require.NoError(t, err)
		assert.False(t, ok, k)
	}
	_ = running

	many, err := db.LookupCacheMany(ctx, []string{"k1", "k2", "k3", "nope"})
	require.NoError(t, err)
	require.Len(t, many, 1)
	assert.Equal(t, latest, many["k1"].ID)
	assert.Len(t, many["k1"].Outputs, 1)
}

func TestLookupCacheUsesTheIndex(t *testing.T) {
	_, path := openDB(t)
	r := raw(t, path)
	rows, err := r.Query(`EXPLAIN QUERY PLAN SELECT id FROM executions WHERE cache_key = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1`, "k")
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
		plan = append(plan, detail)
	}
	assert.Contains(t, strings.Join(plan, "\n"), "USING COVERING INDEX executions_cache")
}

func TestMarkInterrupted(t *testing.T) {
	db, _ := openDB(t)
	host, _ := os.Hostname()
	dead := deadPID(t)

	// A run of a dead process on this host.
	require.NoError(t, db.BeginRun(ctx, state.Run{ID: "dead", PID: dead, Host: host}))
	deadExec, err := db.StartExecution(ctx, state.Execution{RunID: "dead", Address: "a"})
	require.NoError(t, err)
	// A run on another host whose lock is gone.
	require.NoError(t, db.BeginRun(ctx, state.Run{ID: "lost", PID: 1, Host: "elsewhere", LockID: "old-lock"}))
	// A run on another host without a lock: nothing tells it is gone.
	require.NoError(t, db.BeginRun(ctx, state.Run{ID: "unknown", PID: 1, Host: "elsewhere"}))
	// This process's run, under the lock it holds.
	info := state.NewLockInfo("weir apply")
	unlock, err := db.Lock(ctx, info)
	require.NoError(t, err)
	defer unlock()
	require.NoError(t, db.BeginRun(ctx, state.Run{ID: "mine", LockID: info.ID}))
	mineExec, err := db.StartExecution(ctx, state.Execution{RunID: "mine", Address: "a"})
	require.NoError(t, err)

	runs, execs, err := db.MarkInterrupted(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, runs)
	assert.Equal(t, 1, execs)
	for id, want := range map[string]state.Status{"dead": state.StatusInterrupted, "lost": state.StatusInterrupted, "unknown": state.StatusRunning, "mine": state.StatusRunning} {
		r, err := db.Run(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, r.Status, id)
	}
	e, err := db.Execution(ctx, deadExec)
	require.NoError(t, err)
	assert.Equal(t, state.StatusInterrupted, e.Status)
	assert.False(t, e.Ended.IsZero())
	e, err = db.Execution(ctx, mineExec)
	require.NoError(t, err)
	assert.Equal(t, state.StatusRunning, e.Status)

	// Again: nothing more to do.
	runs, execs, err = db.MarkInterrupted(ctx)
	require.NoError(t, err)
	assert.Zero(t, runs+execs)
}

func TestReferencedDigests(t *testing.T) {
	db, _ := openDB(t)
	beginRun(t, db, "r1")
	id, err := db.StartExecution(ctx, state.Execution{RunID: "r1", Address: "a", CacheKey: "k"})
	require.NoError(t, err)
	require.NoError(t, db.FinishExecution(ctx, id, state.ExecutionResult{Status: state.StatusSucceeded, Outputs: []state.Output{{Name: "o", Digest: digest("out")}}}))
	require.NoError(t, db.Update(ctx, func(tx *state.Tx) error {
		_, err := tx.AddModelVersion(state.ModelVersion{Model: "m", ArtifactDigest: digest("model"), Status: state.ModelCandidate, ExecutionID: id, RunID: "r1"})
		return err
	}))
	refs, err := db.ReferencedDigests(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{digest("out"): true, digest("model"): true}, refs)
}

func TestModelVersionsAndAliases(t *testing.T) {
	db, _ := openDB(t)
	lineage := state.Lineage{
		Datasets:   []state.DatasetRef{{Name: "datasets.customers", Digest: digest("d")}},
		CodeDigest: digest("code"), Image: "python:3.12", SpecHash: "sha256:spec", GitCommit: "abc123",
		Params: map[string]any{"lr": 0.1},
	}
	err := db.Update(ctx, func(tx *state.Tx) error {
		for i := 1; i <= 4; i++ {
			mv, err := tx.AddModelVersion(state.ModelVersion{
				Model: "churn", ArtifactDigest: digest(fmt.Sprint(i)), Status: state.ModelCandidate,
				Metrics: map[string]float64{"auc": 0.8, "odd": math.NaN()},
				Gates:   []state.GateResult{{Metric: "auc", Rule: ">=0.8", Value: 0.8, Reported: true, Passed: true}, {Metric: "f1", Rule: ">0", Passed: false, Message: "metric f1 was not reported"}},
				Lineage: lineage,
			})
			if err != nil {
				return err
			}
			assert.Equal(t, i, mv.Version)
		}
		_, err := tx.AddModelVersion(state.ModelVersion{Model: "other", ArtifactDigest: digest("o"), Status: state.ModelCandidate})
		return err
	})
	require.NoError(t, err)

	err = db.View(ctx, func(tx *state.Tx) error {
		mv, err := tx.ModelVersion("churn", 2)
		require.NoError(t, err)
		assert.Equal(t, lineage, mv.Lineage)
		assert.Equal(t, 0.8, mv.Metrics["auc"])
		assert.True(t, math.IsNaN(mv.Metrics["odd"]))
		assert.Equal(t, []state.GateResult{{Metric: "auc", Rule: ">=0.8", Value: 0.8, Reported: true, Passed: true}, {Metric: "f1", Rule: ">0", Message: "metric f1 was not reported"}}, mv.Gates)
		other, err := tx.ModelVersion("other", 1)
		require.NoError(t, err)
		assert.Equal(t, 1, other.Version, "versions count per model")
		_, err = tx.ModelVersion("churn", 9)
		assert.ErrorIs(t, err, state.ErrNotFound)
		return nil
	})
	require.NoError(t, err)

	move := func(fn func(tx *state.Tx) (*state.AliasChange, error)) *state.AliasChange {
		var c *state.AliasChange
		require.NoError(t, db.Update(ctx, func(tx *state.Tx) error {
			var err error
			c, err = fn(tx)
			return err
		}))
		return c
	}
	resolve := func() int {
		var v int
		require.NoError(t, db.View(ctx, func(tx *state.Tx) error {
			var err error
			v, err = tx.Alias("churn", "prod")
			return err
		}))
		return v
	}
	promote := func(v int) *state.AliasChange {
		return move(func(tx *state.Tx) (*state.AliasChange, error) { return tx.SetAlias("churn", "prod", v, "alice") })
	}
	rollback := func() *state.AliasChange {
		return move(func(tx *state.Tx) (*state.AliasChange, error) { return tx.RollbackAlias("churn", "prod", "bob") })
	}

	c := promote(1)
	assert.Equal(t, 0, c.Previous)
	assert.Nil(t, promote(1), "already there: no change")
	promote(2)
	c = promote(3)
	assert.Equal(t, 2, c.Previous)
	assert.Equal(t, 3, resolve())

	c = rollback()
	assert.Equal(t, "rollback", c.Action)
	assert.Equal(t, 2, c.Version)
	assert.Equal(t, 3, c.Previous)
	assert.Equal(t, 2, resolve())
	rollback()
	assert.Equal(t, 1, resolve(), "rolling back again walks further back")
	err = db.Update(ctx, func(tx *state.Tx) error { _, err := tx.RollbackAlias("churn", "prod", "bob"); return err })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no earlier version")
	promote(4)
	rollback()
	assert.Equal(t, 1, resolve(), "a rollback after a promote returns to where the promote came from")

	require.NoError(t, db.View(ctx, func(tx *state.Tx) error {
		h, err := tx.AliasHistory("churn", "prod")
		require.NoError(t, err)
		var got []string
		for _, c := range h {
			got = append(got, fmt.Sprintf("%s %d->%d by %s", c.Action, c.Previous, c.Version, c.Actor))
		}
		assert.Equal(t, []string{
			"promote 0->1 by alice", "promote 1->2 by alice", "promote 2->3 by alice",
			"rollback 3->2 by bob", "rollback 2->1 by bob", "promote 1->4 by alice", "rollback 4->1 by bob",
		}, got)
		as, err := tx.Aliases("churn")
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"prod": 1}, as)
		_, err = tx.Alias("churn", "nope")
		assert.ErrorIs(t, err, state.ErrNotFound)
		return nil
	}))

	// An alias can only point at an existing version.
	err = db.Update(ctx, func(tx *state.Tx) error { _, err := tx.SetAlias("churn", "prod", 99, "alice"); return err })
	require.ErrorIs(t, err, state.ErrNotFound)

	// Approvals: one per approver.
	require.NoError(t, db.Update(ctx, func(tx *state.Tx) error {
		added, err := tx.AddApproval(state.Approval{Model: "churn", Version: 2, Approver: "alice", Comment: "ok"})
		require.NoError(t, err)
		assert.True(t, added)
		added, err = tx.AddApproval(state.Approval{Model: "churn", Version: 2, Approver: "alice", Comment: "again"})
		require.NoError(t, err)
		assert.False(t, added)
		as, err := tx.Approvals("churn", 2)
		require.NoError(t, err)
		require.Len(t, as, 1)
		assert.Equal(t, "ok", as[0].Comment)
		return tx.SetModelStatus("churn", 2, state.ModelApproved)
	}))
}
