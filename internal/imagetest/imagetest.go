// Package imagetest makes the small image the container backends' tests
// run in: the machine's static busybox (Debian's busybox-static) as one
// reproducible layer, made with go-containerregistry, never pulled (no
// registry can be reached from the machines the tests run on).
package imagetest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"weir.dev/weir/plugins/docker"
)

// Busybox returns an image of the machine's static busybox at /bin/busybox
// with every applet linked beside it, PATH=/bin, for this machine's
// architecture; files (path below / → content) are added to the same
// layer. Without a static busybox the test is skipped, or fails under
// CI=true (.ci/run installs busybox-static).
func Busybox(t testing.TB, files map[string]string) v1.Image {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err == nil && exec.Command("ldd", bb).Run() == nil {
		err = errors.New(bb + " is dynamically linked")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but no static busybox here (.ci/run installs busybox-static): %v", err)
		}
		t.Skipf("the test image is made of a static busybox: apt-get install -y busybox-static (%v)", err)
	}
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	must(t, os.MkdirAll(bin, 0o755))
	data, err := os.ReadFile(bb)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755))
	list, err := exec.Command(bb, "--list").Output()
	must(t, err)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			must(t, os.Symlink("busybox", filepath.Join(bin, applet)))
		}
	}
	for p, content := range files {
		dst := filepath.Join(root, filepath.FromSlash(p))
		must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		must(t, os.WriteFile(dst, []byte(content), 0o644))
	}
	layer, err := docker.LayerFromDir(root, "")
	must(t, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Env = []string{"PATH=/bin"}
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	must(t, validate.Image(img))
	return img
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
