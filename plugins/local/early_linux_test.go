//go:build linux

package local

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/backend"
)

// setEarlyExit sets how long a process is waited for in the early wait,
// for the test, with at least two processors so that one goroutine may
// wait so.
func setEarlyExit(t *testing.T, d time.Duration) {
	old, procs := earlyExit, runtime.GOMAXPROCS(0)
	earlyExit = d
	if procs < 2 {
		runtime.GOMAXPROCS(2)
	}
	t.Cleanup(func() { earlyExit = old; runtime.GOMAXPROCS(procs) })
}

// The early wait keeps its processor; the garbage collector, which stops
// every processor, must still not wait for the process to end. (The
// runtime also preempts a goroutine that has run 10 ms, so the poll may
// have ended before the collector starts. A wait that the runtime's signal
// cannot end, such as a raw wait4, which the kernel restarts after it,
// would hold runtime.GC here, and with it the whole test binary, until
// go test's timeout.)
func TestEarlyWaitDoesNotHoldTheCollector(t *testing.T) {
	setEarlyExit(t, time.Hour)
	b := New(0)
	id, err := b.Submit(context.Background(), task(t, "exec sleep 600"))
	require.NoError(t, err)
	pid, _ := strconv.Atoi(strings.Split(id, "-")[0])
	t.Cleanup(func() { b.Cancel(context.Background(), id, 0) })
	require.Eventually(t, func() bool { return earlyPollers.Load() == 1 }, 10*time.Second, 100*time.Microsecond)

	runtime.GC()
	assert.True(t, groupAlive(pid), "the process ended before the collector ran")

	require.NoError(t, b.Cancel(context.Background(), id, 0))
	res, err := b.Watch(context.Background(), id, nil)
	require.NoError(t, err)
	assert.Equal(t, backend.StateCancelled, res.State)
}

// A process that outlives the early wait is collected by the ordinary
// one, its exit code intact.
func TestProcessOutlivesTheEarlyWait(t *testing.T) {
	setEarlyExit(t, time.Millisecond)
	_, _, res := watch(t, task(t, "sleep 0.2; exit 3"))
	assert.Equal(t, backend.StateFailed, res.State)
	assert.Equal(t, 3, res.ExitCode)
}
