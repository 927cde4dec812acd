package kubernetes

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"weir.dev/weir/internal/imagetest"
	"weir.dev/weir/plugins/kubernetes/launcher"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// The derived images are pushed to a real OCI registry: Debian's
// docker-registry (the CNCF Distribution registry, the one Docker Hub and
// most registries derive from), started on 127.0.0.1 with its storage in
// a temporary folder. Without it the tests skip (and fail under CI=true:
// .ci/run installs it).

// startRegistry starts docker-registry and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but docker-registry is not installed (.ci/run installs it): %v", err)
		}
		t.Skip("the derived-image tests push to a real registry: apt-get install -y docker-registry (its service need not run: the test starts its own)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.yml")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
`, filepath.Join(dir, "data"), addr), 0o644))
	cmd := exec.Command(bin, "serve", conf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		select {
		case <-exited:
			t.Fatalf("docker-registry exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	launcherOnce sync.Once
	launcherPath string
	launcherErr  error
)

// testLauncher builds cmd/weir-launcher as make build does (static, for
// this machine's architecture).
func testLauncher(t *testing.T) string {
	t.Helper()
	launcherOnce.Do(func() {
		dir, err := os.MkdirTemp("", "weir-launcher-")
		if err != nil {
			launcherErr = err
			return
		}
		launcherPath = filepath.Join(dir, LauncherName)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", launcherPath, "weir.dev/weir/cmd/weir-launcher")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			launcherErr = fmt.Errorf("building cmd/weir-launcher: %v\n%s", err, out)
		}
	})
	require.NoError(t, launcherErr)
	return launcherPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if launcherPath != "" {
		os.RemoveAll(filepath.Dir(launcherPath))
	}
	os.Exit(code)
}

// busyboxImage is an image of the machine's static busybox at
// /bin/busybox and /bin/sh, with a marker file telling versions apart.
func busyboxImage(t *testing.T, version string) v1.Image {
	t.Helper()
	img, err := mutate.Config(imagetest.Busybox(t, map[string]string{"version": version}), v1.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}})
	require.NoError(t, err)
	return img
}

// files lists an image's files: path to the index of the layer holding it.
func files(t *testing.T, img v1.Image) map[string]int {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	out := map[string]int{}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			out[strings.TrimSuffix(h.Name, "/")] = i
		}
		rc.Close()
	}
	return out
}

// stepTask is an attempt of a step with a code folder, laid out as the
// executor does: PROJECT/.weir/runs/RUN/STEP, the code copied to code/.
func stepTask(t *testing.T, project, run, image string) *backend.Task {
	t.Helper()
	work := filepath.Join(project, ".weir", "runs", run, "training.churn")
	code := filepath.Join(work, "code")
	require.NoError(t, os.MkdirAll(filepath.Join(code, "lib"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(code, "train.py"), []byte("print('training')\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(code, "lib", "util.py"), []byte("X = 1\n"), 0o644))
	return &backend.Task{RunID: run, Step: "training.churn", Attempt: 1, Argv: []string{"python", "train.py"}, Image: image,
		WorkDir: work, Dir: code, LogPath: filepath.Join(work, "log.txt"),
		Env: map[string]string{"WEIR_STEP": "training.churn", "WEIR_RUN_ID": run, "HOME": work}}
}

// TestDerivedImageInRegistry submits a step with a code folder to a
// backend with a bucket and a registry: the Job runs the step's image,
// pinned by weir.lock, with the code folder and the launcher added,
// pushed to the registry and named by digest; the same inputs give the
// same digest and no second push.
func TestDerivedImageInRegistry(t *testing.T) {
	reg := startRegistry(t)
	bin := testLauncher(t)
	ctx := context.Background()

	// The base image is pushed, pinned in weir.lock, then its tag moves:
	// the step runs the pinned one.
	baseTag, err := name.NewTag(reg + "/library/busybox:1")
	require.NoError(t, err)
	base := busyboxImage(t, "pinned")
	require.NoError(t, remote.Write(baseTag, base))
	baseDigest, err := base.Digest()
	require.NoError(t, err)
	project := t.TempDir()
	require.NoError(t, schema.WriteLock(project, &schema.Lock{FormatVersion: schema.LockFormatVersion,
		Images: map[string]string{baseTag.String(): baseDigest.String()}}))
	require.NoError(t, remote.Write(baseTag, busyboxImage(t, "moved")))

	b, cs := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Registry: reg + "/weir",
		Config: map[string]any{"bucket": "file://" + t.TempDir(), "launcher": bin, "project": "churn"}})
	task := stepTask(t, project, "run-1", baseTag.String())
	start := time.Now()
	id, err := b.Submit(ctx, task)
	took := time.Since(start)
	require.NoError(t, err)
	ns, jobName, _ := strings.Cut(id, "/")
	job, err := cs.BatchV1().Jobs(ns).Get(ctx, jobName, metav1.GetOptions{})
	require.NoError(t, err)
	c := job.Spec.Template.Spec.Containers[0]
	assert.Regexp(t, "^"+regexp.QuoteMeta(reg)+`/weir/churn/training-churn@sha256:[0-9a-f]{64}$`, c.Image)
	assert.Equal(t, launcher.Path, c.Command[0])
	assert.Equal(t, "/weir/code", c.WorkingDir)
	log, err := os.ReadFile(task.LogPath)
	require.NoError(t, err)
	assert.Contains(t, string(log), "weir: image "+c.Image+" ("+baseTag.Context().String()+"@"+baseDigest.String()+" with the code folder and the launcher; pushed in ")

	// Read back from the registry.
	ref, err := name.ParseReference(c.Image)
	require.NoError(t, err)
	img, err := remote.Image(ref)
	require.NoError(t, err)
	require.NoError(t, validate.Image(img))
	got := files(t, img)
	assert.Equal(t, 0, got["version"], "the pinned base's layer comes first")
	assert.Equal(t, 1, got["weir/code/train.py"])
	assert.Equal(t, 1, got["weir/code/lib/util.py"])
	assert.Equal(t, 2, got["weir/bin/weir-launcher"])
	layers, err := img.Layers()
	require.NoError(t, err)
	baseLayers, err := base.Layers()
	require.NoError(t, err)
	d0, _ := layers[0].Digest()
	b0, _ := baseLayers[0].Digest()
	assert.Equal(t, b0, d0, "the base is the pinned image, not the moved tag")
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{launcher.Path}, cf.Config.Entrypoint)
	assert.Empty(t, cf.Config.Cmd)
	assert.Equal(t, "/weir/code", cf.Config.WorkingDir)
	assert.Equal(t, []string{"PATH=/bin"}, cf.Config.Env, "the base's config is kept")

	// The size the derivation adds.
	var added int64
	for _, l := range layers[1:] {
		n, err := l.Size()
		require.NoError(t, err)
		added += n
	}
	t.Logf("derive + push (fresh registry, base already there): %s; layers added: %d bytes compressed (launcher %d bytes uncompressed)",
		took.Round(time.Millisecond), added, fileSize(t, bin))

	// Another run, with its own copy of the same code: the same image,
	// and with a cache that knows nothing, a HEAD finds it (no push).
	again := stepTask(t, project, "run-2", baseTag.String())
	id2, err := b.Submit(ctx, again)
	require.NoError(t, err)
	ns, jobName, _ = strings.Cut(id2, "/")
	job2, err := cs.BatchV1().Jobs(ns).Get(ctx, jobName, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, c.Image, job2.Spec.Template.Spec.Containers[0].Image)
	fresh := newImageCache()
	start = time.Now()
	ref2, note, err := fresh.stepImage(ctx, b.config(), again, "")
	require.NoError(t, err)
	assert.Equal(t, c.Image, ref2)
	assert.Contains(t, note, "already in the registry")
	t.Logf("derive again, push skipped (new process): %s", time.Since(start).Round(time.Millisecond))

	// Changed code: a new image.
	require.NoError(t, os.WriteFile(filepath.Join(again.Dir, "train.py"), []byte("print('v2')\n"), 0o644))
	ref3, note, err := fresh.stepImage(ctx, b.config(), again, "")
	require.NoError(t, err)
	assert.NotEqual(t, c.Image, ref3)
	assert.Contains(t, note, "pushed in")
}

func fileSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	require.NoError(t, err)
	return st.Size()
}

// TestDeriveImageWithoutCode: a step without a code folder gets the
// launcher's layer only; the result is the same on every call.
func TestDeriveImageWithoutCode(t *testing.T) {
	bin, err := os.ReadFile(testLauncher(t))
	require.NoError(t, err)
	base := busyboxImage(t, "1")
	a, err := DeriveImage(base, "", bin)
	require.NoError(t, err)
	b, err := DeriveImage(base, "", bin)
	require.NoError(t, err)
	require.NoError(t, validate.Image(a))
	da, _ := a.Digest()
	db, _ := b.Digest()
	assert.Equal(t, da, db)
	got := files(t, a)
	assert.Equal(t, 1, got["weir/bin/weir-launcher"])
	_, hasCode := got["weir/code"]
	assert.False(t, hasCode)
}

func TestDerivedImageNeeds(t *testing.T) {
	ctx := context.Background()
	bucket := "file://" + t.TempDir()
	t.Run("registry", func(t *testing.T) {
		b, _ := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Config: map[string]any{"bucket": bucket}})
		_, err := b.Submit(ctx, stepTask(t, t.TempDir(), "run-1", "busybox"))
		assert.ErrorContains(t, err, "backend k8s has config.bucket, so each step runs in an image weir derives (its image, code folder and the launcher) and pushes, but the backend names no registry: set registry in backend k8s")
	})
	t.Run("launcher", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		b, _ := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Registry: "127.0.0.1:1/weir", Config: map[string]any{"bucket": bucket}})
		_, err := b.Submit(ctx, stepTask(t, t.TempDir(), "run-1", "busybox"))
		assert.ErrorContains(t, err, "no weir-launcher was found (config.launcher, next to the weir executable, or on PATH): run make build")
	})
	t.Run("launcher path", func(t *testing.T) {
		b, _ := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Registry: "127.0.0.1:1/weir",
			Config: map[string]any{"bucket": bucket, "launcher": "/nonexistent/weir-launcher"}})
		_, err := b.Submit(ctx, stepTask(t, t.TempDir(), "run-1", "busybox"))
		assert.ErrorContains(t, err, "backend k8s: config.launcher: stat /nonexistent/weir-launcher: no such file or directory")
	})
	t.Run("code with an image of its own", func(t *testing.T) {
		b, _ := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Config: map[string]any{"bucket": bucket, "launcher": LauncherInImage}})
		_, err := b.Submit(ctx, stepTask(t, t.TempDir(), "run-1", "busybox"))
		assert.ErrorContains(t, err, `step training.churn has a code folder (run.code), but backend k8s sets config.launcher to "in-image"`)
	})
}

// TestDerivedImageSweep: the trials of a sweep, submitted at once, share
// one image in one repository, derived and pushed once.
func TestDerivedImageSweep(t *testing.T) {
	reg := startRegistry(t)
	bin := testLauncher(t)
	ctx := context.Background()
	baseTag, err := name.NewTag(reg + "/library/busybox:1")
	require.NoError(t, err)
	require.NoError(t, remote.Write(baseTag, busyboxImage(t, "1")))
	cfg := testConfig(t, &schema.Backend{Kind: "kubernetes", Registry: reg + "/weir",
		Config: map[string]any{"bucket": "file://" + t.TempDir(), "launcher": bin, "project": "churn"}})
	c := newImageCache()
	project := t.TempDir()
	const trials = 8
	refs, notes, errs := make([]string, trials), make([]string, trials), make([]error, trials)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range trials {
		task := stepTask(t, project, fmt.Sprintf("run-%d", i), baseTag.String())
		task.Step = fmt.Sprintf("training.churn.trial[lr=0.%d]", i)
		wg.Go(func() { refs[i], notes[i], errs[i] = c.stepImage(ctx, cfg, task, "training.churn") })
	}
	wg.Wait()
	t.Logf("%d trials: %s", trials, time.Since(start).Round(time.Millisecond))
	pushes := 0
	for i := range trials {
		require.NoError(t, errs[i])
		assert.Equal(t, refs[0], refs[i])
		if strings.Contains(notes[i], "pushed in") {
			pushes++
		}
	}
	assert.Equal(t, 1, pushes, "one push: %q", notes)
	assert.Regexp(t, "^"+regexp.QuoteMeta(reg)+`/weir/churn/training-churn@sha256:`, refs[0])
}
