package exec_test

import (
	"os"
	"strconv"
	"syscall"
)

var osReadFile = os.ReadFile

// processAlive reports whether a process with the pid exists (and is not a
// zombie waiting for its parent).
func processAlive(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil {
		return false
	}
	if syscall.Kill(n, 0) != nil {
		return false
	}
	b, err := readStat(n)
	return err == nil && !isZombie(b)
}

func readStat(pid int) (string, error) {
	b, err := osReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return string(b), err
}

func isZombie(stat string) bool {
	// The state follows the command name in parentheses.
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == 'Z'
		}
	}
	return false
}
