//go:build unix

package local

import "syscall"

// sysProcAttr puts the process in its own group so cancelling reaches its
// children too; on Linux the process is also killed if weir dies.
func sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(a)
	return a
}

func signalGroup(pgid int, sig syscall.Signal) {
	syscall.Kill(-pgid, sig)
}

// groupAlive reports whether a process of the group is still there (a
// zombie counts: it has not been collected yet).
func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}
