package docker_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/plugins/sdk/conformance"
	"weir.dev/weir/runtime/backend"
)

// shellImage packages the machine's static busybox (Debian's
// busybox-static) as /bin/busybox with a link per applet: an image with a
// shell, for the conformance suite's scripts, made without pulling.
func shellImage(t *testing.T, b *docker.Backend) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err == nil && exec.Command("ldd", bb).Run() == nil {
		err = errors.New(bb + " is dynamically linked")
	}
	if err != nil {
		if inCI() {
			t.Fatalf("CI=true but no static busybox here (.ci/run installs busybox-static): %v", err)
		}
		t.Skip("the conformance suite needs a shell in an image: apt-get install -y busybox-static")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	data, err := os.ReadFile(bb)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755))
	list, err := exec.Command(bb, "--list").Output()
	require.NoError(t, err)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			require.NoError(t, os.Symlink("busybox", filepath.Join(bin, applet)))
		}
	}
	layer, err := docker.LayerFromDir(root, "")
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
	d, err := img.Digest()
	require.NoError(t, err)
	tag, err := name.NewTag("weir.local/weir-test/busybox:" + d.Hex[:24])
	require.NoError(t, err)
	_, err = daemon.Write(tag, img, daemon.WithClient(b.Client()))
	require.NoError(t, err)
	return tag.String()
}

// TestConformance runs the backends' conformance suite against the Docker
// backend, in busybox containers.
func TestConformance(t *testing.T) {
	b := newBackend(t, docker.Options{Project: "conformance"})
	conformance.Run(t, b, conformance.Options{Image: shellImage(t, b), Skip: map[string]string{
		"artifacts": "in a container the step runs in /weir (the contract's path), not in the host's Dir the suite expects: TestArtifactsInContainer is this case with the container's paths",
	}})
}

// TestArtifactsInContainer is the suite's artifacts case with the
// container's paths: input read, a file and a folder written as outputs,
// metrics appended, scratch in TMPDIR, the step started in /weir.
func TestArtifactsInContainer(t *testing.T) {
	b := newBackend(t, docker.Options{Project: "conformance"})
	w := newWork(t, shellImage(t, b), "sh", "-c", `set -e
cat "$WEIR_INPUT_DATA" > "$WEIR_OUTPUT_COPY"
mkdir "$WEIR_OUTPUT_TREE"; echo leaf > "$WEIR_OUTPUT_TREE/leaf.txt"
echo '{"rows": 3}' >> "$WEIR_METRICS"
pwd > "$WEIR_OUTPUT_CWD"
echo scratch > "$TMPDIR/scratch"`).input("data", "a,b\n1,2\n").output("copy").output("tree").output("cwd")
	res, _ := run(t, b, w.task)
	require.Equal(t, backend.StateSucceeded, res.State, "%s\n%s", res.Message, w.read("log.txt"))
	assert.Equal(t, "a,b\n1,2\n", w.read("out/copy"))
	assert.Equal(t, "leaf\n", w.read("out/tree/leaf.txt"))
	assert.Equal(t, "{\"rows\": 3}\n", w.read("metrics.jsonl"))
	assert.Equal(t, "/weir\n", w.read("out/cwd"))
	assert.Equal(t, "scratch\n", w.read("tmp/scratch"))
}
