package state_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/state"
)

// TestGroupedWritesStayApart: writes of many goroutines at once (committed
// in groups) each keep all or nothing of what they wrote: a failing or
// panicking write leaves nothing and fails alone, the serial counts the
// others.
func TestGroupedWritesStayApart(t *testing.T) {
	db, path := openDB(t)
	beginRun(t, db, "r1")
	const n = 90
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, n)
	panics := make([]any, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			errs[i] = db.Update(ctx, func(tx *state.Tx) error {
				if _, err := tx.AddModelVersion(state.ModelVersion{Model: fmt.Sprint("m", i), ArtifactDigest: digest("a"), Status: state.ModelCandidate}); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return boom
				case 2:
					if i%6 == 2 {
						panic(fmt.Sprint("panic ", i))
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	kept := 0
	for i := range n {
		switch {
		case i%3 == 1:
			assert.ErrorIs(t, errs[i], boom, i)
		case i%6 == 2:
			assert.Equal(t, fmt.Sprint("panic ", i), panics[i], "the panic reaches its own goroutine")
		default:
			assert.NoError(t, errs[i], i)
			assert.Nil(t, panics[i])
			kept++
		}
	}
	r := raw(t, path)
	assert.Equal(t, kept, count(t, r, `SELECT count(*) FROM model_versions`))
	for i := range n {
		want := 1
		if i%3 == 1 || i%6 == 2 {
			want = 0
		}
		assert.Equal(t, want, count(t, r, `SELECT count(*) FROM model_versions WHERE model = ?`, fmt.Sprint("m", i)), i)
	}
	serial, err := db.Serial(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(kept), serial)
}

// TestGroupSeesRunsChange: in one group, a run finished by one write is
// not running for the next.
func TestGroupSeesRunsChange(t *testing.T) {
	db, _ := openDB(t)
	beginRun(t, db, "r1")
	gctx := state.WithGroupWait(ctx, 300*time.Millisecond)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, fn := range []func() error{
		func() error {
			_, err := db.RecordExecution(gctx, state.Execution{RunID: "r1", Address: "a"}, state.ExecutionResult{Status: state.StatusSucceeded})
			return err
		},
		func() error { return db.FinishRun(gctx, "r1", state.StatusSucceeded, time.Time{}) },
		func() error {
			_, err := db.RecordExecution(gctx, state.Execution{RunID: "r1", Address: "b"}, state.ExecutionResult{Status: state.StatusSucceeded})
			return err
		},
	} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn() }()
		time.Sleep(30 * time.Millisecond) // queued in this order, within the group's wait
	}
	wg.Wait()
	assert.NoError(t, errs[0])
	assert.NoError(t, errs[1])
	assert.ErrorContains(t, errs[2], "not running")
}

// TestHoldGroups: a write waiting for company commits once HoldGroups
// turns the waits off, long before its wait would end; while they are off
// a write does not wait at all.
func TestHoldGroups(t *testing.T) {
	db, _ := openDB(t)
	beginRun(t, db, "r1")
	gctx := state.WithGroupWait(ctx, time.Hour)
	record := func(addr string) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := db.RecordExecution(gctx, state.Execution{RunID: "r1", Address: addr}, state.ExecutionResult{Status: state.StatusSucceeded})
			done <- err
		}()
		return done
	}
	waitFor := func(done chan error, what string) {
		t.Helper()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Minute):
			t.Fatal(what)
		}
	}
	done := record("a")
	// Wait until it is queued: it then waits for its group.
	for !db.Queued() {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("a write under an hour's group wait committed at once")
	case <-time.After(50 * time.Millisecond):
	}
	db.HoldGroups(false)
	waitFor(done, "the queued write still waits for its group after HoldGroups(false)")
	waitFor(record("b"), "a write waits for its group while the waits are off")
	db.HoldGroups(true)
	done = record("c")
	for !db.Queued() {
		time.Sleep(time.Millisecond)
	}
	db.HoldGroups(false)
	waitFor(done, "the queued write still waits after the waits went on and off again")
	es, err := db.Executions(ctx, "r1")
	require.NoError(t, err)
	assert.Len(t, es, 3)
}
