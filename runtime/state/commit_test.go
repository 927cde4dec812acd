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
