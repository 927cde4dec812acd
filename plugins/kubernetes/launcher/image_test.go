package launcher_test

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/kubernetes/launcher"
)

// staticBinary is a static Linux executable of this machine to stand for
// the launcher where only its packaging matters: Debian's busybox-static.
func staticBinary(t testing.TB) []byte {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err == nil && exec.Command("ldd", bb).Run() == nil {
		err = errors.New(bb + " is dynamically linked")
	}
	if err != nil {
		if inCI() {
			t.Fatalf("CI=true but no static busybox here (.ci/run installs busybox-static): %v", err)
		}
		t.Skip("needs a static busybox: apt-get install -y busybox-static")
	}
	b, err := os.ReadFile(bb)
	require.NoError(t, err)
	return b
}

func inCI() bool { return os.Getenv("CI") == "true" }

func baseImage(t testing.TB, arch string) v1.Image {
	cf, err := empty.Image.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/bin/app"}
	cf.Config.Cmd = []string{"serve"}
	cf.Config.Env = []string{"PATH=/bin"}
	img, err := mutate.ConfigFile(empty.Image, cf)
	require.NoError(t, err)
	return img
}

func TestAddToImage(t *testing.T) {
	bin := staticBinary(t)
	img, err := launcher.AddToImage(baseImage(t, runtime.GOARCH), bin)
	require.NoError(t, err)
	require.NoError(t, validate.Image(img))
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{launcher.Path}, cf.Config.Entrypoint)
	assert.Empty(t, cf.Config.Cmd, "the launcher's arguments are the container's")
	assert.Equal(t, []string{"PATH=/bin"}, cf.Config.Env, "the rest of the config is the base's")
	assert.Equal(t, "linux", cf.OS)

	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	type entry struct {
		name string
		mode int64
		size int64
	}
	var got []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		assert.Zero(t, h.ModTime.Unix(), h.Name)
		assert.Zero(t, h.Uid+h.Gid, h.Name)
		got = append(got, entry{h.Name, h.Mode, h.Size})
	}
	assert.Equal(t, []entry{{"weir/", 0o1777, 0}, {"weir/bin/", 0o755, 0}, {"weir/bin/weir-launcher", 0o755, int64(len(bin))}}, got)

	// Reproducible: the same launcher on the same base is the same image.
	again, err := launcher.AddToImage(baseImage(t, runtime.GOARCH), bin)
	require.NoError(t, err)
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	assert.Equal(t, d1, d2)

	// A base without an architecture takes the launcher's.
	img, err = launcher.AddToImage(empty.Image, bin)
	require.NoError(t, err)
	cf, err = img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, runtime.GOARCH, cf.Architecture)
}

func TestAddToImageRefusals(t *testing.T) {
	bin := staticBinary(t)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	_, err := launcher.AddToImage(baseImage(t, other), bin)
	assert.ErrorContains(t, err, "the image is for "+other)

	_, err = launcher.AddToImage(baseImage(t, runtime.GOARCH), []byte("#!/bin/sh\n"))
	assert.ErrorContains(t, err, "not a Linux executable")

	if sh, err := os.ReadFile("/bin/sh"); err == nil && exec.Command("ldd", "/bin/sh").Run() == nil {
		_, err = launcher.AddToImage(baseImage(t, runtime.GOARCH), sh)
		assert.ErrorContains(t, err, "dynamically linked: build it with CGO_ENABLED=0")
	}
}
