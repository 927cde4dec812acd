package data

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/schema"
)

// sampleFile writes n rows of a normal column x (mean mu, sd 1) and a
// categorical column c drawn with the weights w over "a", "b", "c", "d".
func sampleFile(t *testing.T, seed uint64, n int, mu float64, w []float64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("x,c\n")
	for range n {
		u, acc, cat := rng.Float64(), 0.0, "d"
		for i, wi := range w {
			if acc += wi; u < acc {
				cat = string(rune('a' + i))
				break
			}
		}
		fmt.Fprintf(&b, "%.6f,%s\n", mu+rng.NormFloat64(), cat)
	}
	return writeFile(t, "s.csv", b.String())
}

func profileOf(t *testing.T, path string, opts ...ProfileOption) *DatasetProfile {
	t.Helper()
	p, err := Profile(context.Background(), path, schema.ProfileConfig{}, opts...)
	require.NoError(t, err)
	return p
}

func TestPSI(t *testing.T) {
	even := []float64{0.25, 0.25, 0.25, 0.25}
	ref := profileOf(t, sampleFile(t, 1, 20_000, 0, even))

	t.Run("identical", func(t *testing.T) {
		assert.InDelta(t, 0, PSI(ref.Column("x"), ref.Column("x")), 1e-12)
		assert.InDelta(t, 0, PSI(ref.Column("c"), ref.Column("c")), 1e-12)
	})

	t.Run("same distribution, another sample", func(t *testing.T) {
		cur := profileOf(t, sampleFile(t, 2, 20_000, 0, even))
		assert.Less(t, PSI(ref.Column("x"), cur.Column("x")), 0.02, "re-binned")
		aligned := profileOf(t, sampleFile(t, 2, 20_000, 0, even), WithReference(ref))
		assert.Equal(t, ref.Column("x").Numeric.Histogram.Edges, aligned.Column("x").Numeric.Histogram.Edges)
		assert.Less(t, PSI(ref.Column("x"), aligned.Column("x")), 0.02, "on the reference's edges")
		assert.Less(t, PSI(ref.Column("c"), cur.Column("c")), 0.01)
	})

	t.Run("shifted", func(t *testing.T) {
		cur := profileOf(t, sampleFile(t, 3, 20_000, 1, []float64{0.6, 0.2, 0.1, 0.1}))
		assert.Greater(t, PSI(ref.Column("x"), cur.Column("x")), 0.2)
		aligned := profileOf(t, sampleFile(t, 3, 20_000, 1, even), WithReference(ref))
		exact := PSI(ref.Column("x"), aligned.Column("x"))
		assert.Greater(t, exact, 0.2)
		assert.InEpsilon(t, exact, PSI(ref.Column("x"), cur.Column("x")), 0.2, "re-binning approximates the exact index")
		assert.Greater(t, PSI(ref.Column("c"), cur.Column("c")), 0.2)
	})

	t.Run("not comparable", func(t *testing.T) {
		assert.True(t, math.IsNaN(PSI(nil, ref.Column("x"))))
		assert.True(t, math.IsNaN(PSI(ref.Column("x"), ref.Column("c"))))
		assert.True(t, math.IsNaN(PSI(ref.Column("x"), &ColumnProfile{Name: "x", PII: true, Count: 3})))
	})
}

func TestPSIConstantReference(t *testing.T) {
	ref := profileOf(t, writeFile(t, "r.csv", "x\n5\n5\n5\n"))
	require.Equal(t, []float64{5, 5}, ref.Column("x").Numeric.Histogram.Edges)
	same := profileOf(t, writeFile(t, "s.csv", "x\n5\n5\n"))
	assert.InDelta(t, 0, PSI(ref.Column("x"), same.Column("x")), 1e-12)
	moved := profileOf(t, writeFile(t, "m.csv", "x\n6\n7\n8\n"))
	assert.Greater(t, PSI(ref.Column("x"), moved.Column("x")), 1.0)
}

func TestPSICategoriesBeyondTop(t *testing.T) {
	// current lists only its top values; a reference value missing from it
	// gets an even share of the rest.
	ref := &ColumnProfile{Count: 100, Categories: &CategoryStats{Distinct: 2, Top: []Category{{"a", 50}, {"b", 50}}}}
	cur := &ColumnProfile{Count: 100, Categories: &CategoryStats{Distinct: 3, Top: []Category{{"a", 50}}}}
	p, q := categoryBins(ref, cur)
	assert.Equal(t, []float64{0.5, 0.5, 0}, p)
	assert.Equal(t, []float64{0.5, 0.25, 0.25}, q)
	complete := &ColumnProfile{Count: 100, Categories: &CategoryStats{Distinct: 1, Top: []Category{{"a", 100}}}}
	_, q = categoryBins(ref, complete)
	assert.Equal(t, []float64{1, 0, 0}, q)
}

func TestPSIConstantReferenceWithReference(t *testing.T) {
	ref := profileOf(t, writeFile(t, "r.csv", "x\n5\n5\n5\n"))
	moved := profileOf(t, writeFile(t, "m.csv", "x\n6\n7\n8\n"), WithReference(ref))
	assert.Equal(t, 6.0, moved.Column("x").Numeric.Histogram.Edges[0], "a one-value reference lends no edges")
	assert.Greater(t, PSI(ref.Column("x"), moved.Column("x")), 1.0)
}
