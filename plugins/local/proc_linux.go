//go:build linux

package local

import (
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func setPdeathsig(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// The early wait. A goroutine that waits for a process in a blocking
// system call gives up its processor (P) while it waits, or has it taken
// by the runtime's monitor, sysmon, after 20 µs; the processor then moves
// to another thread, and back when the call returns. For a process that
// lives a millisecond, the usual step of a quick pipeline, those moves are
// a good part of what the step costs weir. Worse, once sysmon has taken a
// processor it looks again every 20 µs and takes nearly every wait for as
// long as steps keep every processor waiting: on 2 cores a run of short
// steps pays that for its whole length (testdata/bench/README.md, "Calm
// and stormy runs").
//
// So for its first earlyExit a process is waited for in a raw poll of a
// descriptor of it (a pidfd), which keeps the processor: to the scheduler
// the goroutine is still running. Then, ended or not, the ordinary
// blocking wait4 collects it, at once if it has ended. The raw poll ends
// early when the runtime signals the thread (ppoll is never restarted
// after a signal): to stop the world for the garbage collector, which so
// waits for it no longer than for a running goroutine, or to preempt a
// goroutine that has run 10 ms. At most GOMAXPROCS-1 goroutines poll at
// once, so a processor is always left for the rest of weir: a step
// blocked writing into its full output pipe does not wait for the
// preemption to have its output drained.
var earlyExit = 5 * time.Millisecond

// earlyPollers counts the goroutines in an early wait.
var earlyPollers atomic.Int32

// waitExit waits for the process pid, a child of this process, to end
// and collects it.
func waitExit(pid int) (syscall.WaitStatus, error) {
	if n := earlyPollers.Add(1); n < int32(runtime.GOMAXPROCS(0)) {
		// The process is not collected yet, so pid is still its.
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			pollExit(fd, earlyExit)
			unix.Close(fd)
		}
	}
	earlyPollers.Add(-1)
	return wait(pid)
}

// pollExit waits up to d for the process of pidfd to end, without leaving
// the scheduler.
func pollExit(pidfd int, d time.Duration) {
	// POLLIN: the process has ended.
	pfd := unix.PollFd{Fd: int32(pidfd), Events: unix.POLLIN}
	ts := unix.NsecToTimespec(d.Nanoseconds())
	syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
}

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
