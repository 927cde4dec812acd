package launcher_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/kubernetes/launcher"
)

// benchStep is a task with a 64 MiB file and a folder of 500 files of
// 4 KiB as inputs, copying them to two outputs.
func benchStep(b *testing.B) *work {
	w := newWork(b, "sh", "-c", `cp "$WEIR_INPUT_DATA" "$WEIR_OUTPUT_DATA" && cp -R "$WEIR_INPUT_TREE" "$WEIR_OUTPUT_TREE"`)
	data := make([]byte, 64<<20)
	rand.Read(data)
	p := filepath.Join(w.dir, "in", "data")
	require.NoError(b, os.WriteFile(p, data, 0o644))
	w.input("data", p)
	files := map[string]string{}
	for i := range 500 {
		files[fmt.Sprintf("part-%03d/f.bin", i)] = string(data[i*4096 : (i+1)*4096])
	}
	return w.tree("tree", files).output("data", "tree")
}

// BenchmarkStage: a first upload of the inputs; the same inputs again
// (digested, not uploaded); and again with the project's store, which
// holds them already (digested without a copy).
func BenchmarkStage(b *testing.B) {
	ctx := context.Background()
	w := benchStep(b)
	b.Run("first", func(b *testing.B) {
		b.SetBytes(64<<20 + 500*4096)
		for b.Loop() {
			b.StopTimer()
			url, _ := bucket(b)
			b.StartTimer()
			_, err := launcher.Stage(ctx, url, "p", w.task)
			require.NoError(b, err)
		}
	})
	url, _ := bucket(b)
	_, err := launcher.Stage(ctx, url, "p", w.task)
	require.NoError(b, err)
	b.Run("again", func(b *testing.B) {
		for b.Loop() {
			_, err := launcher.Stage(ctx, url, "p", w.task)
			require.NoError(b, err)
		}
	})
	store := mustStore(b)
	b.Run("again-with-store", func(b *testing.B) {
		for b.Loop() {
			_, err := launcher.Stage(ctx, url, "p", w.task, launcher.WithStore(store))
			require.NoError(b, err)
		}
	})
}

// BenchmarkCollect downloads and checks the two outputs.
func BenchmarkCollect(b *testing.B) {
	ctx := context.Background()
	w := benchStep(b)
	url, _ := bucket(b)
	_, err := launcher.Stage(ctx, url, "p", w.task)
	require.NoError(b, err)
	code, _, stderr := launch(b, url, "p", b.TempDir(), w.env(), w.task.Argv...)
	require.Equal(b, 0, code, stderr)
	b.SetBytes(64<<20 + 500*4096)
	for b.Loop() {
		b.StopTimer()
		back := w.twin()
		b.StartTimer()
		require.NoError(b, launcher.Collect(ctx, url, "p", back.task))
	}
}
