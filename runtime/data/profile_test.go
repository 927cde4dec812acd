package data

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/data/internal/gen"
	"weir.dev/weir/schema"
)

func TestProfileSmallCSV(t *testing.T) {
	path := writeFile(t, "p.csv", strings.Join([]string{
		"n,x,flag,plan,email,empty,late",
		"1,0.5,true,basic,a@x.io,,1",
		"2,1.5,false,pro,b@x.io,,2",
		"3,,true,basic,c@x.io,,x",
		"4,2.5,true,basic,,,3",
		"10,4.5,false,pro,e@x.io,,y",
		"",
	}, "\n"))
	p, err := Profile(context.Background(), path, schema.ProfileConfig{PII: []string{"email"}})
	require.NoError(t, err)
	assert.Equal(t, "csv", p.Format)
	assert.EqualValues(t, 5, p.Rows)

	n := p.Column("n")
	require.NotNil(t, n)
	assert.Equal(t, "int", n.Type)
	assert.EqualValues(t, 5, n.Count)
	assert.EqualValues(t, 0, n.Nulls)
	require.NotNil(t, n.Numeric)
	assert.Nil(t, n.Categories)
	assert.Equal(t, 1.0, n.Numeric.Min)
	assert.Equal(t, 10.0, n.Numeric.Max)
	assert.InDelta(t, 4.0, n.Numeric.Mean, 1e-12)
	assert.InDelta(t, math.Sqrt(12.5), n.Numeric.Std, 1e-12) // deviations -3,-2,-1,0,6
	assert.Equal(t, Quantiles{P1: 1.04, P5: 1.2, P25: 2, P50: 3, P75: 4, P95: 8.8, P99: 9.76}, roundQ(n.Numeric.Quantiles))
	assert.Zero(t, n.Numeric.Sample)
	h := n.Numeric.Histogram
	require.Len(t, h.Edges, HistogramBins+1)
	assert.Equal(t, 1.0, h.Edges[0])
	assert.Equal(t, 10.0, h.Edges[HistogramBins])
	assert.InDelta(t, 1.45, h.Edges[1], 1e-12)
	want := make([]int64, HistogramBins)
	want[0], want[2], want[4], want[6], want[19] = 1, 1, 1, 1, 1 // 1, 2, 3, 4, 10 in bins of 0.45
	assert.Equal(t, want, h.Counts)

	x := p.Column("x")
	assert.Equal(t, "number", x.Type)
	assert.EqualValues(t, 4, x.Count)
	assert.EqualValues(t, 1, x.Nulls)
	assert.Equal(t, 2.25, x.Numeric.Mean)

	flag := p.Column("flag")
	assert.Equal(t, "bool", flag.Type)
	assert.Nil(t, flag.Numeric)
	assert.Equal(t, &CategoryStats{Distinct: 2, Top: []Category{{"true", 3}, {"false", 2}}}, flag.Categories)

	plan := p.Column("plan")
	assert.Equal(t, "string", plan.Type)
	assert.Equal(t, []Category{{"basic", 3}, {"pro", 2}}, plan.Categories.Top)

	email := p.Column("email")
	assert.Equal(t, ColumnProfile{Name: "email", PII: true, Count: 4, Nulls: 1}, *email)

	empty := p.Column("empty")
	assert.Equal(t, ColumnProfile{Name: "empty", Count: 0, Nulls: 5}, *empty)

	// Numbers first, then text: the value counts start again from the top.
	late := p.Column("late")
	assert.Equal(t, "string", late.Type)
	assert.Nil(t, late.Numeric)
	assert.Equal(t, &CategoryStats{Distinct: 5, Top: []Category{{"1", 1}, {"2", 1}, {"3", 1}, {"x", 1}, {"y", 1}}}, late.Categories)

	assert.Nil(t, p.Column("nope"))
}

func roundQ(q Quantiles) Quantiles {
	r := func(x float64) float64 { return math.Round(x*1e9) / 1e9 }
	return Quantiles{r(q.P1), r(q.P5), r(q.P25), r(q.P50), r(q.P75), r(q.P95), r(q.P99)}
}

func TestProfileJSONL(t *testing.T) {
	path := writeFile(t, "p.jsonl", strings.Join([]string{
		`{"a": 1, "s": "x"}`,
		`{"a": 2.5, "s": "5", "b": true}`,
		``,
		`{"a": null, "s": "x", "b": false, "m": 1}`,
		`{"s": null, "m": "one", "o": {"k": [1]}}`,
	}, "\n"))
	p, err := Profile(context.Background(), path, schema.ProfileConfig{Format: "jsonl"})
	require.NoError(t, err)
	assert.EqualValues(t, 4, p.Rows)
	var names []string
	for _, c := range p.Columns {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"a", "s", "b", "m", "o"}, names)

	a := p.Column("a")
	assert.Equal(t, "number", a.Type)
	assert.EqualValues(t, 2, a.Count)
	assert.EqualValues(t, 2, a.Nulls)
	assert.Equal(t, 1.75, a.Numeric.Mean)

	s := p.Column("s")
	assert.Equal(t, "string", s.Type, `a JSON string "5" is a string`)
	assert.Equal(t, []Category{{"x", 2}, {"5", 1}}, s.Categories.Top)

	b := p.Column("b")
	assert.Equal(t, "bool", b.Type)
	assert.EqualValues(t, 2, b.Nulls)

	m := p.Column("m")
	assert.Equal(t, "mixed", m.Type)
	assert.Equal(t, []Category{{"1", 1}, {"one", 1}}, m.Categories.Top)

	o := p.Column("o")
	assert.Equal(t, "mixed", o.Type)
	assert.Equal(t, []Category{{`{"k": [1]}`, 1}}, o.Categories.Top)
}

// genFile writes rows of the benchmark table to a temporary file.
func genFile(t testing.TB, rows int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gen.csv")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, gen.WriteCSV(f, rows, 7))
	require.NoError(t, f.Close())
	return path
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	require.NoError(t, err)
	return b
}

func TestProfileIsDeterministic(t *testing.T) {
	path := genFile(t, 20_000)
	ctx := context.Background()
	cfg := schema.ProfileConfig{PII: []string{"customer_id"}}
	for _, opts := range [][]ProfileOption{nil, {WithSampleSize(1000)}} {
		p1, err := Profile(ctx, path, cfg, opts...)
		require.NoError(t, err)
		p2, err := Profile(ctx, path, cfg, opts...)
		require.NoError(t, err)
		b1, b2 := marshal(t, p1), marshal(t, p2)
		assert.True(t, bytes.Equal(b1, b2), "two profiles of one file differ")
		assert.NotContains(t, string(b1), "C00", "a PII column's values leak")
	}
}

func TestProfileSampledQuantiles(t *testing.T) {
	path := genFile(t, 20_000)
	ctx := context.Background()
	exact, err := Profile(ctx, path, schema.ProfileConfig{})
	require.NoError(t, err)
	sampled, err := Profile(ctx, path, schema.ProfileConfig{}, WithSampleSize(2000))
	require.NoError(t, err)
	for _, name := range []string{"age", "tenure", "monthly", "total", "score"} {
		e, s := exact.Column(name).Numeric, sampled.Column(name).Numeric
		assert.Zero(t, e.Sample, name)
		assert.EqualValues(t, 2000, s.Sample, name)
		// Moments, extremes and histogram counts stay exact.
		assert.Equal(t, e.Min, s.Min, name)
		assert.Equal(t, e.Max, s.Max, name)
		assert.Equal(t, e.Mean, s.Mean, name)
		assert.Equal(t, e.Histogram, s.Histogram, name)
		// Quantiles are within the DKW rank bound at δ = 1e-6 (ε ≈ 0.059
		// for 2000 values): compare against exact quantiles ε either side.
		eps := math.Sqrt(math.Log(2/1e-6) / (2 * 2000))
		vals := readColumn(t, path, name)
		assert.Equal(t, quantile(vals, 0.5), e.Quantiles.P50, name)
		for _, pq := range []struct {
			p   float64
			got float64
		}{{0.05, s.Quantiles.P5}, {0.25, s.Quantiles.P25}, {0.5, s.Quantiles.P50}, {0.75, s.Quantiles.P75}, {0.95, s.Quantiles.P95}} {
			lo := quantile(vals, max(0, pq.p-eps))
			hi := quantile(vals, min(1, pq.p+eps))
			assert.True(t, lo <= pq.got && pq.got <= hi, "%s p%v = %v, want in [%v, %v]", name, pq.p*100, pq.got, lo, hi)
		}
	}
	assert.Equal(t, exact.Column("plan"), sampled.Column("plan"))
}

// readColumn returns the sorted numbers of a CSV column, read with
// encoding/csv and strconv as a check independent of Profile.
func readColumn(t *testing.T, path, col string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	idx := slices.Index(recs[0], col)
	require.GreaterOrEqual(t, idx, 0)
	var out []float64
	for _, r := range recs[1:] {
		x, err := strconv.ParseFloat(r[idx], 64)
		require.NoError(t, err)
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

func TestProfileManyCategories(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,plan\n")
	const n = maxTracked + 50_000
	for i := range n {
		plan := "a"
		if i%3 == 0 {
			plan = "b"
		}
		fmt.Fprintf(&b, "u%d,%s\n", i, plan)
	}
	b.WriteString("late,late\nlate,late\n") // first seen after the cap: not in Top
	path := writeFile(t, "many.csv", b.String())
	p, err := Profile(context.Background(), path, schema.ProfileConfig{})
	require.NoError(t, err)
	id := p.Column("id").Categories
	assert.True(t, id.Approx)
	assert.InEpsilon(t, n+1, id.Distinct, 0.03)
	assert.Len(t, id.Top, TopCategories)
	assert.Equal(t, Category{"u0", 1}, id.Top[0], "ties are broken by value")
	plan := p.Column("plan").Categories
	assert.False(t, plan.Approx)
	assert.Equal(t, []Category{{"a", 100_000}, {"b", 50_000}, {"late", 2}}, plan.Top)
}

func TestProfileErrors(t *testing.T) {
	_, err := Profile(context.Background(), "x", schema.ProfileConfig{Format: "parquet"})
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = Profile(context.Background(), filepath.Join(t.TempDir(), "absent"), schema.ProfileConfig{})
	assert.ErrorIs(t, err, os.ErrNotExist)
	path := writeFile(t, "bad.csv", "a,b\n1\n")
	_, err = Profile(context.Background(), path, schema.ProfileConfig{})
	assert.ErrorContains(t, err, "record on line 2: wrong number of fields")
}

func TestHLL(t *testing.T) {
	for _, n := range []int{10, 1000, 50_000, 1_000_000} {
		h := newHLL()
		for i := range n {
			h.add([]byte(strconv.Itoa(i)))
			h.add([]byte(strconv.Itoa(i))) // duplicates change nothing
		}
		assert.InEpsilon(t, n, h.estimate(), 0.03, "n=%d", n)
	}
}

func TestBinOf(t *testing.T) {
	edges := equalWidthEdges(0, 1)
	assert.Equal(t, 0, binOf(edges, -5))
	assert.Equal(t, 0, binOf(edges, 0))
	assert.Equal(t, 1, binOf(edges, 0.05))
	assert.Equal(t, 19, binOf(edges, 0.99))
	assert.Equal(t, 19, binOf(edges, 1))
	assert.Equal(t, 19, binOf(edges, 7))
	for i, e := range edges[:HistogramBins] {
		assert.Equal(t, i, binOf(edges, e), "a value on an edge belongs to the bin above it")
	}
	assert.Equal(t, 0, binOf([]float64{3, 3}, 3))
	uneven := []float64{0, 1, 10, 100}
	assert.Equal(t, 1, binOf(uneven, 5))
	assert.Equal(t, 2, binOf(uneven, 50))
	wide := equalWidthEdges(-math.MaxFloat64, math.MaxFloat64)
	assert.False(t, math.IsInf(wide[1], 0) || math.IsNaN(wide[1]))
}

func TestSortFloats(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, 5000, 100_000} {
		vals := make([]float64, n)
		for i := range vals {
			switch i % 4 {
			case 0:
				vals[i] = rng.NormFloat64() * 1e6
			case 1:
				vals[i] = float64(rng.IntN(100)) // many ties, few digits in use
			case 2:
				vals[i] = -rng.ExpFloat64()
			default:
				vals[i] = []float64{0, math.Copysign(0, -1), math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64}[rng.IntN(5)]
			}
		}
		want := slices.Clone(vals)
		slices.Sort(want)
		sortFloats(vals)
		for i := range vals {
			if vals[i] != want[i] {
				t.Fatalf("n=%d: position %d is %v, want %v", n, i, vals[i], want[i])
			}
		}
	}
	same := []float64{3, 3, 3, 3, 3}
	sortFloats(same)
	assert.Equal(t, []float64{3, 3, 3, 3, 3}, same)
}

// TestHistogramFromSortedMatchesBinOf checks the exact histogram (counted
// on the sorted sample) against binOf value by value.
func TestHistogramFromSortedMatchesBinOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a := &numAcc{limit: 1 << 20, rng: rng}
	for i := range 10_000 {
		x := float64(rng.IntN(50)) / 7 // ties, and values on edges
		if i%100 == 0 {
			x = 0
		}
		a.add(x)
	}
	vals := slices.Clone(a.vals)
	h := a.finish().Histogram
	want := make([]int64, len(h.Counts))
	for _, x := range vals {
		want[binOf(h.Edges, x)]++
	}
	assert.Equal(t, want, h.Counts)
}
