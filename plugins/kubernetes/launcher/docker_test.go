package launcher_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/internal/imagetest"
	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/plugins/kubernetes/launcher"
	"weir.dev/weir/runtime/backend"
)

// engine connects to the Docker Engine through the Docker backend, or
// skips the test (fails it under CI=true) saying how to start one.
func engine(t *testing.T) *client.Client {
	t.Helper()
	b, err := docker.New(context.Background(), docker.Options{Project: "weir-launcher-test"})
	if err != nil {
		if inCI() {
			t.Fatalf("CI=true but no Docker engine answers (.ci/run starts one): %v", err)
		}
		t.Skipf("no Docker engine answers, skipping: %v\n(to run this test, start one as root: apt-get install -y docker.io && dockerd > /tmp/dockerd.log 2>&1 &, or set DOCKER_HOST)", err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Client()
}

var (
	buildOnce sync.Once
	buildBin  []byte
	buildErr  error
	buildTook time.Duration
)

// launcherBinary builds cmd/weir-launcher as the static binary an image
// gets, once per test process.
func launcherBinary(t *testing.T) []byte {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "weir-launcher-build-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "weir-launcher")
		start := time.Now()
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "weir.dev/weir/cmd/weir-launcher")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building cmd/weir-launcher: %v\n%s", err, b)
			return
		}
		buildTook = time.Since(start)
		buildBin, buildErr = os.ReadFile(out)
	})
	require.NoError(t, buildErr)
	return buildBin
}

// busyboxImage is the machine's static busybox as /bin/busybox with a link
// per applet, in an image made from nothing (nothing is pulled).
func busyboxImage(t *testing.T) v1.Image {
	t.Helper()
	return imagetest.Busybox(t, nil)
}

// launcherImage loads busybox plus the launcher's layer into the engine.
func launcherImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	img, err := launcher.AddToImage(busyboxImage(t), launcherBinary(t))
	require.NoError(t, err)
	require.NoError(t, validate.Image(img))
	d, err := img.Digest()
	require.NoError(t, err)
	tag, err := name.NewTag("weir.local/weir-test/launcher-busybox:" + d.Hex[:24])
	require.NoError(t, err)
	_, err = daemon.Write(tag, img, daemon.WithClient(cli))
	require.NoError(t, err)
	return tag.String()
}

// containerRun runs the launcher image as the kubernetes backend's Job
// would: the bucket (here a folder, bind-mounted at /bucket) and prefix
// as the launcher's flags, the step's command after --, the task's
// environment as the host has it (PATH excepted), no network.
func containerRun(t *testing.T, cli *client.Client, image, bucketDir, prefix, user string, tk *backend.Task) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var env []string
	for k, v := range tk.Env {
		if k != "PATH" {
			env = append(env, k+"="+v)
		}
	}
	cmd := append([]string{"-bucket", "file:///bucket", "-prefix", prefix, "--"}, tk.Argv...)
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: image, Cmd: cmd, Env: env, User: user,
			Labels: map[string]string{docker.LabelProject: "weir-launcher-test"}},
		HostConfig: &container.HostConfig{NetworkMode: "none",
			Mounts: []mount.Mount{{Type: mount.TypeBind, Source: bucketDir, Target: "/bucket"}}},
	})
	require.NoError(t, err)
	id := created.ID
	defer cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true})
	_, err = cli.ContainerStart(ctx, id, client.ContainerStartOptions{})
	require.NoError(t, err)
	wr := cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-wr.Result:
		code = int(r.StatusCode)
	case err := <-wr.Error:
		require.NoError(t, err)
	}
	rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	require.NoError(t, err)
	defer rc.Close()
	var o, e bytes.Buffer
	_, err = stdcopy.StdCopy(&o, &e, rc)
	require.NoError(t, err)
	return code, o.String(), e.String()
}

// TestLauncherInDocker runs a step in a container of busybox plus the
// launcher's layer, its artifacts moving through a file bucket on a bind
// mount, and checks it against the same step run by the local backend:
// the same contract, the same outputs, the same digests.
func TestLauncherInDocker(t *testing.T) {
	cli := engine(t)
	image := launcherImage(t, cli)
	t.Logf("cmd/weir-launcher: %d bytes static (-s -w), built in %s", len(launcherBinary(t)), buildTook.Round(time.Millisecond))
	ctx := context.Background()
	url, bucketDir := bucket(t)

	w := sampleStep(t)
	prefix := "runs/run-1/tasks.train/1"
	start := time.Now()
	_, err := launcher.Stage(ctx, url, prefix, w.task)
	require.NoError(t, err)
	staged := time.Since(start)

	start = time.Now()
	code, stdout, stderr := containerRun(t, cli, image, bucketDir, prefix, "", w.task)
	ran := time.Since(start)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	for _, want := range []string{
		"cwd /weir\n",
		"HOME=/weir\n",
		"TMPDIR=/weir\n",
		"WEIR_INPUT_DATA=/weir/in/data\n",
		"WEIR_INPUT_TREE=/weir/in/tree\n",
		"WEIR_OUTPUT_COPY=/weir/out/copy\n",
		"WEIR_OUTPUT_MODEL=/weir/out/model\n",
		"WEIR_PARAMS=/weir/params.json\n",
		"WEIR_METRICS=/weir/metrics.jsonl\n",
		"WEIR_RUN_ID=run-1\n",
		"WEIR_STEP=tasks.train\n",
	} {
		assert.Contains(t, stdout, want)
	}
	assert.Equal(t, "to stderr\n", stderr)

	back := w.twin()
	start = time.Now()
	require.NoError(t, launcher.Collect(ctx, url, prefix, back.task))
	collected := time.Since(start)
	res := readResult(t, url, prefix)
	got := back.digests()
	require.Len(t, res.Outputs, 2)
	for _, a := range res.Outputs {
		assert.Equal(t, a.Digest, got[a.Name].Digest, a.Name)
	}
	assert.Equal(t, res.Metrics.Digest, got["metrics.jsonl"].Digest)

	loc := w.twin()
	lres := runLocal(t, loc.task)
	require.Equal(t, backend.StateSucceeded, lres.State, loc.read("log.txt"))
	assert.Equal(t, loc.digests(), got, "the same step, run locally, gives the same digests")
	assert.Equal(t, loc.read("metrics.jsonl"), back.read("metrics.jsonl"))
	t.Logf("stage %s, container %s, collect %s (local run %s)", staged.Round(time.Millisecond),
		ran.Round(time.Millisecond), collected.Round(time.Millisecond), lres.Duration.Round(time.Millisecond))
}

// TestLauncherInDockerFailingStepAsAnotherUser: a step that fails keeps
// its exit code through the launcher, and the launcher works as a user
// other than root (the pod's securityContext may say so).
func TestLauncherInDockerFailingStepAsAnotherUser(t *testing.T) {
	cli := engine(t)
	image := launcherImage(t, cli)
	ctx := context.Background()
	url, bucketDir := bucket(t)
	w := newWork(t, "sh", "-c", `id -u; echo partial > "$WEIR_OUTPUT_LOG"; echo 'bad input' >&2; exit 3`).
		file("data", "x\n").output("log")
	_, err := launcher.Stage(ctx, url, "p", w.task)
	require.NoError(t, err)
	require.NoError(t, filepath.Walk(bucketDir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Chmod(p, 0o777) // the bucket's own permissions: writable by the pod's user
		}
		return err
	}))
	code, stdout, stderr := containerRun(t, cli, image, bucketDir, "p", "1000:1000", w.task)
	assert.Equal(t, 3, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Equal(t, "1000\n", stdout)
	assert.Equal(t, "bad input\n", stderr)
	res := readResult(t, url, "p")
	assert.Equal(t, 3, res.ExitCode)
	back := w.twin()
	require.NoError(t, launcher.Collect(ctx, url, "p", back.task))
	assert.Equal(t, "partial\n", back.read("out/log"))
}
