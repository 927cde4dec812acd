package load

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConvertRoundTrip converts each quickstart to every language and
// requires the result to give the same IR, and to keep the comments.
func TestConvertRoundTrip(t *testing.T) {
	ctx := context.Background()
	want, ds := Load(ctx, "../../examples/quickstart", Options{})
	require.False(t, ds.HasErrors(), "%v", ds)
	for _, from := range []string{"quickstart", "quickstart-hcl", "quickstart-jsonnet"} {
		for _, to := range Languages {
			t.Run(from+"-to-"+to, func(t *testing.T) {
				c, ds := Convert(ctx, "../../examples/"+from, to, Inputs{})
				require.False(t, ds.HasErrors(), "%v", ds)
				dir := t.TempDir()
				require.NoError(t, os.WriteFile(filepath.Join(dir, c.Filename), c.Source, 0o644))
				got, ds := Load(ctx, dir, Options{})
				require.False(t, ds.HasErrors(), "%v\n%s", ds, c.Source)
				require.Equal(t, want.SpecHash, got.SpecHash, "%s", c.Source)
				marker := "// "
				if to == "hcl" {
					marker = "# "
				}
				src := string(c.Source)
				require.True(t, strings.HasPrefix(src, marker+"Weir quickstart"), "the header comment is kept:\n%s", src)
				require.Contains(t, src, marker+"Checked against the evaluate step's held-out metrics.")
			})
		}
	}
}
