package docker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/runtime/backend"
)

// privateEngine is a dockerd of the test's own (its socket, data and exec
// folders), so the test may crash and restart it without touching the
// engine other tests use.
type privateEngine struct {
	t    *testing.T
	dir  string
	args []string
	cmd  *exec.Cmd
}

func startPrivateEngine(t *testing.T) *privateEngine {
	t.Helper()
	_, err := exec.LookPath("dockerd")
	if err == nil {
		_, err = exec.LookPath("ip")
	}
	if err != nil || os.Getuid() != 0 {
		if inCI() {
			t.Fatalf("CI=true but dockerd cannot be started here (%v, uid %d)", err, os.Getuid())
		}
		t.Skip("restarting an engine needs dockerd, ip and root (apt-get install -y docker.io iproute2, then run the tests as root)")
	}
	// A bridge of its own: with --bridge=none dockerd would delete the
	// docker0 of the engine the other tests use.
	bridge := fmt.Sprintf("weirbr%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "link", "add", "name", bridge, "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("creating bridge %s: %v\n%s", bridge, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "delete", bridge).Run() })
	dir, err := os.MkdirTemp("", "weir-dockerd-")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644))
	e := &privateEngine{t: t, dir: dir, args: []string{
		"--host", "unix://" + filepath.Join(dir, "d.sock"),
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "d.pid"),
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--bridge", bridge, "--iptables=false", "--ip-masq=false",
	}}
	t.Cleanup(e.stop)
	e.start()
	return e
}

func (e *privateEngine) host() string { return "unix://" + filepath.Join(e.dir, "d.sock") }

func (e *privateEngine) start() {
	e.t.Helper()
	log, err := os.OpenFile(filepath.Join(e.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(e.t, err)
	defer log.Close()
	e.cmd = exec.Command("dockerd", e.args...)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(e.t, e.cmd.Start())
	cli, err := client.New(client.WithHost(e.host()))
	require.NoError(e.t, err)
	defer cli.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
			lines := strings.Split(string(b), "\n")
			if len(lines) > 20 {
				lines = lines[len(lines)-20:]
			}
			e.t.Fatalf("the private dockerd did not answer within 60s: %v\n%s", err, strings.Join(lines, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// crash kills dockerd and its containerd at once, as a crash of the
// engine's service would; the containers' shims live on.
func (e *privateEngine) crash() {
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	e.cmd.Wait()
	e.cmd = nil
	// dockerd's containerd dies with it, but where nothing reaps orphans
	// (a container as machine) it lingers as a zombie, which the next
	// dockerd takes for a live containerd and waits for. Forget it.
	pidFile := filepath.Join(e.dir, "exec", "containerd", "containerd.pid")
	if b, err := os.ReadFile(pidFile); err == nil {
		pid := strings.TrimSpace(string(b))
		for i := 0; i < 100; i++ {
			st, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil || strings.Contains(string(st), ") Z ") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		os.Remove(pidFile)
	}
}

// stop ends the engine politely, then by force, and removes its folders.
func (e *privateEngine) stop() {
	if e.cmd != nil {
		e.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { e.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		e.cmd = nil
	}
	// What dockerd left mounted under its folders, then the folders.
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		var mounts []string
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], e.dir+"/") {
				mounts = append(mounts, f[1])
			}
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
	}
	os.RemoveAll(e.dir)
}

// TestEngineRestartedMidRun: the engine crashes while a step runs; the
// step fails at once with a clear message (no hang), and once the engine
// is back the next weir removes the step's container.
func TestEngineRestartedMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an engine of its own")
	}
	e := startPrivateEngine(t)
	ctx := context.Background()
	dir := t.TempDir()
	b := newBackend(t, docker.Options{Host: e.host(), Project: "p", ProjectDir: dir})
	w := newWork(t, stepImage(t, b), "step", "sleep", "5m")
	id, err := b.Submit(ctx, w.task)
	require.NoError(t, err)
	started := make(chan struct{}, 1)
	type watched struct {
		res *backend.Result
		err error
	}
	done := make(chan watched, 1)
	go func() {
		res, err := b.Watch(ctx, id, func(ev backend.Event) {
			if strings.HasPrefix(ev.Line, "sleeping") {
				started <- struct{}{}
			}
		})
		done <- watched{res, err}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the step never started")
	}
	e.crash()
	var got watched
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Watch hangs after the engine went away")
	}
	require.NoError(t, got.err)
	assert.Equal(t, backend.StateFailed, got.res.State)
	assert.Contains(t, got.res.Message, "lost the Docker engine while the step ran")
	assert.NoError(t, b.Cancel(ctx, id, time.Second), "the task has ended")

	e.start()
	next := newBackend(t, docker.Options{Host: e.host(), Project: "p", ProjectDir: dir})
	n, err := next.Cleanup(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the crashed run's container is cleaned up")
	assert.Empty(t, containersOf(t, next, w.task.RunID))
}
