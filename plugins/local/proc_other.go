//go:build unix && !linux

package local

import (
	"os"
	"syscall"
)

func setPdeathsig(a *syscall.SysProcAttr) {}

// waitExit waits for the process pid, a child of this process, to end
// and collects it.
func waitExit(pid int) (syscall.WaitStatus, error) { return wait(pid) }

// outputPipe makes the pipe a task's output goes through: its read end
// on the poller, its write end a plain descriptor for the process, which
// the caller closes once the process has it.
func outputPipe() (*os.File, int, error) {
	var fds [2]int
	// Under ForkLock, so that no process started meanwhile inherits them.
	syscall.ForkLock.RLock()
	err := syscall.Pipe(fds[:])
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, -1, os.NewSyscallError("pipe", err)
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, -1, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(fds[0]), "|0"), fds[1], nil
}
