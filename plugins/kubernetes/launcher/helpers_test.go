package launcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/kubernetes/launcher"
	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
)

// work is a step's work folder laid out as the executor lays it out: in/,
// out/, tmp/, params.json, and the contract's variables naming them.
type work struct {
	t    testing.TB
	dir  string
	task *backend.Task
}

func newWork(t testing.TB, argv ...string) *work {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"in", "out", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	tk := &backend.Task{RunID: "run-1", Step: "tasks.train", Attempt: 1, Argv: argv, WorkDir: dir, Dir: dir,
		Env: map[string]string{"PATH": os.Getenv("PATH"), "HOME": dir, "TMPDIR": dir, "WEIR_RUN_ID": "run-1",
			"WEIR_STEP": "tasks.train", "WEIR_METRICS": filepath.Join(dir, "metrics.jsonl")},
		Inputs: map[string]string{}, Outputs: map[string]string{}, LogPath: filepath.Join(dir, "log.txt")}
	return &work{t: t, dir: dir, task: tk}
}

// file adds an input file.
func (w *work) file(name, content string) *work {
	p := filepath.Join(w.dir, "in", name)
	require.NoError(w.t, os.WriteFile(p, []byte(content), 0o644))
	return w.input(name, p)
}

// tree adds an input folder: rel path -> content ("+x" suffix in the name
// for an executable).
func (w *work) tree(name string, files map[string]string) *work {
	root := filepath.Join(w.dir, "in", name)
	for rel, content := range files {
		mode := os.FileMode(0o644)
		if r, ok := strings.CutSuffix(rel, "+x"); ok {
			rel, mode = r, 0o755
		}
		p := filepath.Join(root, rel)
		require.NoError(w.t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(w.t, os.WriteFile(p, []byte(content), mode))
	}
	return w.input(name, root)
}

func (w *work) input(name, p string) *work {
	w.task.Inputs[name] = p
	w.task.Env["WEIR_INPUT_"+strings.ToUpper(name)] = p
	return w
}

func (w *work) output(names ...string) *work {
	for _, name := range names {
		p := filepath.Join(w.dir, "out", name)
		w.task.Outputs[name] = p
		w.task.Env["WEIR_OUTPUT_"+strings.ToUpper(name)] = p
	}
	return w
}

func (w *work) params(v map[string]any) *work {
	p := filepath.Join(w.dir, "params.json")
	b, _ := json.Marshal(v)
	require.NoError(w.t, os.WriteFile(p, b, 0o644))
	w.task.Env["WEIR_PARAMS"] = p
	return w
}

// twin is an empty work folder for the same task: where Collect puts what
// came back, and where a local run runs.
func (w *work) twin() *work {
	w.t.Helper()
	o := newWork(w.t, w.task.Argv...)
	for name, p := range w.task.Inputs {
		rel, err := filepath.Rel(w.dir, p)
		require.NoError(w.t, err)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			require.NoError(w.t, os.CopyFS(filepath.Join(o.dir, rel), os.DirFS(p)))
		} else {
			b, err := os.ReadFile(p)
			require.NoError(w.t, err)
			require.NoError(w.t, os.WriteFile(filepath.Join(o.dir, rel), b, 0o644))
		}
		o.input(name, filepath.Join(o.dir, rel))
	}
	if w.task.Env["WEIR_PARAMS"] != "" {
		b, err := os.ReadFile(w.task.Env["WEIR_PARAMS"])
		require.NoError(w.t, err)
		var v map[string]any
		require.NoError(w.t, json.Unmarshal(b, &v))
		o.params(v)
	}
	for name := range w.task.Outputs {
		o.output(name)
	}
	return o
}

// env is the task's environment as the kubernetes backend would hand it
// to the container: the host's variables, naming the host's paths.
func (w *work) env() []string {
	var env []string
	for k, v := range w.task.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// digests digests the task's outputs and metrics as the executor does,
// with runtime/artifact's store.
func (w *work) digests() map[string]artifact.Object {
	w.t.Helper()
	s, err := artifact.Open(w.t.TempDir())
	require.NoError(w.t, err)
	out := map[string]artifact.Object{}
	for name, p := range w.task.Outputs {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		obj, err := s.PutPath(p)
		require.NoError(w.t, err)
		out[name] = obj
	}
	if _, err := os.Stat(w.task.Env["WEIR_METRICS"]); err == nil {
		obj, err := s.PutPath(w.task.Env["WEIR_METRICS"])
		require.NoError(w.t, err)
		out["metrics.jsonl"] = obj
	}
	return out
}

func (w *work) read(rel string) string {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, rel))
	require.NoError(w.t, err)
	return string(b)
}

// runLocal runs the task with the local backend, as weir does by default.
func runLocal(t testing.TB, tk *backend.Task) *backend.Result {
	t.Helper()
	b := local.New(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := b.Submit(ctx, tk)
	require.NoError(t, err)
	res, err := b.Watch(ctx, id, nil)
	require.NoError(t, err)
	return res
}

// bucket is a file bucket in a temporary folder.
func bucket(t testing.TB) (url, dir string) {
	dir = t.TempDir()
	return "file://" + dir, dir
}

// launch runs the launcher in-process, the contract's root at root.
func launch(t testing.TB, url, prefix, root string, env []string, argv ...string) (code int, stdout, stderr string) {
	t.Helper()
	return launchCtx(context.Background(), t, url, prefix, root, env, argv...)
}

func launchCtx(ctx context.Context, t testing.TB, url, prefix, root string, env []string, argv ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	args := append([]string{"-bucket", url, "-prefix", prefix, "-root", root, "--"}, argv...)
	code = launcher.RunWith(ctx, args, env, &o, &e)
	return code, o.String(), e.String()
}

func readResult(t testing.TB, url, prefix string) *launcher.Result {
	t.Helper()
	r, err := launcher.ReadResult(context.Background(), url, prefix)
	require.NoError(t, err)
	return r
}
