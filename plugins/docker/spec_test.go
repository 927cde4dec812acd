package docker

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

func specTask(work string) *backend.Task {
	return &backend.Task{RunID: "r1", Step: "training.m.trial[lr=0.1]", Attempt: 2, Argv: []string{"python", "train.py", "--fast"},
		WorkDir: work, Dir: filepath.Join(work, "code"), Image: "python:3.12",
		Env: map[string]string{
			"PATH": "/host/bin", "LANG": "C.UTF-8", "HOME": work, "TMPDIR": filepath.Join(work, "tmp"),
			"WEIR_RUN_ID": "r1", "WEIR_STEP": "training.m.trial[lr=0.1]",
			"WEIR_METRICS":       filepath.Join(work, "metrics.jsonl"),
			"WEIR_PARAMS":        filepath.Join(work, "params.json"),
			"WEIR_INPUT_DATA":    filepath.Join(work, "in", "data"),
			"WEIR_INPUT_EXTRA":   "/elsewhere/extra.csv",
			"WEIR_OUTPUT_MODEL":  filepath.Join(work, "out", "model"),
			"WEIR_OUTPUT_REPORT": filepath.Join(work, "out", "report"),
			"API_TOKEN":          "s3cret",
		},
		Inputs:  map[string]string{"data": filepath.Join(work, "in", "data"), "extra": "/elsewhere/extra.csv"},
		Outputs: map[string]string{"model": filepath.Join(work, "out", "model"), "report": filepath.Join(work, "out", "report")},
		LogPath: filepath.Join(work, "log.txt")}
}

func TestContainerSpecFollowsTheContract(t *testing.T) {
	work := "/p/.weir/runs/r1/training.m.trial"
	sp, err := containerSpec(specTask(work), "weir.local/p/s:abc", &Options{Project: "churn", ProjectDir: "/p"})
	require.NoError(t, err)
	c, h := sp.Config, sp.Host
	assert.Equal(t, "weir.local/p/s:abc", c.Image)
	assert.Equal(t, []string{"python"}, c.Entrypoint)
	assert.Equal(t, []string{"train.py", "--fast"}, c.Cmd)
	assert.Equal(t, "/weir/code", c.WorkingDir)
	assert.Equal(t, []string{
		"API_TOKEN=s3cret",
		"HOME=/weir",
		"LANG=C.UTF-8",
		"TMPDIR=/weir/tmp",
		"WEIR_INPUT_DATA=/weir/in/data",
		"WEIR_INPUT_EXTRA=/weir/in/extra",
		"WEIR_METRICS=/weir/metrics.jsonl",
		"WEIR_OUTPUT_MODEL=/weir/out/model",
		"WEIR_OUTPUT_REPORT=/weir/out/report",
		"WEIR_PARAMS=/weir/params.json",
		"WEIR_RUN_ID=r1",
		"WEIR_STEP=training.m.trial[lr=0.1]",
	}, c.Env, "WEIR_* paths under /weir/, the host's PATH left to the image")
	assert.Equal(t, map[string]string{LabelProject: "churn", LabelRun: "r1", LabelStep: "training.m.trial[lr=0.1]",
		LabelAttempt: "2", LabelDir: "/p"}, c.Labels)
	assert.Equal(t, []mount.Mount{
		{Type: mount.TypeBind, Source: work + "/in", Target: "/weir/in", ReadOnly: true},
		{Type: mount.TypeBind, Source: work + "/out", Target: "/weir/out"},
		{Type: mount.TypeBind, Source: work + "/tmp", Target: "/weir/tmp"},
		{Type: mount.TypeBind, Source: work + "/metrics.jsonl", Target: "/weir/metrics.jsonl"},
		{Type: mount.TypeBind, Source: work + "/params.json", Target: "/weir/params.json", ReadOnly: true},
		{Type: mount.TypeBind, Source: "/elsewhere/extra.csv", Target: "/weir/in/extra", ReadOnly: true},
	}, h.Mounts, "inputs read-only; the code folder is in the image, not mounted")
	assert.Equal(t, container.NetworkMode("none"), h.NetworkMode, "no network unless asked")
	require.NotNil(t, h.Init)
	assert.True(t, *h.Init)
	assert.Zero(t, h.NanoCPUs)
	assert.Zero(t, h.Memory)
	assert.Empty(t, h.DeviceRequests)
}

func TestContainerSpecLimitsGPUsAndNetwork(t *testing.T) {
	tk := specTask("/w")
	tk.Network = true
	tk.Resources = &schema.Resources{CPU: 1.5, Memory: "512Mi", GPU: 2, GPUType: "a100"}
	sp, err := containerSpec(tk, "img", &Options{})
	require.NoError(t, err)
	h := sp.Host
	assert.Equal(t, container.NetworkMode("bridge"), h.NetworkMode)
	assert.Equal(t, int64(1_500_000_000), h.NanoCPUs)
	assert.Equal(t, int64(512<<20), h.Memory)
	assert.Equal(t, int64(512<<20), h.MemorySwap, "no swap beyond the limit")
	assert.Equal(t, []container.DeviceRequest{{Count: 2, Capabilities: [][]string{{"gpu", "a100"}}}}, h.DeviceRequests)

	// The request the engine receives carries the device request as
	// `docker run --gpus 2` sends it.
	b, err := json.Marshal(h)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"DeviceRequests":[{"Driver":"","Count":2,"DeviceIDs":null,"Capabilities":[["gpu","a100"]],"Options":null}]`)
}

func TestContainerSpecRefusals(t *testing.T) {
	tk := specTask("/w")
	tk.Argv = nil
	_, err := containerSpec(tk, "img", &Options{})
	assert.ErrorContains(t, err, "no command")

	tk = specTask("/w")
	tk.Outputs["model"] = "/tmp/model"
	_, err = containerSpec(tk, "img", &Options{})
	assert.ErrorContains(t, err, "output model is at /tmp/model, outside the work folder's out/")

	tk = specTask("/w")
	tk.Resources = &schema.Resources{Memory: "lots"}
	_, err = containerSpec(tk, "img", &Options{})
	assert.ErrorContains(t, err, `resources.memory: "lots" is not a memory size`)

	tk = specTask("relative")
	_, err = containerSpec(tk, "img", &Options{})
	assert.ErrorContains(t, err, "not an absolute path")
}

func TestContainerSpecRunsAsTheUser(t *testing.T) {
	sp, err := containerSpec(specTask("/w"), "img", &Options{})
	require.NoError(t, err)
	if os.Getuid() == 0 {
		assert.Empty(t, sp.Config.User, "root keeps the image's user")
	} else {
		assert.Regexp(t, `^\d+:\d+$`, sp.Config.User)
	}
}

func TestParseQuantity(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "512Mi": 512 << 20, "4Gi": 4 << 30, "1.5Gi": 3 << 29,
		"100k": 100_000, "2G": 2_000_000_000, "1Ti": 1 << 40, "64Ki": 64 << 10} {
		got, err := ParseQuantity(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "Gi", "-1Gi", "1gb", "1 Gi", "0", "99999999999T"} {
		_, err := ParseQuantity(bad)
		assert.Error(t, err, bad)
	}
}

func TestLower(t *testing.T) {
	s := &schema.Step{Address: "a", Run: &schema.StepRun{Image: "python:3.12", Command: []string{"python", "t.py"},
		Code: "./train", Env: map[string]schema.EnvVar{"B": {Value: "1"}, "A": {Secret: "env:A"}},
		Resources: &schema.Resources{CPU: 2, Memory: "1Gi", GPU: 1}}}
	raw, err := Lower(s)
	require.NoError(t, err)
	assert.JSONEq(t, `{"image":"python:3.12","argv":["python","t.py"],"working_dir":"/weir/code","code":"./train",
		"env":["A","B"],"cpus":2,"memory":"1Gi","gpus":1,"network":"none"}`, string(raw))

	_, err = Lower(&schema.Step{Run: &schema.StepRun{Command: []string{"x"}}})
	assert.ErrorContains(t, err, "names none (run.image)")
	_, err = Lower(&schema.Step{Run: &schema.StepRun{Image: "i", Command: []string{"x"}, Workers: 4}})
	assert.ErrorContains(t, err, "kubernetes")
}
