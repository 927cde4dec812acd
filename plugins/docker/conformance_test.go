package docker_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/internal/imagetest"
	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/plugins/sdk/conformance"
	"weir.dev/weir/runtime/backend"
)

// shellImage packages the machine's static busybox (Debian's
// busybox-static) as /bin/busybox with a link per applet: an image with a
// shell, for the conformance suite's scripts, made without pulling.
func shellImage(t *testing.T, b *docker.Backend) string {
	t.Helper()
	img := imagetest.Busybox(t, nil)
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
