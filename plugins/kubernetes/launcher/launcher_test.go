package launcher_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/kubernetes/launcher"
	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
)

// stepScript is a step written against the contract only: it reads a file
// and a folder, its parameters, writes a file and a folder (an executable,
// nested folders), appends metrics, uses its scratch folder and prints
// what it sees. Its outputs do not depend on where it runs.
const stepScript = `set -e
cat "$WEIR_INPUT_DATA" > "$WEIR_OUTPUT_COPY"
mkdir "$WEIR_OUTPUT_MODEL"
cp -R "$WEIR_INPUT_TREE/." "$WEIR_OUTPUT_MODEL/"
cat "$WEIR_PARAMS" > "$WEIR_OUTPUT_MODEL/params.json"
mkdir -p "$WEIR_OUTPUT_MODEL/deep/er"
printf 'weights\n' > "$WEIR_OUTPUT_MODEL/deep/er/w.bin"
printf '#!/bin/sh\necho hi\n' > "$WEIR_OUTPUT_MODEL/run.sh"
chmod +x "$WEIR_OUTPUT_MODEL/run.sh"
printf '{"loss": 0.5}\n{"loss": 0.25, "acc": 0.9}\n' >> "$WEIR_METRICS"
echo scratch > "$TMPDIR/scratch"
echo "cwd $(pwd)"
env | grep -e '^WEIR_' -e '^HOME=' -e '^TMPDIR=' | sort
echo to stderr >&2
`

// sampleStep is the task of stepScript with its inputs and parameters.
func sampleStep(t testing.TB) *work {
	return newWork(t, "sh", "-c", stepScript).
		file("data", "a,b\n1,2\n").
		tree("tree", map[string]string{"README": "a model\n", "bin/tool+x": "#!/bin/sh\n", "sub/dir/leaf.txt": "leaf\n"}).
		params(map[string]any{"lr": 0.1, "epochs": 3}).
		output("copy", "model", "unwritten")
}

// TestStageRunCollect goes through one attempt as the kubernetes backend
// does it, in-process: Stage on the host, Run in the "container" (a
// folder standing for /weir), Collect on the host; then the same step run
// by the local backend gives the same outputs with the same digests.
func TestStageRunCollect(t *testing.T) {
	ctx := context.Background()
	url, _ := bucket(t)
	w := sampleStep(t)
	m, err := launcher.Stage(ctx, url, "runs/run-1/tasks.train/1", w.task)
	require.NoError(t, err)

	// The manifest's digests are runtime/artifact's.
	s, err := artifact.Open(t.TempDir())
	require.NoError(t, err)
	require.Len(t, m.Inputs, 2)
	for _, in := range m.Inputs {
		obj, err := s.PutPath(w.task.Inputs[in.Name])
		require.NoError(t, err)
		assert.Equal(t, obj.Digest, in.Digest, in.Name)
		assert.Equal(t, obj.Size, in.Size, in.Name)
		assert.Equal(t, obj.IsDir, in.IsDir, in.Name)
		assert.Equal(t, "in/"+in.Name, in.Path)
	}
	assert.Equal(t, []launcher.Output{{Name: "copy", Path: "out/copy"}, {Name: "model", Path: "out/model"}, {Name: "unwritten", Path: "out/unwritten"}}, m.Outputs)
	require.NotNil(t, m.Params)
	pd, _, err := s.PutFile(w.task.Env["WEIR_PARAMS"])
	require.NoError(t, err)
	assert.Equal(t, pd, m.Params.Digest)

	root := t.TempDir() // the container's /weir
	env := append(w.env(), launcher.EnvBucket+"=ignored-when-flags-say")
	code, stdout, stderr := launch(t, url, "runs/run-1/tasks.train/1", root, env, w.task.Argv...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	// The contract's variables name places under the root, and so do those
	// that named the host's work folder.
	for _, want := range []string{
		"cwd " + root + "\n",
		"HOME=" + root + "\n",
		"TMPDIR=" + root + "\n",
		"WEIR_INPUT_DATA=" + root + "/in/data\n",
		"WEIR_INPUT_TREE=" + root + "/in/tree\n",
		"WEIR_OUTPUT_MODEL=" + root + "/out/model\n",
		"WEIR_OUTPUT_UNWRITTEN=" + root + "/out/unwritten\n",
		"WEIR_PARAMS=" + root + "/params.json\n",
		"WEIR_METRICS=" + root + "/metrics.jsonl\n",
		"WEIR_RUN_ID=run-1\n",
		"WEIR_STEP=tasks.train\n",
	} {
		assert.Contains(t, stdout, want)
	}
	assert.NotContains(t, stdout, "WEIR_LAUNCHER", "the launcher's own variables stay with it")
	assert.Equal(t, "to stderr\n", stderr, "the command's output is passed through, and the launcher says nothing")
	_, err = os.Stat(filepath.Join(root, ".launcher"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the launcher's scratch store is gone")

	res := readResult(t, url, "runs/run-1/tasks.train/1")
	assert.Equal(t, 0, res.ExitCode)
	assert.Empty(t, res.Error)
	require.Len(t, res.Outputs, 2, "the output the step did not write is absent")
	require.NotNil(t, res.Metrics)

	back := w.twin()
	require.NoError(t, launcher.Collect(ctx, url, "runs/run-1/tasks.train/1", back.task))
	got := back.digests()
	for _, a := range res.Outputs {
		assert.Equal(t, a.Digest, got[a.Name].Digest, a.Name)
		assert.Equal(t, a.IsDir, got[a.Name].IsDir, a.Name)
	}
	assert.Equal(t, res.Metrics.Digest, got["metrics.jsonl"].Digest)
	assert.NotContains(t, got, "unwritten")
	assert.Equal(t, "a,b\n1,2\n", back.read("out/copy"))
	assert.Equal(t, "weights\n", back.read("out/model/deep/er/w.bin"))
	st, err := os.Stat(filepath.Join(back.dir, "out/model/run.sh"))
	require.NoError(t, err)
	assert.NotZero(t, st.Mode()&0o111, "executable bits come back")

	// The same step, run by the local backend: the same digests.
	loc := w.twin()
	lres := runLocal(t, loc.task)
	require.Equal(t, backend.StateSucceeded, lres.State, loc.read("log.txt"))
	assert.Equal(t, loc.digests(), got)
	assert.Equal(t, loc.read("metrics.jsonl"), back.read("metrics.jsonl"))
}

func TestStageUploadsABlobOnce(t *testing.T) {
	ctx := context.Background()
	url, dir := bucket(t)
	w := sampleStep(t)
	m, err := launcher.Stage(ctx, url, "p/1", w.task)
	require.NoError(t, err)
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	var paths []string
	for _, in := range m.Inputs {
		k, err := launcher.BlobKey(in.Digest)
		require.NoError(t, err)
		p := filepath.Join(dir, filepath.FromSlash(k))
		require.NoError(t, os.Chtimes(p, old, old))
		paths = append(paths, p)
	}
	// Another attempt, and another step with the same inputs.
	_, err = launcher.Stage(ctx, url, "p/2", w.task)
	require.NoError(t, err)
	_, err = launcher.Stage(ctx, url, "q/1", w.twin().task, launcher.WithStore(mustStore(t)))
	require.NoError(t, err)
	for _, p := range paths {
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.True(t, st.ModTime().Equal(old), "%s was uploaded again", p)
	}
}

func mustStore(t testing.TB) *artifact.Store {
	s, err := artifact.Open(t.TempDir())
	require.NoError(t, err)
	return s
}

func TestStageRefusals(t *testing.T) {
	ctx := context.Background()
	url, dir := bucket(t)
	for _, name := range []string{"../x", "a/../../x", "/etc/passwd", "."} {
		w := newWork(t, "true")
		w.task.Outputs[name] = filepath.Join(w.dir, "out", "x")
		_, err := launcher.Stage(ctx, url, "p", w.task)
		assert.ErrorContains(t, err, "output name", name)

		w = newWork(t, "true").file("x", "x")
		w.task.Inputs[name] = w.task.Inputs["x"]
		_, err = launcher.Stage(ctx, url, "p", w.task)
		assert.ErrorContains(t, err, "input: output name", name)
	}
	w := newWork(t, "true").file("data", "x")
	w.task.Inputs["data"] = filepath.Join(w.dir, "in", "gone")
	_, err := launcher.Stage(ctx, url, "p", w.task)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "input data")

	w = newWork(t, "true")
	w.task.Dir = t.TempDir()
	_, err = launcher.Stage(ctx, url, "p", w.task)
	assert.ErrorContains(t, err, "outside its work folder")

	for _, p := range []string{"", "/abs", "../up", "a/../b", "blobs/x"} {
		_, err = launcher.Stage(ctx, url, p, newWork(t, "true").task)
		assert.Error(t, err, p)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing was written for a refused task")
}

func TestRunRefusesATamperedManifest(t *testing.T) {
	ctx := context.Background()
	url, dir := bucket(t)
	w := newWork(t, "true").output("ok")
	_, err := launcher.Stage(ctx, url, "p", w.task)
	require.NoError(t, err)
	mp := filepath.Join(dir, "p", "manifest.json")
	for _, out := range []launcher.Output{{Name: "../../escape", Path: "out/../../escape"}, {Name: "ok", Path: "../ok"}} {
		var m launcher.Manifest
		b, err := os.ReadFile(mp)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &m))
		m.Outputs = []launcher.Output{out}
		b, _ = json.Marshal(m)
		require.NoError(t, os.WriteFile(mp, b, 0o644))
		root := t.TempDir()
		code, _, stderr := launch(t, url, "p", root, w.env(), "sh", "-c", "touch "+root+"/ran")
		assert.Equal(t, launcher.ExitLauncher, code)
		assert.Contains(t, stderr, out.Name)
		assert.NoFileExists(t, filepath.Join(root, "ran"), "the command did not run")
		assert.Contains(t, readResult(t, url, "p").Error, "manifest")
	}
}

func TestRunMissingOrDamagedInput(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ name, want string }{
		{"missing", "not in the bucket"},
		{"damaged", "does not match its digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, dir := bucket(t)
			w := newWork(t, "true").file("data", "1,2,3\n")
			m, err := launcher.Stage(ctx, url, "p", w.task)
			require.NoError(t, err)
			k, _ := launcher.BlobKey(m.Inputs[0].Digest)
			p := filepath.Join(dir, filepath.FromSlash(k))
			if tc.name == "missing" {
				require.NoError(t, os.Remove(p))
			} else {
				require.NoError(t, os.WriteFile(p, []byte("1,2,4\n"), 0o644))
			}
			root := t.TempDir()
			code, _, stderr := launch(t, url, "p", root, w.env(), "sh", "-c", "touch "+root+"/ran")
			assert.Equal(t, launcher.ExitLauncher, code)
			assert.Contains(t, stderr, "input data")
			assert.Contains(t, stderr, tc.want)
			assert.NoFileExists(t, filepath.Join(root, "ran"), "the command did not run")
			assert.NoFileExists(t, filepath.Join(root, "in", "data"))
			res := readResult(t, url, "p")
			assert.Equal(t, launcher.ExitLauncher, res.ExitCode)
			assert.Contains(t, res.Error, tc.want)
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	ctx := context.Background()
	url, _ := bucket(t)
	w := newWork(t, "true").output("partial")
	_, err := launcher.Stage(ctx, url, "p", w.task)
	require.NoError(t, err)
	for _, tc := range []struct {
		argv []string
		code int
	}{
		{[]string{"sh", "-c", `echo half > "$WEIR_OUTPUT_PARTIAL"; echo failing >&2; exit 3`}, 3},
		{[]string{"sh", "-c", `kill -9 $$`}, 128 + 9},
		{[]string{"no-such-program-here"}, launcher.ExitNotFound},
		{[]string{"./not-there"}, launcher.ExitNotFound},
	} {
		root := t.TempDir()
		code, _, stderr := launch(t, url, "p", root, w.env(), tc.argv...)
		assert.Equal(t, tc.code, code, "%v: %s", tc.argv, stderr)
		res := readResult(t, url, "p")
		assert.Equal(t, tc.code, res.ExitCode, tc.argv)
		if tc.code == 3 {
			assert.Equal(t, "failing\n", stderr)
			require.Len(t, res.Outputs, 1, "what a failing step wrote is kept, for its logs' sake")
			back := w.twin()
			require.NoError(t, launcher.Collect(ctx, url, "p", back.task))
			assert.Equal(t, "half\n", back.read("out/partial"))
		}
	}
}

func TestRunOutputThatIsALink(t *testing.T) {
	url, _ := bucket(t)
	w := newWork(t, "true").output("link")
	_, err := launcher.Stage(context.Background(), url, "p", w.task)
	require.NoError(t, err)
	code, _, stderr := launch(t, url, "p", t.TempDir(), w.env(), "sh", "-c", `ln -s /etc/passwd "$WEIR_OUTPUT_LINK"`)
	assert.Equal(t, launcher.ExitLauncher, code)
	assert.Contains(t, stderr, "output link: it is a symbolic link")
	assert.Empty(t, readResult(t, url, "p").Outputs)
}

func TestCollect(t *testing.T) {
	ctx := context.Background()
	url, dir := bucket(t)
	w := newWork(t, "true").output("model")
	assert.ErrorIs(t, launcher.Collect(ctx, url, "p", w.task), launcher.ErrNoResult)

	_, err := launcher.Stage(ctx, url, "p", w.task)
	require.NoError(t, err)
	code, _, _ := launch(t, url, "p", t.TempDir(), w.env(), "sh", "-c", `echo weights > "$WEIR_OUTPUT_MODEL"`)
	require.Equal(t, 0, code)

	// Stage of a new attempt under the same prefix forgets the old result.
	_, err = launcher.Stage(ctx, url, "p", w.task)
	require.NoError(t, err)
	assert.ErrorIs(t, launcher.Collect(ctx, url, "p", w.task), launcher.ErrNoResult)
	code, _, _ = launch(t, url, "p", t.TempDir(), w.env(), "sh", "-c", `echo weights > "$WEIR_OUTPUT_MODEL"`)
	require.Equal(t, 0, code)

	// A damaged output blob is refused and nothing is left in its place.
	res := readResult(t, url, "p")
	k, _ := launcher.BlobKey(res.Outputs[0].Digest)
	require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(k)), []byte("weighTs\n"), 0o644))
	err = launcher.Collect(ctx, url, "p", w.task)
	assert.ErrorIs(t, err, artifact.ErrCorrupt)
	assert.ErrorContains(t, err, "output model")
	assert.NoFileExists(t, w.task.Outputs["model"])

	// A result naming an output the task does not have is not written
	// anywhere, and an escaping name in the task is refused.
	rp := filepath.Join(dir, "p", "result.json")
	res.Outputs[0].Name = "../../evil"
	b, _ := json.Marshal(res)
	require.NoError(t, os.WriteFile(rp, b, 0o644))
	require.NoError(t, launcher.Collect(ctx, url, "p", w.task))
	w.task.Outputs["../../evil"] = filepath.Join(w.dir, "evil")
	assert.ErrorContains(t, launcher.Collect(ctx, url, "p", w.task), "escapes its folder")
	assert.NoFileExists(t, filepath.Join(w.dir, "evil"))

	// A result of another version.
	require.NoError(t, os.WriteFile(rp, []byte(`{"version": 99}`), 0o644))
	assert.ErrorContains(t, launcher.Collect(ctx, url, "p", w.task), "result version 99")
}

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-bucket", "file:///x", "-prefix", "p"}, "no command to run"},
		{[]string{"-prefix", "p", "--", "true"}, "no bucket"},
		{[]string{"-bucket", "file:///x", "--", "true"}, "no prefix"},
		{[]string{"-bucket", "nope://x", "-prefix", "p", "--", "true"}, "opening bucket"},
	} {
		var e strings.Builder
		code := launcher.RunWith(context.Background(), tc.args, nil, &strings.Builder{}, &e)
		assert.Equal(t, launcher.ExitLauncher, code, tc.args)
		assert.Contains(t, e.String(), tc.want, tc.args)
	}
	// The bucket and prefix may come from the environment.
	url, _ := bucket(t)
	var e strings.Builder
	code := launcher.RunWith(context.Background(), []string{"--", "true"},
		[]string{launcher.EnvBucket + "=" + url, launcher.EnvPrefix + "=p"}, &strings.Builder{}, &e)
	assert.Equal(t, launcher.ExitLauncher, code)
	assert.Contains(t, e.String(), "no manifest at p/manifest.json")
}

// TestRunStopped: cancelling the launcher (as SIGTERM does when the pod
// is deleted) passes SIGTERM on to the command; its outputs are not
// uploaded, its end is still reported.
func TestRunStopped(t *testing.T) {
	url, _ := bucket(t)
	w := newWork(t, "true").output("model")
	_, err := launcher.Stage(context.Background(), url, "p", w.task)
	require.NoError(t, err)
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		code, _, _ := launchCtx(ctx, t, url, "p", root, w.env(), "sh", "-c",
			`trap 'echo late > "$WEIR_OUTPUT_MODEL"; exit 7' TERM; touch "$WEIR_METRICS"; while :; do sleep 0.05; done`)
		done <- code
	}()
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(root, "metrics.jsonl")); return err == nil },
		10*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 7, code)
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not end on SIGTERM")
	}
	res := readResult(t, url, "p")
	assert.Equal(t, 7, res.ExitCode)
	assert.Contains(t, res.Error, "stopped by a signal")
	assert.Empty(t, res.Outputs)
}
