// Package timing times the commands the benchmark drivers compare: wall time,
// CPU time (user + system, from the child's resource usage) and peak
// resident memory, and the median of several runs.
package timing

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Sample is one run of a command.
type Sample struct {
	Wall, CPU time.Duration
	RSSKB     int64
}

// Measure runs a command in dir (the current folder when "") and reads its
// wall time, CPU time and peak resident memory. A failure carries the
// command's standard error.
func Measure(dir, name string, args ...string) (Sample, error) {
	return MeasureExit(nil, dir, name, args...)
}

// MeasureExit is Measure where the exit codes in ok are results, not
// failures (1 from a command whose findings deny).
func MeasureExit(ok []int, dir, name string, args ...string) (Sample, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil && !slices.Contains(ok, cmd.ProcessState.ExitCode()) {
		return Sample{}, fmt.Errorf("%s %s in %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), dir, err, stderr.String())
	}
	s := Sample{Wall: wall, CPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.RSSKB = ru.Maxrss // kilobytes on Linux
		if runtime.GOOS == "darwin" {
			s.RSSKB /= 1024 // bytes on macOS
		}
	}
	return s, nil
}

// Median is the median of each figure on its own.
func Median(ss []Sample) Sample {
	pick := func(get func(Sample) int64) int64 {
		v := make([]int64, len(ss))
		for i, s := range ss {
			v[i] = get(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return Sample{
		Wall:  time.Duration(pick(func(s Sample) int64 { return int64(s.Wall) })),
		CPU:   time.Duration(pick(func(s Sample) int64 { return int64(s.CPU) })),
		RSSKB: pick(func(s Sample) int64 { return s.RSSKB }),
	}
}

// PrintTable prints rows as a table on standard output: columns padded to
// their widest cell, right-aligned but for the first left ones, the first
// row a header underlined with dashes.
func PrintTable(rows [][]string, left int) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for i, r := range rows {
		var b strings.Builder
		for j, c := range r {
			if j > 0 {
				b.WriteString("  ")
			}
			if j < left {
				fmt.Fprintf(&b, "%-*s", width[j], c)
			} else {
				fmt.Fprintf(&b, "%*s", width[j], c)
			}
		}
		fmt.Println(b.String())
		if i == 0 {
			fmt.Println(strings.Repeat("-", b.Len()))
		}
	}
}
