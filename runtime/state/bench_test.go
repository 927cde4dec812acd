package state_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/state"
)

// seedCache fills a state with n succeeded executions (two outputs each)
// plus n failed ones, in one transaction of plain SQL (fast to set up), and
// returns their cache keys.
func seedCache(t testing.TB, n int) (*state.DB, []string) {
	t.Helper()
	db, path := openDB(t)
	beginRun(t, db, "seed")
	r := raw(t, path)
	tx, err := r.Begin()
	require.NoError(t, err)
	keys := make([]string, n)
	for i := range n {
		keys[i] = digest(fmt.Sprint("key", i))
		for _, st := range []string{"failed", "succeeded"} {
			res, err := tx.Exec(`INSERT INTO executions (run_id, address, kind, cache_key, backend, status, attempt, exit_code, error, started, ended, log_path)
				VALUES ('seed', ?, 'trial', ?, 'local', ?, 1, 0, '', '2026-01-01T00:00:00.000000000Z', '2026-01-01T00:00:01.000000000Z', '')`,
				fmt.Sprintf("training.m.trial[%d]", i), keys[i], st)
			require.NoError(t, err)
			if st == "succeeded" {
				id, _ := res.LastInsertId()
				for _, name := range []string{"model", "report"} {
					d := digest(fmt.Sprint(name, i))
					_, err = tx.Exec(`INSERT INTO artifacts VALUES (?, 1, 0, '2026-01-01T00:00:00.000000000Z')`, d)
					require.NoError(t, err)
					_, err = tx.Exec(`INSERT INTO outputs VALUES (?, ?, ?, 1, 0)`, id, name, d)
					require.NoError(t, err)
				}
			}
		}
	}
	require.NoError(t, tx.Commit())
	return db, keys
}

// TestLookupCacheIsFast: 10,000 lookups in a state holding 10,000 cached
// results take well under a second.
func TestLookupCacheIsFast(t *testing.T) {
	const n = 10000
	db, keys := seedCache(t, n)
	start, cpu0 := time.Now(), cpuTime()
	for _, k := range keys {
		e, ok, err := db.LookupCache(ctx, k)
		require.NoError(t, err)
		if !ok || len(e.Outputs) != 2 {
			t.Fatalf("lookup %s: ok=%v outputs=%v", k, ok, e)
		}
	}
	took, cpu := time.Since(start), cpuTime()-cpu0
	t.Logf("%d lookups: %s wall, %s CPU (%s each)", n, took, cpu, took/n)
	// CPU time, not wall time: other processes on a busy machine must not
	// fail this test.
	assert.Less(t, cpu, time.Second*raceFactor)

	start = time.Now()
	many, err := db.LookupCacheMany(ctx, keys)
	require.NoError(t, err)
	assert.Len(t, many, n)
	t.Logf("LookupCacheMany of %d keys: %s", n, time.Since(start))
}

func BenchmarkLookupCache(b *testing.B) {
	const n = 10000
	db, keys := seedCache(b, n)
	i := 0
	for b.Loop() {
		if _, ok, err := db.LookupCache(ctx, keys[i%n]); err != nil || !ok {
			b.Fatal(ok, err)
		}
		i++
	}
}

func BenchmarkLookupCacheMany(b *testing.B) {
	const n = 10000
	db, keys := seedCache(b, n)
	for b.Loop() {
		if m, err := db.LookupCacheMany(ctx, keys); err != nil || len(m) != n {
			b.Fatal(len(m), err)
		}
	}
}

// BenchmarkFinishExecution is one step's record: start, then finish with
// two outputs, five params and ten metrics.
func BenchmarkFinishExecution(b *testing.B) {
	db, _ := openDB(b)
	beginRun(b, db, "r")
	i := 0
	for b.Loop() {
		id, err := db.StartExecution(ctx, state.Execution{RunID: "r", Address: "a", CacheKey: fmt.Sprint(i)})
		if err != nil {
			b.Fatal(err)
		}
		res := state.ExecutionResult{Status: state.StatusSucceeded, Params: map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5},
			Outputs: []state.Output{{Name: "x", Digest: digest(fmt.Sprint("x", i))}, {Name: "y", Digest: digest(fmt.Sprint("y", i))}}}
		for j := range 10 {
			res.Metrics = append(res.Metrics, state.Metric{Name: "loss", Value: float64(j), Step: int64(j)})
		}
		if err := db.FinishExecution(ctx, id, res); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
