//go:build unix

package data

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used, so
// benchmarks can report work done apart from wall time, which depends on
// how many cores are free.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
