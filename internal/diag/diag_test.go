package diag

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSuggest(t *testing.T) {
	cands := []string{"datasets", "features", "training", "models", "serving", "monitoring"}
	assert.Equal(t, "training", Suggest("trainig", cands))
	assert.Equal(t, "features", Suggest("featrues", cands))
	assert.Equal(t, "", Suggest("zzzzzz", cands))
	assert.Equal(t, ` (did you mean "models"?)`, DidYouMean("model", cands))
}

func TestStringAndSort(t *testing.T) {
	ds := Diagnostics{
		Errorf("b", "", &Range{Filename: "weir.cue", Start: Pos{Line: 9, Column: 2}}, "second"),
		Errorf("a", "", &Range{Filename: "weir.cue", Start: Pos{Line: 3, Column: 5}}, "first"),
		Warnf("c", "training.x", nil, "no position"),
	}
	ds.Sort()
	assert.Equal(t, "weir.cue:3:5: first", ds[0].String())
	assert.Equal(t, "weir.cue:9:2: second", ds[1].String())
	assert.Equal(t, "training.x: warning: no position", ds[2].String())
	assert.True(t, ds.HasErrors())
	assert.False(t, Diagnostics{ds[2]}.HasErrors())
	assert.Len(t, append(ds, ds[0]).Dedup(), 3)
}
