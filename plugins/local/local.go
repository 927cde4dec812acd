package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"weir.dev/weir/runtime/backend"
)

// Version of the local backend.
const Version = "1.0.0"

// Backend runs tasks as subprocesses of weir.
type Backend struct {
	// GPUs is the number of GPUs on this machine the executor may hand out.
	GPUs int

	mu    sync.Mutex
	procs map[string]*proc
	seq   int
	// left holds the tasks, ended and watched, that left processes
	// running, until LeftRunning is asked about them.
	left map[string]bool
	// paths remembers where programs were found, by PATH and name.
	paths map[string]string
}

// New returns a local backend.
func New(gpus int) *Backend { return &Backend{GPUs: gpus, procs: map[string]*proc{}} }

var _ backend.Interface = (*Backend)(nil)

type proc struct {
	pid   int
	start time.Time
	out   *output
	done  chan struct{}
	// result and leftRunning are set before done is closed.
	result backend.Result
	// leftRunning: a process of the task's group outlived it.
	leftRunning bool
	cancelled   bool
	mu          sync.Mutex
}

// Describe tells what this machine offers.
func (b *Backend) Describe(ctx context.Context) (*backend.Description, error) {
	return &backend.Description{Name: "local", Version: Version, ProtocolVersion: backend.ProtocolVersion,
		GPUs: b.GPUs, Services: false, MaxParallelism: runtime.NumCPU()}, nil
}

// NotFoundError says a step's program cannot be found.
type NotFoundError struct {
	Program string
	Path    string
}

func (e *NotFoundError) Error() string {
	if strings.Contains(e.Program, "/") {
		return fmt.Sprintf("program %s does not exist", e.Program)
	}
	return fmt.Sprintf("program %q is not installed (not found in PATH=%s)", e.Program, e.Path)
}

// Submit starts the task's process in its own process group, with exactly
// the task's environment, its output going to the task's log file.
func (b *Backend) Submit(ctx context.Context, t *backend.Task) (string, error) {
	if len(t.Argv) == 0 {
		return "", errors.New("no command to run")
	}
	prog := t.Argv[0]
	switch {
	case strings.Contains(prog, "/"):
		if !filepath.IsAbs(prog) {
			prog = filepath.Join(t.Dir, prog)
		}
		if _, err := os.Stat(prog); err != nil {
			return "", &NotFoundError{Program: t.Argv[0]}
		}
	default:
		p, err := b.lookPath(prog, t.Env["PATH"])
		if err != nil {
			return "", &NotFoundError{Program: prog, Path: t.Env["PATH"]}
		}
		prog = p
	}
	// The process's output goes through a pipe to its log file, which is
	// made when the first byte comes: a step that prints nothing costs no
	// file (on some disks, making one costs a good part of starting a
	// process).
	pr, pw, err := outputPipe()
	if err != nil {
		return "", fmt.Errorf("starting %s: %w", t.Argv[0], err)
	}
	// syscall.ForkExec rather than os/exec: a step's process is waited for
	// by its ID and signalled by its group, so os/exec's handle on it, its
	// checks and the poller's part in the write end of the pipe are system
	// calls spent on every step for nothing: 5 fcntl, 2 epoll_ctl and a
	// close. Without them weir makes about 30 system calls of its own per
	// no-op step instead of 38.
	pid, err := syscall.ForkExec(prog, t.Argv, &syscall.ProcAttr{
		Dir:   t.Dir,
		Env:   envList(t.Env),
		Files: []uintptr{devNull(), uintptr(pw), uintptr(pw)},
		Sys:   sysProcAttr(),
	})
	syscall.Close(pw)
	if err != nil {
		pr.Close()
		if t.Dir != "" {
			if _, serr := os.Stat(t.Dir); serr != nil {
				return "", fmt.Errorf("starting %s: %w", t.Argv[0], serr)
			}
		}
		if errors.Is(err, fs.ErrNotExist) && !strings.Contains(t.Argv[0], "/") {
			// Gone since it was found: look again next time.
			b.forgetPath(t.Argv[0], t.Env["PATH"])
			return "", &NotFoundError{Program: t.Argv[0], Path: t.Env["PATH"]}
		}
		return "", fmt.Errorf("starting %s: %w", t.Argv[0], err)
	}
	p := &proc{pid: pid, start: time.Now(), out: newOutput(pr, t.LogPath), done: make(chan struct{})}
	go p.out.copy()
	go func() {
		status, err := waitExit(pid)
		alive := groupAlive(pid)
		p.mu.Lock()
		p.result = resultOf(status, err, p.cancelled, time.Since(p.start))
		p.leftRunning = alive
		p.mu.Unlock()
		close(p.done)
	}()
	b.mu.Lock()
	b.seq++
	id := strconv.Itoa(pid) + "-" + strconv.Itoa(b.seq)
	b.procs[id] = p
	b.mu.Unlock()
	return id, nil
}

// wait waits for the process pid to end and collects it.
func wait(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			return ws, err
		}
	}
}

func resultOf(ws syscall.WaitStatus, err error, cancelled bool, d time.Duration) backend.Result {
	r := backend.Result{Duration: d, State: backend.StateSucceeded}
	switch {
	case err != nil:
		r.State, r.ExitCode, r.Message = backend.StateFailed, -1, "waiting for the process: "+err.Error()
	case ws.Signaled():
		r.State, r.ExitCode, r.Message = backend.StateFailed, -1, "killed by signal "+ws.Signal().String()
	case ws.ExitStatus() != 0:
		r.State, r.ExitCode = backend.StateFailed, ws.ExitStatus()
		r.Message = fmt.Sprintf("exited with code %d", r.ExitCode)
	default:
		return r
	}
	if cancelled {
		r.State = backend.StateCancelled
		r.Message = "cancelled"
	}
	return r
}

func (b *Backend) get(id string) (*proc, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.procs[id]
	if !ok {
		return nil, fmt.Errorf("no task %s", id)
	}
	return p, nil
}

// Watch streams the task's output lines to fn until it ends.
func (b *Backend) Watch(ctx context.Context, id string, fn func(backend.Event)) (*backend.Result, error) {
	p, err := b.get(id)
	if err != nil {
		return nil, err
	}
	if fn != nil {
		fn(backend.Event{State: backend.StateRunning})
	}
	lines := p.out.lines
	eof := false
	var linger <-chan time.Time
	done := p.done
	for done != nil || lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines, eof = nil, true
				continue
			}
			if fn != nil {
				fn(backend.Event{Line: l})
			}
		case <-done:
			// The output ends when every process holding it (the task's
			// children too) has closed it; a child left running in the
			// background may hold it for ever. Its lines still go to the
			// log, but Watch waits for them only a while.
			done = nil
			t := time.NewTimer(outputLinger)
			defer t.Stop()
			linger = t.C
		case <-linger:
			lines = nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p.mu.Lock()
	r := p.result
	left := p.leftRunning || !eof
	p.mu.Unlock()
	b.mu.Lock()
	delete(b.procs, id)
	if left {
		if b.left == nil {
			b.left = map[string]bool{}
		}
		b.left[id] = true
	}
	b.mu.Unlock()
	if fn != nil {
		fn(backend.Event{State: r.State, Message: r.Message})
	}
	return &r, nil
}

// LeftRunning reports whether a task that Watch saw end left processes
// running: children in the background, still in its process group or
// still holding its output. The executor reuses the work folder of a task
// only if none did. The answer is given once per task.
func (b *Backend) LeftRunning(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	left := b.left[id]
	delete(b.left, id)
	return left
}

// outputLinger is how long Watch waits for the rest of a task's output
// once the task's process has ended.
const outputLinger = 2 * time.Second

// maxLine is the longest line Watch hands out whole; a longer one comes in
// pieces of this size.
const maxLine = 1024 * 1024

// output copies a task's output from its pipe to its log file, made on the
// first byte, and hands out its lines.
type output struct {
	r       *os.File
	logPath string
	// lines carries the output's lines to Watch; when Watch falls behind,
	// lines are dropped (the log has them). It is closed once the output
	// has ended and the log is closed.
	lines   chan string
	partial []byte
}

func newOutput(r *os.File, logPath string) *output {
	return &output{r: r, logPath: logPath, lines: make(chan string, 64)}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (o *output) copy() {
	defer close(o.lines)
	defer o.r.Close()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var logf *os.File
	var logErr error
	for {
		n, err := o.r.Read(buf)
		if n > 0 {
			if logf == nil && logErr == nil {
				logf, logErr = os.OpenFile(o.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if logErr != nil {
					// Keep draining, so the task never blocks on a full
					// pipe; Watch still gets the lines.
					logf = nil
				}
			}
			if logf != nil {
				logf.Write(buf[:n])
			}
			o.split(buf[:n])
		}
		if err != nil {
			break
		}
	}
	if len(o.partial) > 0 {
		o.send(string(o.partial))
	}
	if logf != nil {
		logf.Close()
	}
}

// split hands out the complete lines in data, keeping a last partial one.
func (o *output) split(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			o.partial = append(o.partial, data...)
			break
		}
		line := data[:i]
		if len(o.partial) > 0 {
			o.partial = append(o.partial, line...)
			line = o.partial
		}
		if len(line) > 0 { // blank lines carry nothing to show
			o.send(string(line))
		}
		o.partial = o.partial[:0]
		data = data[i+1:]
	}
	for len(o.partial) >= maxLine {
		o.send(string(o.partial[:maxLine]))
		o.partial = append(o.partial[:0], o.partial[maxLine:]...)
	}
}

func (o *output) send(line string) {
	select {
	case o.lines <- line:
	default: // nobody is watching fast enough: the log file has it
	}
}

var (
	devNullOnce sync.Once
	devNullFile *os.File // kept, so that its descriptor stays open
	devNullFd   = ^uintptr(0)
)

// devNull is the descriptor of /dev/null, opened once for every process's
// stdin; if it cannot be opened, the process starts with stdin closed.
func devNull() uintptr {
	devNullOnce.Do(func() {
		if f, err := os.Open(os.DevNull); err == nil {
			devNullFile, devNullFd = f, f.Fd()
		}
	})
	return devNullFd
}

// Cancel sends SIGTERM to the task's process group, then SIGKILL after the
// grace period, and waits for the process to end.
func (b *Backend) Cancel(ctx context.Context, id string, grace time.Duration) error {
	p, err := b.get(id)
	if err != nil {
		return nil // already ended and collected
	}
	p.mu.Lock()
	p.cancelled = true
	p.mu.Unlock()
	pgid := p.pid
	signalGroup(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	case <-ctx.Done():
	}
	signalGroup(pgid, syscall.SIGKILL)
	<-p.done
	return nil
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// lookPath finds prog in PATH like the package function, remembering what
// it found in absolute folders: one stat per folder of PATH per step adds
// up over thousands of steps. A program that disappears is looked for
// again (see Submit).
func (b *Backend) lookPath(prog, path string) (string, error) {
	key := path + "\x00" + prog
	b.mu.Lock()
	p, ok := b.paths[key]
	b.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := lookPath(prog, path)
	if err == nil && filepath.IsAbs(p) {
		b.mu.Lock()
		if b.paths == nil {
			b.paths = map[string]string{}
		}
		b.paths[key] = p
		b.mu.Unlock()
	}
	return p, err
}

func (b *Backend) forgetPath(prog, path string) {
	b.mu.Lock()
	delete(b.paths, path+"\x00"+prog)
	b.mu.Unlock()
}

// lookPath finds prog in the given PATH (the step's, not weir's).
func lookPath(prog, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}
