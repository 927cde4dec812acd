package docker_test

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/docker"
)

// codeDir writes a code folder; stamp sets every file's time, mode the
// permission bits a checkout may give non-executables.
func codeDir(t *testing.T, stamp time.Time, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"train.py": "print('hi')\n", "lib/util.py": "X = 1\n", "message.txt": "hello from the code folder\n",
		".git/HEAD": "ref: main\n", "lib/__pycache__/util.pyc": "junk"}
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chtimes(p, stamp, stamp))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"), 0o700))
	require.NoError(t, os.Symlink("lib/util.py", filepath.Join(dir, "util.py")))
	return dir
}

func TestLayerFromDirIsReproducible(t *testing.T) {
	a := codeDir(t, time.Unix(1e9, 0), 0o644)
	b := codeDir(t, time.Now(), 0o664)
	la, err := docker.LayerFromDir(a, "/weir/code")
	require.NoError(t, err)
	lb, err := docker.LayerFromDir(b, "weir/code/")
	require.NoError(t, err)
	require.NoError(t, validate.Layer(la))
	da, err := la.Digest()
	require.NoError(t, err)
	db, err := lb.Digest()
	require.NoError(t, err)
	assert.Equal(t, da, db, "other times, other folders, other group bits: the same layer")

	rc, err := la.Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		modes[h.Name] = h.Mode
		assert.True(t, h.ModTime.Equal(time.Unix(0, 0)), h.Name)
		assert.Zero(t, h.Uid)
	}
	assert.Equal(t, []string{"weir/", "weir/code/", "weir/code/lib/", "weir/code/lib/util.py", "weir/code/message.txt",
		"weir/code/run.sh", "weir/code/train.py", "weir/code/util.py"}, names, "sorted, without .git and caches")
	assert.Equal(t, int64(0o755), modes["weir/code/run.sh"])
	assert.Equal(t, int64(0o644), modes["weir/code/train.py"])

	// One changed byte is another layer.
	require.NoError(t, os.WriteFile(filepath.Join(b, "train.py"), []byte("print('ho')\n"), 0o644))
	lc, err := docker.LayerFromDir(b, "weir/code")
	require.NoError(t, err)
	dc, _ := lc.Digest()
	assert.NotEqual(t, da, dc)
}

func TestDeriveIsReproducibleAndNamedByContent(t *testing.T) {
	base, err := random.Image(256, 2)
	require.NoError(t, err)
	a, err := docker.Derive(base, codeDir(t, time.Unix(5, 0), 0o644))
	require.NoError(t, err)
	b, err := docker.Derive(base, codeDir(t, time.Now(), 0o644))
	require.NoError(t, err)
	require.NoError(t, validate.Image(a))
	da, _ := a.Digest()
	db, _ := b.Digest()
	assert.Equal(t, da, db)

	ls, err := a.Layers()
	require.NoError(t, err)
	assert.Len(t, ls, 3, "the base's layers plus one")
	cf, err := a.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "/weir/code", cf.Config.WorkingDir)

	tag, err := docker.DerivedTag("", "Churn Model", "training.churn.trial[lr=0.1,l2=0]", a)
	require.NoError(t, err)
	assert.Equal(t, "weir.local/churn-model/training-churn-trial-lr-0-1-l2-0:"+da.Hex[:24], tag.String())
	tag, err = docker.DerivedTag("127.0.0.1:5000/team", "p", "s", a)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5000/team/p/s:"+da.Hex[:24], tag.String())

	// An empty base gets a platform, or the engine warns about it.
	e, err := docker.Derive(empty.Image, codeDir(t, time.Now(), 0o644))
	require.NoError(t, err)
	cf, err = e.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux", cf.OS)
	assert.NotEmpty(t, cf.Architecture)
}
