package state_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"weir.dev/weir/runtime/state"
)

// What `weir apply` does with the state: lock it, close runs left by killed
// processes, record a run and its executions, use the cache.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "weir-example")
	defer os.RemoveAll(dir)
	db, err := state.Open(ctx, filepath.Join(dir, ".weir", "state.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	lock := state.NewLockInfo("weir apply")
	unlock, err := db.Lock(ctx, lock)
	if err != nil {
		fmt.Println(err) // a *state.LockedError naming the holder
		return
	}
	defer unlock()
	db.MarkInterrupted(ctx)

	db.BeginRun(ctx, state.Run{ID: "run-1", Project: "churn", LockID: lock.ID, Command: "weir apply"})
	id, _ := db.StartExecution(ctx, state.Execution{RunID: "run-1", Address: "features.customer", Kind: "transform", CacheKey: "sha256:key"})
	db.FinishExecution(ctx, id, state.ExecutionResult{
		Status:  state.StatusSucceeded,
		Outputs: []state.Output{{Name: "table", Digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Size: 42}},
		Metrics: []state.Metric{{Name: "rows", Value: 1000}},
	})
	db.FinishRun(ctx, "run-1", state.StatusSucceeded, time.Time{})

	hit, ok, _ := db.LookupCache(ctx, "sha256:key")
	serial, _ := db.Serial(ctx)
	fmt.Println(ok, hit.Address, hit.Outputs[0].Name, serial)
	// Output: true features.customer table 1
}
