package exec

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIsEmptyDir(t *testing.T) {
	d := t.TempDir()
	assert.True(t, isEmptyDir(d))
	assert.False(t, isEmptyDir(filepath.Join(d, "missing")))
	require.NoError(t, os.WriteFile(filepath.Join(d, ".hidden"), nil, 0o644))
	assert.False(t, isEmptyDir(d), "a dot file")
	assert.False(t, isEmptyDir(filepath.Join(d, ".hidden")), "a file")
	require.NoError(t, os.Remove(filepath.Join(d, ".hidden")))
	assert.True(t, isEmptyDir(d), "emptied again")
	require.NoError(t, os.Mkdir(filepath.Join(d, "sub"), 0o755))
	assert.False(t, isEmptyDir(d), "a folder")
	for i := range 300 { // more entries than one 4 KiB batch holds
		require.NoError(t, os.WriteFile(filepath.Join(d, "sub", "file-with-a-long-name-"+string(rune('a'+i%26))+string(rune('a'+i/26))), nil, 0o644))
	}
	assert.False(t, isEmptyDir(filepath.Join(d, "sub")))
}
