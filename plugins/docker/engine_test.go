package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

func TestEngineNotReachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	_, err := docker.New(context.Background(), docker.Options{Host: "unix://" + sock})
	var ee *docker.EngineError
	require.ErrorAs(t, err, &ee)
	assert.Contains(t, err.Error(), "cannot reach the Docker engine at unix://"+sock)
	assert.Contains(t, err.Error(), "DOCKER_HOST")
	assert.Contains(t, err.Error(), "dockerd")

	t.Setenv("DOCKER_HOST", "unix://"+sock)
	_, err = docker.New(context.Background(), docker.Options{})
	require.ErrorAs(t, err, &ee)
	assert.Contains(t, err.Error(), "DOCKER_HOST is unix://"+sock)
}

func TestDescribe(t *testing.T) {
	b := newBackend(t, docker.Options{GPUs: 2})
	d, err := b.Describe(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "docker", d.Name)
	assert.Equal(t, 2, d.GPUs)
	assert.Equal(t, backend.ProtocolVersion, d.ProtocolVersion)
	assert.False(t, d.Services)
	assert.Positive(t, d.MaxParallelism)
	_, err = b.Deploy(context.Background(), &backend.Service{})
	assert.ErrorIs(t, err, backend.ErrUnsupported)
	_, err = b.Watch(context.Background(), "nope", nil)
	assert.ErrorIs(t, err, backend.ErrNotFound)
}

// TestStepContractInContainer: inputs read-only under /weir/in, outputs
// under /weir/out, params, metrics, HOME and TMPDIR under /weir, no
// network, output in the log file and the watcher.
func TestStepContractInContainer(t *testing.T) {
	b := newBackend(t, docker.Options{})
	img := stepImage(t, b)
	w := newWork(t, img, "step", "contract").input("data", "1,2,3\n").output("report").params(map[string]any{"lr": 0.1})
	res, lines := run(t, b, w.task)
	require.Equal(t, backend.StateSucceeded, res.State, "%s\n%s", res.Message, w.read("log.txt"))
	report := w.read("out/report")
	for _, want := range []string{
		"cwd /weir\n",
		"HOME=/weir\n",
		"TMPDIR=/weir/tmp\n",
		"WEIR_METRICS=/weir/metrics.jsonl\n",
		"WEIR_PARAMS=/weir/params.json\n",
		"WEIR_STEP=tasks.test\n",
		"WEIR_RUN_ID=" + w.task.RunID + "\n",
		"WEIR_INPUT_DATA=/weir/in/data\n",
		"input DATA writable: false\n",
		"WEIR_OUTPUT_REPORT=/weir/out/report\n",
		"tmp writable: true\n",
		"interfaces lo\n",
	} {
		assert.Contains(t, report, want)
	}
	assert.Equal(t, "1,2,3\n", w.read("in/data"), "the input is untouched")
	assert.Equal(t, "{\"checked\":12}\n", w.read("metrics.jsonl"))
	assert.Equal(t, report, strings.Join(lines, "\n")+"\n", "every line reached the watcher")
	assert.Equal(t, report, w.read("log.txt"), "and the log file")
	assert.Empty(t, containersOf(t, b, w.task.RunID), "the container is removed once collected")
}

func TestNetworkWhenAsked(t *testing.T) {
	b := newBackend(t, docker.Options{})
	w := newWork(t, stepImage(t, b), "step", "contract").output("report")
	w.task.Network = true
	res, _ := run(t, b, w.task)
	require.Equal(t, backend.StateSucceeded, res.State, res.Message)
	assert.Regexp(t, `interfaces .*eth0`, w.read("out/report"))
}

func TestStepOutputsAndMetrics(t *testing.T) {
	b := newBackend(t, docker.Options{})
	w := newWork(t, stepImage(t, b), "step", "io").input("a", "xyz").output("model").output("stats").params(map[string]any{"k": 3})
	res, lines := run(t, b, w.task)
	require.Equal(t, backend.StateSucceeded, res.State, res.Message)
	assert.Contains(t, w.read("out/model"), "output MODEL\nparams {\"k\":3}\ninputs 3 bytes\n")
	assert.Contains(t, w.read("out/stats"), "output STATS\n")
	assert.Equal(t, "{\"bytes\":3,\"inputs\":1}\n", w.read("metrics.jsonl"))
	assert.ElementsMatch(t, []string{"io: read 1 inputs, wrote 2 outputs", "io: done"}, lines, "stdout and stderr")
}

func TestExitNonZero(t *testing.T) {
	b := newBackend(t, docker.Options{})
	w := newWork(t, stepImage(t, b), "step", "fail")
	res, _ := run(t, b, w.task)
	assert.Equal(t, backend.StateFailed, res.State)
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, "exited with code 3", res.Message)
	assert.Contains(t, w.read("log.txt"), "step: something went wrong\n")
	assert.Empty(t, containersOf(t, b, w.task.RunID))
}

func TestOOMKilled(t *testing.T) {
	b := newBackend(t, docker.Options{})
	w := newWork(t, stepImage(t, b), "step", "oom")
	w.task.Resources = &schema.Resources{Memory: "32Mi"}
	res, _ := run(t, b, w.task)
	assert.Equal(t, backend.StateFailed, res.State)
	assert.Equal(t, "killed: out of memory (the memory limit is 32Mi)", res.Message)
	assert.Equal(t, 137, res.ExitCode)
}

func TestCancelStopsThenKills(t *testing.T) {
	b := newBackend(t, docker.Options{})
	w := newWork(t, stepImage(t, b), "step", "sleep", "5m")
	ctx := context.Background()
	id, err := b.Submit(ctx, w.task)
	require.NoError(t, err)
	require.Len(t, containersOf(t, b, w.task.RunID), 1)
	started := make(chan struct{}, 1)
	done := make(chan *backend.Result)
	go func() {
		res, err := b.Watch(ctx, id, func(e backend.Event) {
			if strings.HasPrefix(e.Line, "sleeping") {
				started <- struct{}{}
			}
		})
		assert.NoError(t, err)
		done <- res
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the step never started")
	}
	t0 := time.Now()
	require.NoError(t, b.Cancel(ctx, id, time.Second))
	res := <-done
	assert.Less(t, time.Since(t0), 20*time.Second)
	assert.Equal(t, backend.StateCancelled, res.State)
	assert.Equal(t, "cancelled", res.Message)
	assert.Empty(t, containersOf(t, b, w.task.RunID))
	assert.NoError(t, b.Cancel(ctx, id, time.Second), "cancelling what has ended is a no-op")
}

func TestLabels(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, docker.Options{Project: "churn", ProjectDir: dir})
	w := newWork(t, stepImage(t, b), "step", "sleep", "5m")
	w.task.Step, w.task.Attempt = "training.churn.trial[lr=0.1]", 2
	ctx := context.Background()
	id, err := b.Submit(ctx, w.task)
	require.NoError(t, err)
	in, err := b.Client().ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"weir.project": "churn", "weir.run": w.task.RunID, "weir.step": "training.churn.trial[lr=0.1]",
		"weir.attempt": "2", "weir.dir": dir}, in.Container.Config.Labels)
	require.NoError(t, b.Cancel(ctx, id, 0))
}

// TestCleanupLeftovers: containers a killed weir left behind are removed
// by the next one of the same project folder, and only those.
func TestCleanupLeftovers(t *testing.T) {
	ctx := context.Background()
	dir, other := t.TempDir(), t.TempDir()
	killed := newBackend(t, docker.Options{Project: "p", ProjectDir: dir})
	img := stepImage(t, killed)
	w1 := newWork(t, img, "step", "sleep", "5m")
	_, err := killed.Submit(ctx, w1.task)
	require.NoError(t, err)
	// Another checkout of a project of the same name, running.
	neighbour := newBackend(t, docker.Options{Project: "p", ProjectDir: other})
	w2 := newWork(t, img, "step", "sleep", "5m")
	id2, err := neighbour.Submit(ctx, w2.task)
	require.NoError(t, err)

	next := newBackend(t, docker.Options{Project: "p", ProjectDir: dir})
	n, err := next.Cleanup(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Empty(t, containersOf(t, next, w1.task.RunID))
	assert.Len(t, containersOf(t, next, w2.task.RunID), 1)
	require.NoError(t, neighbour.Cancel(ctx, id2, 0))
}

// TestNextApplyCleansUp: the first task of a run removes the containers an
// earlier, killed run of the same project left, the project found from the
// executor's layout of work folders (PROJECT/.weir/runs/RUN/STEP).
func TestNextApplyCleansUp(t *testing.T) {
	ctx := context.Background()
	project := t.TempDir()
	killed := newBackend(t, docker.Options{})
	img := stepImage(t, killed)
	w1 := newWorkIn(t, filepath.Join(project, ".weir", "runs", "run1", "tasks.a"), img, "step", "sleep", "5m")
	w1.task.RunID = "run1"
	_, err := killed.Submit(ctx, w1.task)
	require.NoError(t, err)
	require.Len(t, containersOf(t, killed, "run1"), 1)

	next := docker.Unconnected(docker.Options{})
	require.NoError(t, next.Configure(ctx, &schema.Backend{Kind: "docker"}))
	t.Cleanup(func() { next.Close() })
	w2 := newWorkIn(t, filepath.Join(project, ".weir", "runs", "run2", "tasks.a"), img, "step", "noop")
	w2.task.RunID = "run2"
	res, _ := run(t, next, w2.task)
	require.Equal(t, backend.StateSucceeded, res.State, res.Message)
	assert.Empty(t, containersOf(t, next, "run1"))
	assert.Contains(t, w2.read("log.txt"), "weir: removed 1 container(s) that an earlier run of this project left behind")
}

// TestPinsFromWeirLock: with no pins given, the backend runs the images the
// project's weir.lock pins, by digest.
func TestPinsFromWeirLock(t *testing.T) {
	ctx := context.Background()
	project := t.TempDir()
	b := newBackend(t, docker.Options{})
	img := stepImage(t, b)
	pin, err := (&docker.Resolver{Engine: b.Client()}).Resolve(ctx, img, nil)
	require.NoError(t, err)
	missing := "sha256:" + strings.Repeat("0", 64)
	lock := &schema.Lock{FormatVersion: schema.LockFormatVersion, Images: docker.Lock{
		"step:pinned":        {Ref: "step:pinned", Digest: pin.Digest},
		"127.0.0.1:9/gone:1": {Ref: "127.0.0.1:9/gone:1", Digest: missing},
	}.Images()}
	require.NoError(t, schema.WriteLock(project, lock))

	fresh := newBackend(t, docker.Options{})
	w := newWorkIn(t, filepath.Join(project, ".weir", "runs", "r1", "tasks.a"), "step:pinned", "step", "noop")
	res, _ := run(t, fresh, w.task)
	assert.Equal(t, backend.StateSucceeded, res.State, "the engine's image, by the ID weir.lock pins: %s", res.Message)

	w = newWorkIn(t, filepath.Join(project, ".weir", "runs", "r1", "tasks.b"), "127.0.0.1:9/gone:1", "step", "noop")
	_, err = fresh.Submit(ctx, w.task)
	assert.ErrorContains(t, err, "image 127.0.0.1:9/gone:1 (pinned to "+missing+" in weir.lock) is not in the Docker engine and pulling it failed")
}

func TestConfigure(t *testing.T) {
	ctx := context.Background()
	b := docker.Unconnected(docker.Options{})
	raw, err := b.Lower(ctx, &schema.Step{Run: &schema.StepRun{Image: "i", Command: []string{"x"}}})
	require.NoError(t, err, "lowering needs no engine")
	assert.Contains(t, string(raw), `"image":"i"`)
	sock := filepath.Join(t.TempDir(), "none.sock")
	require.NoError(t, b.Configure(ctx, &schema.Backend{Kind: "docker", Host: "unix://" + sock}), "the engine is reached at the first task")
	_, err = b.Submit(ctx, newWork(t, "i", "x").task)
	var ee *docker.EngineError
	require.ErrorAs(t, err, &ee)
	assert.Contains(t, ee.Error(), sock)
	_, err = b.Describe(ctx)
	require.ErrorAs(t, err, &ee)
}

func TestImageMissingAndNotPullable(t *testing.T) {
	b := newBackend(t, docker.Options{})
	w := newWork(t, "127.0.0.1:9/weir/missing:1", "step", "noop")
	_, err := b.Submit(context.Background(), w.task)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "image 127.0.0.1:9/weir/missing:1 is not in the Docker engine and pulling it failed")

	w = newWork(t, "", "step", "noop")
	_, err = b.Submit(context.Background(), w.task)
	assert.ErrorContains(t, err, "this step names none (run.image)")
}

// TestCodeFolderImage: a step with a code folder runs on its image plus a
// layer holding the code, named by content; the same code is the same
// image.
func TestCodeFolderImage(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, docker.Options{Project: "proj"})
	img := stepImage(t, b)
	// Forget the images of earlier runs (of another step program).
	old, err := b.Client().ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("reference", "weir.local/proj/tasks-test")})
	require.NoError(t, err)
	for _, im := range old.Items {
		_, err := b.Client().ImageRemove(ctx, im.ID, client.ImageRemoveOptions{Force: true})
		require.NoError(t, err)
	}
	var tags []string
	for i := 0; i < 2; i++ {
		w := newWork(t, img, "step", "code").output("out")
		code := filepath.Join(w.dir, "code")
		require.NoError(t, os.MkdirAll(code, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(code, "message.txt"), []byte("packaged code\n"), 0o644))
		w.task.Dir = code
		res, _ := run(t, b, w.task)
		require.Equal(t, backend.StateSucceeded, res.State, "%s\n%s", res.Message, w.read("log.txt"))
		assert.Equal(t, "packaged code\n", w.read("out/out"))
		list, err := b.Client().ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("reference", "weir.local/proj/tasks-test")})
		require.NoError(t, err)
		require.Len(t, list.Items, 1)
		tags = append(tags, list.Items[0].RepoTags...)
	}
	assert.Len(t, tags, 2)
	assert.Equal(t, tags[0], tags[1], "the same code, the same image")
	assert.Regexp(t, `^weir.local/proj/tasks-test:[0-9a-f]{24}$`, tags[0])
}

// TestCodeFolderImagePushed: with a project registry, the derived image is
// pushed there (go-containerregistry's registry on loopback) and the
// engine pulls it.
func TestCodeFolderImagePushed(t *testing.T) {
	host := newRegistry(t, nil)
	b := newBackend(t, docker.Options{Project: "proj", Registry: host + "/team", Keychain: authn.NewMultiKeychain()})
	t.Cleanup(func() { // the registry's port is new each run: so would the engine's tags be
		ctx := context.Background()
		list, err := b.Client().ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("reference", host+"/team/*/*")})
		if err == nil {
			for _, im := range list.Items {
				for _, tag := range im.RepoTags {
					b.Client().ImageRemove(ctx, tag, client.ImageRemoveOptions{})
				}
			}
		}
	})
	w := newWork(t, stepImage(t, b), "step", "code").output("out")
	code := filepath.Join(w.dir, "code")
	require.NoError(t, os.MkdirAll(code, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(code, "message.txt"), []byte("pushed code\n"), 0o644))
	w.task.Dir = code
	res, _ := run(t, b, w.task)
	require.Equal(t, backend.StateSucceeded, res.State, "%s\n%s", res.Message, w.read("log.txt"))
	assert.Equal(t, "pushed code\n", w.read("out/out"))
}

// TestResolveFromEngine: an image only the engine has is pinned to its
// image ID with the daemon package, and runs by that pin.
func TestResolveFromEngine(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, docker.Options{})
	img := stepImage(t, b)
	r := &docker.Resolver{Engine: b.Client()}
	pin, err := r.Resolve(ctx, img, nil)
	require.NoError(t, err)
	assert.Equal(t, docker.SourceEngine, pin.Source)
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, pin.Digest)
	assert.Equal(t, pin.Digest, pin.Reference())

	_, err = r.Resolve(ctx, "weir.local/weir-test/absent:1", nil)
	assert.ErrorContains(t, err, "cannot resolve image weir.local/weir-test/absent:1 (engine: ")

	pinned := newBackend(t, docker.Options{Images: docker.Lock{"step:pinned": pin}})
	w := newWork(t, "step:pinned", "step", "noop")
	res, _ := run(t, pinned, w.task)
	assert.Equal(t, backend.StateSucceeded, res.State, res.Message)
}
