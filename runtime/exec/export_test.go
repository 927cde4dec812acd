package exec

import "time"

// SetRunningAfter sets how long a step runs before it is recorded as
// running, until restore is called (for the tests of package exec_test).
func SetRunningAfter(d time.Duration) (restore func()) {
	old := runningAfter
	runningAfter = d
	return func() { runningAfter = old }
}
