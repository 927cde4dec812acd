//go:build unix

package host

import "syscall"

// sysProcAttr puts a plugin in its own process group: a Ctrl-C at the
// terminal reaches weir, which cancels the plugin's tasks, not the plugin
// itself; and killing the group ends whatever the plugin started.
func sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(a)
	return a
}

func killGroup(pid int) {
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
}
