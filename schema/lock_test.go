package schema

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLockRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l, err := ReadLock(dir)
	require.NoError(t, err, "a project without weir.lock has an empty lock")
	assert.Empty(t, l.Plugins)

	l.Plugins = map[string]*LockedPlugin{
		"sandbox": {SHA256: "sha256:ab", Protocol: 1, Version: "0.1.0"},
		"batch":   {SHA256: "sha256:cd", Protocol: 1},
	}
	l.Images = map[string]string{"python:3.12-slim": "sha256:ef"}
	require.NoError(t, WriteLock(dir, l))
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	require.NoError(t, err)
	assert.Equal(t, `{
  "format_version": 1,
  "plugins": {
    "batch": {
      "sha256": "sha256:cd",
      "protocol": 1
    },
    "sandbox": {
      "sha256": "sha256:ab",
      "protocol": 1,
      "version": "0.1.0"
    }
  },
  "images": {
    "python:3.12-slim": "sha256:ef"
  }
}
`, string(b))
	back, err := ReadLock(dir)
	require.NoError(t, err)
	assert.Equal(t, l, back)
	assert.Equal(t, l.Hash(), back.Hash())
	left, _ := filepath.Glob(filepath.Join(dir, ".weir.lock-*"))
	assert.Empty(t, left, "no temporary file left")
}

func TestLockRefusesWhatItDoesNotKnow(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{`{"format_version": 2}`, "lock file format version 2; this weir reads version 1"},
		{`{"format_version": 1, "plugins": {"x": {"protocol": 1}}}`, "plugin x has no sha256"},
		{`{"format_version": 1, "providers": {}}`, `unknown field "providers"`},
		{`not json`, "not a valid lock file"},
	} {
		_, err := DecodeLock([]byte(c.text))
		assert.ErrorContains(t, err, c.want, c.text)
	}
}
