package load

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", os.Getenv("WEIR_UPDATE") != "", "rewrite golden sections")

// TestLoadGolden runs each testdata/*.txtar: its files form a project; the
// "want" section is the diagnostics (or, when loading succeeds, the IR as
// JSON). WEIR_UPDATE=1 rewrites the sections.
func TestLoadGolden(t *testing.T) { runGolden(t, false) }

// TestLoadGoldenSplit runs the same cases with every spec cut into as many
// parts as it has elements (see split.go): the output must not change.
func TestLoadGoldenSplit(t *testing.T) {
	forceSplit(t)
	runGolden(t, true)
}

func runGolden(t *testing.T, split bool) {
	paths, _ := filepath.Glob("testdata/*.txtar")
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			require.NoError(t, err)
			dir := t.TempDir()
			var want *txtar.File
			for i, f := range ar.Files {
				if f.Name == "want" {
					want = &ar.Files[i]
					continue
				}
				p := filepath.Join(dir, f.Name)
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				require.NoError(t, os.WriteFile(p, f.Data, 0o644))
			}
			res, diags := Load(context.Background(), dir, Options{})
			if split && len(diags) == 0 {
				files, _ := specFiles(dir)
				srcs, err := readSpecFiles(dir, files)
				require.NoError(t, err)
				_, _, ok := evaluateSplit(context.Background(), dir, srcs, "")
				require.True(t, ok, "the spec was not split")
			}
			var got strings.Builder
			for _, d := range diags {
				got.WriteString(d.Code + " " + d.String() + "\n")
			}
			if res != nil && res.Project != nil {
				b, _ := json.MarshalIndent(res.Project, "", "  ")
				got.Write(b)
				got.WriteString("\n")
			}
			if *update && !split {
				if want == nil {
					ar.Files = append(ar.Files, txtar.File{Name: "want"})
					want = &ar.Files[len(ar.Files)-1]
				}
				want.Data = []byte(got.String())
				require.NoError(t, os.WriteFile(path, txtar.Format(ar), 0o644))
				return
			}
			if *update {
				return
			}
			require.NotNil(t, want, "no want section; run with WEIR_UPDATE=1")
			require.Equal(t, string(want.Data), got.String())
		})
	}
}
