package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/runtime/backend"
)

// tmpRoot holds what the tests build once per process (the step program).
var tmpRoot string

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "weir-docker-test-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// inCI reports whether tests run in CI, where a missing engine is a
// failure, never a skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// newBackend connects to the engine for a test, or skips it (fails it
// under CI=true) with a message saying how to start one.
func newBackend(t testing.TB, o docker.Options) *docker.Backend {
	t.Helper()
	if o.Project == "" {
		o.Project = "weir-test"
	}
	b, err := docker.New(context.Background(), o)
	if err != nil {
		if inCI() {
			t.Fatalf("CI=true but no Docker engine answers (.ci/run starts one): %v", err)
		}
		t.Skipf("no Docker engine answers, skipping: %v\n(to run these tests, start one as root: apt-get install -y docker.io && dockerd > /tmp/dockerd.log 2>&1 &, or set DOCKER_HOST)", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

var (
	stepOnce sync.Once
	stepBin  string // the step program, built for this machine
	stepErr  error
)

// stepProgram compiles testdata/step as a static binary, once.
func stepProgram(t testing.TB) string {
	t.Helper()
	stepOnce.Do(func() {
		dir := filepath.Join(tmpRoot, "bin")
		if stepErr = os.MkdirAll(dir, 0o755); stepErr != nil {
			return
		}
		out := filepath.Join(dir, "step")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/step")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if b, err := cmd.CombinedOutput(); err != nil {
			stepErr = fmt.Errorf("building the step program: %v\n%s", err, b)
			return
		}
		stepBin = out
	})
	require.NoError(t, stepErr)
	return stepBin
}

// stepImageOf packages the step program as /bin/step of an image made
// from nothing, the way ko does: one layer, a config with PATH.
func stepImageOf(t testing.TB) v1.Image {
	t.Helper()
	bin := stepProgram(t)
	layer, err := docker.LayerFromDir(filepath.Dir(bin), "bin")
	require.NoError(t, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Env = []string{"PATH=/bin"}
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	require.NoError(t, validate.Image(img))
	return img
}

var (
	imageMu   sync.Mutex
	imageTags = map[string]string{}
)

// stepImage loads the step image into the engine b talks to, and returns
// its tag (named by content: a changed program is a new tag).
func stepImage(t testing.TB, b *docker.Backend) string {
	t.Helper()
	imageMu.Lock()
	defer imageMu.Unlock()
	host := b.Client().DaemonHost()
	if tag, ok := imageTags[host]; ok {
		return tag
	}
	img := stepImageOf(t)
	d, err := img.Digest()
	require.NoError(t, err)
	tag, err := name.NewTag("weir.local/weir-test/step:" + d.Hex[:24])
	require.NoError(t, err)
	_, err = daemon.Write(tag, img, daemon.WithClient(b.Client()))
	require.NoError(t, err)
	imageTags[host] = tag.String()
	return tag.String()
}

// work is a step's work folder laid out the way the executor lays it out.
type work struct {
	t    testing.TB
	dir  string
	task *backend.Task
}

var taskSeq int

func newWork(t testing.TB, image string, argv ...string) *work {
	t.Helper()
	return newWorkIn(t, t.TempDir(), image, argv...)
}

// newWorkIn lays out a work folder at dir.
func newWorkIn(t testing.TB, dir, image string, argv ...string) *work {
	t.Helper()
	for _, d := range []string{"in", "out", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	metrics := filepath.Join(dir, "metrics.jsonl") // made by the first append
	taskSeq++
	tk := &backend.Task{RunID: fmt.Sprintf("run-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), taskSeq),
		Step: "tasks.test", Attempt: 1, Argv: argv, WorkDir: dir, Dir: dir, Image: image,
		Env: map[string]string{"PATH": os.Getenv("PATH"), "HOME": dir, "TMPDIR": filepath.Join(dir, "tmp"),
			"WEIR_STEP": "tasks.test", "WEIR_METRICS": metrics},
		Inputs: map[string]string{}, Outputs: map[string]string{}, LogPath: filepath.Join(dir, "log.txt")}
	tk.Env["WEIR_RUN_ID"] = tk.RunID
	return &work{t: t, dir: dir, task: tk}
}

func (w *work) input(name, content string) *work {
	p := filepath.Join(w.dir, "in", name)
	require.NoError(w.t, os.WriteFile(p, []byte(content), 0o644))
	w.task.Inputs[name] = p
	w.task.Env["WEIR_INPUT_"+strings.ToUpper(name)] = p
	return w
}

func (w *work) output(name string) *work {
	p := filepath.Join(w.dir, "out", name)
	w.task.Outputs[name] = p
	w.task.Env["WEIR_OUTPUT_"+strings.ToUpper(name)] = p
	return w
}

func (w *work) params(v map[string]any) *work {
	p := filepath.Join(w.dir, "params.json")
	b, _ := json.Marshal(v)
	require.NoError(w.t, os.WriteFile(p, b, 0o644))
	w.task.Env["WEIR_PARAMS"] = p
	return w
}

func (w *work) read(rel string) string {
	b, err := os.ReadFile(filepath.Join(w.dir, rel))
	require.NoError(w.t, err)
	return string(b)
}

// run submits the task and watches it to its end, collecting its lines.
func run(t testing.TB, b backend.Interface, tk *backend.Task) (*backend.Result, []string) {
	t.Helper()
	ctx := context.Background()
	id, err := b.Submit(ctx, tk)
	require.NoError(t, err)
	var lines []string
	var mu sync.Mutex
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := b.Watch(wctx, id, func(e backend.Event) {
		if e.Line != "" {
			mu.Lock()
			lines = append(lines, e.Line)
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	return res, lines
}

// containersOf lists the containers, running or not, of a run.
func containersOf(t testing.TB, b *docker.Backend, runID string) []string {
	t.Helper()
	list, err := b.Client().ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", docker.LabelRun+"="+runID)})
	require.NoError(t, err)
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID)
	}
	return ids
}
