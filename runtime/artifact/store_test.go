package artifact_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/artifact"
)

func open(t *testing.T) *artifact.Store {
	t.Helper()
	s, err := artifact.Open(filepath.Join(t.TempDir(), ".weir", "artifacts"))
	require.NoError(t, err)
	return s
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode))
}

func TestPutLayoutAndDedup(t *testing.T) {
	s := open(t)
	content := []byte("hello, weir\n")
	d, n, err := s.Put(bytes.NewReader(content))
	require.NoError(t, err)
	assert.Equal(t, sha(content), d)
	assert.Equal(t, int64(len(content)), n)

	hx := strings.TrimPrefix(d, "sha256:")
	want := filepath.Join(s.Root(), "sha256", hx[:2], hx)
	p, err := s.Path(d)
	require.NoError(t, err)
	assert.Equal(t, want, p)
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o444), fi.Mode().Perm(), "blobs are read-only")
	assert.True(t, s.Has(d))

	// A second put of the same content is a no-op: same digest, the blob is
	// not rewritten, no temp file is left behind.
	before := fi.ModTime()
	d2, _, err := s.Put(bytes.NewReader(content))
	require.NoError(t, err)
	assert.Equal(t, d, d2)
	fi2, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, before, fi2.ModTime())
	tmp, err := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmp)
	all, err := s.Digests()
	require.NoError(t, err)
	assert.Equal(t, []string{d}, all)
}

func TestPutFileHealsDamagedBlob(t *testing.T) {
	s := open(t)
	src := filepath.Join(t.TempDir(), "model.bin")
	writeFile(t, src, "weights", 0o644)
	d, _, err := s.PutFile(src)
	require.NoError(t, err)
	p, _ := s.Path(d)
	// Truncate the blob behind the store's back.
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, os.WriteFile(p, []byte("we"), 0o644))
	require.ErrorIs(t, s.Check(d, 7), artifact.ErrCorrupt)
	// Putting the same content again replaces the damaged blob.
	_, _, err = s.PutFile(src)
	require.NoError(t, err)
	require.NoError(t, s.Verify(d))
}

func TestVerifyAndCheck(t *testing.T) {
	s := open(t)
	d, n, err := s.Put(strings.NewReader("abc"))
	require.NoError(t, err)
	require.NoError(t, s.Verify(d))
	require.NoError(t, s.Check(d, n))

	err = s.Check(d, n+1)
	require.ErrorIs(t, err, artifact.ErrCorrupt)
	assert.Contains(t, err.Error(), "recorded as 4")

	// Same size, different content: Check cannot see it, Verify can.
	p, _ := s.Path(d)
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, os.WriteFile(p, []byte("abd"), 0o644))
	require.NoError(t, s.Check(d, n))
	err = s.Verify(d)
	require.ErrorIs(t, err, artifact.ErrCorrupt)
	assert.NotErrorIs(t, err, artifact.ErrMissing)
	assert.Contains(t, err.Error(), p)

	missing := sha([]byte("nope"))
	require.ErrorIs(t, s.Verify(missing), artifact.ErrMissing)
	require.ErrorIs(t, s.Check(missing, 4), artifact.ErrMissing)
	require.ErrorIs(t, s.Materialize(missing, filepath.Join(t.TempDir(), "x"), false), artifact.ErrMissing)
	assert.False(t, s.Has(missing))

	for _, bad := range []string{"", "sha256:abc", "md5:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64)} {
		_, err := s.Path(bad)
		assert.Error(t, err, bad)
		assert.Error(t, s.Verify(bad), bad)
		assert.False(t, s.Has(bad))
	}
}

func TestMaterializeFileIsACopy(t *testing.T) {
	s := open(t)
	d, _, err := s.Put(strings.NewReader("data"))
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "in", "train.csv")
	require.NoError(t, s.Materialize(d, dst, false))
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.Equal(t, "data", string(got))

	// The step may write to its input; the store must not change.
	require.NoError(t, os.WriteFile(dst, []byte("scribbled"), 0o644))
	require.NoError(t, s.Verify(d))
	// Materializing again replaces the scribbled copy.
	require.NoError(t, s.Materialize(d, dst, false))
	got, _ = os.ReadFile(dst)
	assert.Equal(t, "data", string(got))
}

func TestMaterializeCorruptBlobRemovesCopy(t *testing.T) {
	s := open(t)
	d, _, err := s.Put(strings.NewReader("good data"))
	require.NoError(t, err)
	p, _ := s.Path(d)
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, os.WriteFile(p, []byte("evil data"), 0o644))
	dst := filepath.Join(t.TempDir(), "x")
	err = s.Materialize(d, dst, false)
	require.ErrorIs(t, err, artifact.ErrCorrupt)
	_, err = os.Stat(dst)
	assert.ErrorIs(t, err, fs.ErrNotExist, "a corrupt blob never reaches a step")
}

func makeTree(t *testing.T, root string) {
	t.Helper()
	writeFile(t, filepath.Join(root, "model.bin"), "weights", 0o600)
	writeFile(t, filepath.Join(root, "run.sh"), "#!/bin/sh\n", 0o700)
	writeFile(t, filepath.Join(root, "sub", "deep", "a.txt"), "a", 0o664)
	writeFile(t, filepath.Join(root, "sub", "b.txt"), "b", 0o644)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "empty"), 0o700))
	require.NoError(t, os.Symlink("sub/b.txt", filepath.Join(root, "latest")))
}

func TestDirectoryRoundTrip(t *testing.T) {
	s := open(t)
	a := filepath.Join(t.TempDir(), "a")
	makeTree(t, a)
	o1, err := s.PutPath(a)
	require.NoError(t, err)
	assert.True(t, o1.IsDir)

	// The same tree made elsewhere, later, with other times and modes of the
	// same executable-ness, has the same digest.
	b := filepath.Join(t.TempDir(), "b")
	makeTree(t, b)
	require.NoError(t, os.Chmod(filepath.Join(b, "model.bin"), 0o644))
	require.NoError(t, os.Chmod(filepath.Join(b, "run.sh"), 0o755))
	o2, err := s.PutPath(b)
	require.NoError(t, err)
	assert.Equal(t, o1, o2)

	// Materialize and store again: identical digest.
	out := filepath.Join(t.TempDir(), "out")
	require.NoError(t, s.Materialize(o1.Digest, out, true))
	got, err := os.ReadFile(filepath.Join(out, "sub", "deep", "a.txt"))
	require.NoError(t, err)
	assert.Equal(t, "a", string(got))
	fi, err := os.Stat(filepath.Join(out, "run.sh"))
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode().Perm()&0o100, "executable bit kept")
	link, err := os.Readlink(filepath.Join(out, "latest"))
	require.NoError(t, err)
	assert.Equal(t, "sub/b.txt", link)
	fi, err = os.Stat(filepath.Join(out, "empty"))
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
	o3, err := s.PutPath(out)
	require.NoError(t, err)
	assert.Equal(t, o1, o3)

	// A changed file changes the digest.
	writeFile(t, filepath.Join(out, "sub", "b.txt"), "B", 0o644)
	o4, err := s.PutPath(out)
	require.NoError(t, err)
	assert.NotEqual(t, o1.Digest, o4.Digest)

	// A materialized folder is writable and the store is unharmed.
	require.NoError(t, s.Verify(o1.Digest))

	// dst must be new or empty.
	err = s.Materialize(o1.Digest, out, true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not empty")
}

func TestPutPathFileAndRefusals(t *testing.T) {
	s := open(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x", 0o644)
	o, err := s.PutPath(f)
	require.NoError(t, err)
	assert.Equal(t, artifact.Object{Digest: sha([]byte("x")), Size: 1}, o)

	escape := filepath.Join(dir, "escape")
	require.NoError(t, os.MkdirAll(escape, 0o755))
	require.NoError(t, os.Symlink("../f", filepath.Join(escape, "up")))
	_, err = s.PutPath(escape)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "outside the output folder")

	abs := filepath.Join(dir, "abs")
	require.NoError(t, os.MkdirAll(abs, 0o755))
	require.NoError(t, os.Symlink(f, filepath.Join(abs, "up")))
	_, err = s.PutPath(abs)
	require.Error(t, err)

	_, err = s.PutPath(filepath.Join(dir, "absent"))
	require.Error(t, err)
	tmp, _ := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	assert.Empty(t, tmp, "failed puts leave no temp files")
}

func TestMaterializeTruncatedDirectory(t *testing.T) {
	s := open(t)
	dir := filepath.Join(t.TempDir(), "d")
	writeFile(t, filepath.Join(dir, "big"), strings.Repeat("x", 100000), 0o644)
	o, err := s.PutPath(dir)
	require.NoError(t, err)
	p, _ := s.Path(o.Digest)
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, os.Truncate(p, 50000))
	dst := filepath.Join(t.TempDir(), "out")
	err = s.Materialize(o.Digest, dst, true)
	require.ErrorIs(t, err, artifact.ErrCorrupt)
	_, err = os.Stat(dst)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestMaterializeRefusesEscapingArchive(t *testing.T) {
	s := open(t)
	// A hand-made tar with "../evil": not something PutPath writes.
	var buf bytes.Buffer
	buf.Write(tarEntry("../evil", "x"))
	buf.Write(make([]byte, 1024))
	d, _, err := s.Put(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	parent := t.TempDir()
	err = s.Materialize(d, filepath.Join(parent, "out"), true)
	require.ErrorIs(t, err, artifact.ErrCorrupt)
	_, err = os.Stat(filepath.Join(parent, "evil"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// tarEntry builds one ustar header block plus content by hand.
func tarEntry(name, content string) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", len(content)))
	copy(h[136:], "00000000000\x00")
	h[156] = '0'
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	body := make([]byte, (len(content)+511)/512*512)
	copy(body, content)
	return append(h, body...)
}

func TestSafeOutputName(t *testing.T) {
	for _, ok := range []string{"model", "data/train.csv", "a.b", "..x", "x.."} {
		assert.NoError(t, artifact.SafeOutputName(ok), ok)
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/../../x", "a/..", "/etc/passwd", `..\x`, "a\x00b"} {
		err := artifact.SafeOutputName(bad)
		if assert.Error(t, err, bad) {
			assert.Contains(t, err.Error(), "output name")
		}
	}
	err := artifact.SafeOutputName("../x")
	assert.EqualError(t, err, `output name "../x" escapes its folder: use a plain relative name such as "model" or "data/train.csv"`)
}

func TestGC(t *testing.T) {
	s := open(t)
	keep, _, err := s.Put(strings.NewReader("keep me"))
	require.NoError(t, err)
	drop1, n1, err := s.Put(strings.NewReader("drop me"))
	require.NoError(t, err)
	drop2, n2, err := s.Put(strings.NewReader("drop me too"))
	require.NoError(t, err)

	removed, freed, err := s.GC(func(d string) bool { return d == keep })
	require.NoError(t, err)
	assert.Equal(t, 2, removed)
	assert.Equal(t, n1+n2, freed)
	assert.True(t, s.Has(keep))
	require.NoError(t, s.Verify(keep))
	assert.False(t, s.Has(drop1))
	assert.False(t, s.Has(drop2))

	// Empty shard folders are gone.
	p, _ := s.Path(drop1)
	_, err = os.Stat(filepath.Dir(p))
	if filepath.Dir(p) != func() string { k, _ := s.Path(keep); return filepath.Dir(k) }() {
		assert.ErrorIs(t, err, fs.ErrNotExist)
	}

	removed, _, err = s.GC(func(string) bool { return true })
	require.NoError(t, err)
	assert.Zero(t, removed)
}

func TestCleanTemp(t *testing.T) {
	root := filepath.Join(t.TempDir(), "artifacts")
	s, err := artifact.Open(root)
	require.NoError(t, err)
	tmp := filepath.Join(root, "tmp")
	// A leftover of a dead writer, one of a live one (this process), and
	// something that is not ours at all.
	dead := filepath.Join(tmp, fmt.Sprintf("put-%d-123", deadPID(t)))
	live := filepath.Join(tmp, fmt.Sprintf("put-%d-456", os.Getpid()))
	junk := filepath.Join(tmp, "junk")
	for _, p := range []string{dead, live, junk} {
		require.NoError(t, os.WriteFile(p, []byte("partial"), 0o644))
	}
	_, err = artifact.Open(root) // Open cleans
	require.NoError(t, err)
	_, err = os.Stat(dead)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = os.Stat(junk)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = os.Stat(live)
	assert.NoError(t, err, "a write in progress in a live process is left alone")
	require.NoError(t, s.CleanTemp())
}

func TestConcurrentPutsOfTheSameContent(t *testing.T) {
	s := open(t)
	content := bytes.Repeat([]byte("weir"), 1<<16)
	var wg sync.WaitGroup
	digests := make([]string, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digests[i], _, errs[i] = s.Put(bytes.NewReader(content))
		}()
	}
	wg.Wait()
	for i := range 8 {
		require.NoError(t, errs[i])
		assert.Equal(t, sha(content), digests[i])
	}
	require.NoError(t, s.Verify(sha(content)))
	all, err := s.Digests()
	require.NoError(t, err)
	assert.Len(t, all, 1)
	tmp, _ := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	assert.Empty(t, tmp)
}

func TestErrorsAreDistinct(t *testing.T) {
	assert.False(t, errors.Is(artifact.ErrMissing, artifact.ErrCorrupt))
}
