package k8stest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is one process of the control plane as the state file records it.
type daemon struct {
	Name string   `json:"name"` // etcd, kube-apiserver, ..., kwok; also the log and PID file stem
	Path string   `json:"path"` // the binary
	Args []string `json:"args"`
	Env  []string `json:"env,omitempty"` // added to daemonEnv
	PID  int      `json:"pid"`
}

// child is a daemon this process started: a goroutine reaps it, so a
// stopped daemon does not linger as a zombie while the test runs on.
type child struct {
	pid  int
	done chan struct{}
}

// spawn starts d in a session of its own (setsid: no signal sent to the
// caller's process group reaches it, and it outlives the caller), with
// stdout and stderr appended to dir/NAME.log, and writes dir/NAME.pid.
func spawn(dir string, d *daemon) (*child, error) {
	logf, err := os.OpenFile(filepath.Join(dir, d.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(d.Path, d.Args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(daemonEnv(), d.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("k8stest: start %s: %w", d.Name, err)
	}
	c := &child{pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	d.PID = c.pid
	if err := os.WriteFile(filepath.Join(dir, d.Name+".pid"), []byte(strconv.Itoa(c.pid)+"\n"), 0o600); err != nil {
		return c, err
	}
	return c, nil
}

// daemonEnv is this process's environment without proxy settings (the
// daemons talk to each other on 127.0.0.1 and must never go through a
// proxy), KUBECONFIG and kwok's KWOK_* settings.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "KUBECONFIG":
			continue
		}
		if strings.HasPrefix(k, "KWOK_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
}

// alive reports whether d's PID still runs d's binary and has not exited
// (a zombie whose parent has not reaped it counts as exited). Checking the
// command line keeps a stale state file from ever signalling an unrelated
// process that reused the PID. (The binary is argv[0], or argv[1] when it
// is a script run through its #! line.)
func alive(d daemon) bool {
	if d.PID <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", d.PID))
	if err != nil {
		return false
	}
	// A process whose exec is still under way shows an empty command line
	// for a moment (seen right after Start returns): its stat says more.
	args := bytes.SplitN(cmdline, []byte{0}, 3)
	if len(cmdline) > 0 && string(args[0]) != d.Path && (len(args) < 2 || string(args[1]) != d.Path) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.PID))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		switch stat[i+2] {
		case 'Z', 'X':
			return false
		}
	}
	return true
}

// signal sends sig to d's process group (d leads it: spawn starts it with
// setsid), so whatever d started goes too; to d alone if that fails.
func signal(d daemon, sig syscall.Signal) error {
	if err := syscall.Kill(-d.PID, sig); err == nil {
		return nil
	}
	err := syscall.Kill(d.PID, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// stop sends SIGTERM to d, waits up to grace for it to exit, then sends
// SIGKILL and waits again. ch is the reaper when this process started d.
func stop(d daemon, ch *child, grace time.Duration) error {
	if !alive(d) {
		return nil
	}
	if err := signal(d, syscall.SIGTERM); err != nil {
		return fmt.Errorf("k8stest: stop %s (pid %d): %w", d.Name, d.PID, err)
	}
	if waitExit(d, ch, grace) {
		return nil
	}
	if err := signal(d, syscall.SIGKILL); err != nil {
		return fmt.Errorf("k8stest: kill %s (pid %d): %w", d.Name, d.PID, err)
	}
	if waitExit(d, ch, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("k8stest: %s (pid %d) still runs 10s after SIGKILL", d.Name, d.PID)
}

func waitExit(d daemon, ch *child, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ch != nil && ch.pid == d.PID {
			select {
			case <-ch.done:
				return true
			case <-time.After(50 * time.Millisecond):
			}
		} else {
			if !alive(d) {
				return true
			}
			time.Sleep(50 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			return !alive(d)
		}
	}
}

// logTail returns the last n lines of dir/NAME.log.
func logTail(dir, name string, n int) string {
	b, err := os.ReadFile(filepath.Join(dir, name+".log"))
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rss returns the resident set size of pid in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("k8stest: no VmRSS for pid %d", pid)
}
