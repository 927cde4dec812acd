package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/host"
	"weir.dev/weir/plugins/sdk/conformance"
	"weir.dev/weir/schema"
)

// buildSandbox builds the out-of-tree example plugin (its own module, in
// examples/plugins/sandbox) as weir-backend-sandbox in a folder of its own,
// and returns the folder. The go build cache makes the second build cheap.
func buildSandbox(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("bwrap is not installed: .ci/run must install bubblewrap")
		}
		t.Skip("bwrap is not installed: apt-get install bubblewrap")
	}
	src, err := filepath.Abs("../../examples/plugins/sandbox")
	require.NoError(t, err)
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "weir-backend-sandbox"), ".")
	cmd.Dir = src
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the sandbox plugin:\n%s", out)
	return dir
}

// TestSandboxConformance runs the backend conformance suite against the
// example plugin, out of process.
func TestSandboxConformance(t *testing.T) {
	dir := buildSandbox(t)
	p, err := host.Open(context.Background(), host.Options{Kind: "sandbox", Name: "sandbox",
		Path: filepath.Join(dir, "weir-backend-sandbox"), Settings: &schema.Backend{Kind: "sandbox"}})
	require.NoError(t, err)
	defer p.Close()
	conformance.Run(t, p, conformance.Options{})
}

// TestSandboxPlugin builds the example plugin, puts it on
// $WEIR_PLUGIN_PATH and applies pipelines through it: steps run and pass
// artifacts to each other; a step that reaches for the network, or writes
// outside its outputs, fails.
func TestSandboxPlugin(t *testing.T) {
	plugins := buildSandbox(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	spec := fmt.Sprintf(`project: "hermetic"
owner:   "team:ml"
backends: box: kind: "sandbox"
defaults: backend: "box"
tasks: make: {
	command: ["sh", "-c", "echo 'a,b' > $WEIR_OUTPUT_TABLE; echo '1,2' >> $WEIR_OUTPUT_TABLE; echo made the table"]
	outputs: ["table"]
}
tasks: count: {
	needs: ["tasks.make"]
	command: ["sh", "-c", "wc -l < $WEIR_INPUT_TABLE > $WEIR_OUTPUT_COUNT; echo '{\"rows\": 2}' >> $WEIR_METRICS"]
	outputs: ["count"]
}
tasks: online: {
	command: ["bash", "-c", "echo > /dev/tcp/127.0.0.1/%d && echo reached the network"]
	network: true
}
`, port)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "weir.cue"), []byte(spec), 0o644))
	env := append(os.Environ(), "WEIR_PLUGIN_PATH="+plugins)

	run := func(args ...string) (string, error) {
		cmd := weirCmd(args...)
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("plan", dir)
	require.NoError(t, err, out)
	assert.Regexp(t, `tasks.count +task@box +never run`, out)
	assert.Contains(t, out, "note: pinned backend plugin sandbox 0.1.0")

	out, err = run("plan", "--json", dir)
	require.NoError(t, err, out)
	assert.Contains(t, out, `"root": "read-only"`, "the plan shows the sandbox the step runs in")

	out, err = run("apply", "--auto-approve", "-v", dir)
	require.NoError(t, err, out)
	assert.Contains(t, out, "[tasks.make] made the table")
	assert.Contains(t, out, "[tasks.online] reached the network", "network: true lets a step out")
	assert.Contains(t, out, "Apply complete: 3 ran, 0 cached, 0 failed")
	outs, _ := filepath.Glob(filepath.Join(dir, ".weir", "runs", "*", "tasks.count", "out", "count"))
	require.Len(t, outs, 1)
	b, err := os.ReadFile(outs[0])
	require.NoError(t, err)
	assert.Equal(t, "2", strings.TrimSpace(string(b)))

	// The listing shows the plugin, pinned.
	out, err = run("plugins", "list", dir)
	require.NoError(t, err, out)
	assert.Regexp(t, `(?m)^sandbox +0\.1\.0 +1 +[0-9a-f]{12} +pinned +`+regexpQuote(filepath.Join(plugins, "weir-backend-sandbox"))+`$`, out)

	// Steps that try to leave the sandbox fail.
	bad := filepath.Join(t.TempDir(), "bad")
	require.NoError(t, os.MkdirAll(bad, 0o755))
	spec = fmt.Sprintf(`project: "escape"
owner:   "team:ml"
backends: box: kind: "sandbox"
defaults: backend: "box"
tasks: network: command: ["bash", "-c", "echo > /dev/tcp/127.0.0.1/%d && echo reached the network"]
tasks: project: {
	command: ["sh", "-c", "echo x > $WEIR_OUTPUT_OUT; echo sneaky > %s/leak.txt"]
	outputs: ["out"]
}
tasks: home: {
	command: ["sh", "-c", "echo x > $WEIR_OUTPUT_OUT; echo sneaky > $HOME/leak.txt"]
	outputs: ["out"]
}
tasks: tmp: {
	command: ["sh", "-c", "echo x > $WEIR_OUTPUT_OUT; echo sneaky > /tmp/weir-sandbox-leak.txt"]
	outputs: ["out"]
}
`, port, bad)
	require.NoError(t, os.WriteFile(filepath.Join(bad, "weir.cue"), []byte(spec), 0o644))
	os.Remove("/tmp/weir-sandbox-leak.txt")
	out, err = run("apply", "--auto-approve", "--keep-going", bad)
	require.Error(t, err, out)
	assert.Contains(t, out, "✗ tasks.network: failed: exited with code 1")
	assert.Contains(t, out, "Connection refused")
	assert.Contains(t, out, "✗ tasks.project: failed: exited with code")
	assert.Contains(t, out, "✗ tasks.home: failed: exited with code")
	assert.Contains(t, out, "✗ tasks.tmp: failed: exited with code")
	assert.Contains(t, out, "Read-only file system")
	assert.Contains(t, out, "Apply failed")
	assert.NoFileExists(t, filepath.Join(bad, "leak.txt"))
	assert.NoFileExists(t, "/tmp/weir-sandbox-leak.txt")
	leaks, _ := filepath.Glob(filepath.Join(bad, ".weir", "runs", "*", "*", "leak.txt"))
	assert.Empty(t, leaks)
}

func regexpQuote(s string) string {
	r := strings.NewReplacer(`.`, `\.`, `+`, `\+`, `(`, `\(`, `)`, `\)`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}
