//go:build linux

package local

import (
	"os"
	"syscall"
)

func setPdeathsig(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// outputPipe makes the pipe a task's output goes through: its read end
// on the poller, its write end a plain descriptor for the process, which
// the caller closes once the process has it.
func outputPipe() (*os.File, int, error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil, -1, os.NewSyscallError("pipe2", err)
	}
	// The process writes blocking, as to any pipe it is given.
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[1]), syscall.F_SETFL, 0); e != 0 {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, -1, os.NewSyscallError("fcntl", e)
	}
	return os.NewFile(uintptr(fds[0]), "|0"), fds[1], nil
}
