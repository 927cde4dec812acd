//go:build !unix

package exec_test

import "time"

func cpuTime() time.Duration { return 0 }
