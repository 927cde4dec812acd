package data

import (
	"math"
	"slices"
)

// PSIEpsilon is the smoothing of PSI: every bin's proportion p becomes
// (p + PSIEpsilon) / (1 + k·PSIEpsilon) over k bins, so empty bins do not
// make the index infinite.
const PSIEpsilon = 1e-4

// PSI returns the population stability index of current against
// reference: the sum over bins of (q - p)·ln(q/p), where p and q are the
// proportions of the reference's and the current values in each bin,
// smoothed with PSIEpsilon. 0 means the same distribution; by a common
// rule of thumb below 0.1 is stable, 0.1 to 0.2 a moderate shift and above
// 0.2 a significant one.
//
// Numeric columns are binned over the reference's histogram edges, with
// the first and last bins open-ended (a reference of one value v gets the
// three bins below v, v, and above v). When current was profiled
// WithReference(reference) its counts are used as they are; otherwise its
// histogram is re-binned assuming values spread evenly within each of its
// bins.
//
// Categorical columns are binned over the reference's top values plus one
// bin for all other values. A reference value missing from current's top
// list counts 0 if that list is complete, otherwise current's remaining
// count shared evenly among its remaining distinct values.
//
// PSI returns NaN when the two cannot be compared: either is nil, either
// has no non-null values or is PII, or one is numeric and the other not.
func PSI(reference, current *ColumnProfile) float64 {
	if reference == nil || current == nil || reference.Count == 0 || current.Count == 0 {
		return math.NaN()
	}
	var p, q []float64
	switch {
	case reference.Numeric != nil && current.Numeric != nil:
		p, q = numericBins(reference.Numeric.Histogram, current.Numeric.Histogram)
	case reference.Categories != nil && current.Categories != nil:
		p, q = categoryBins(reference, current)
	default:
		return math.NaN()
	}
	if p == nil {
		return math.NaN()
	}
	return psi(p, q)
}

func psi(p, q []float64) float64 {
	normalize(p)
	normalize(q)
	k := float64(len(p))
	total := 0.0
	for i := range p {
		pi := (p[i] + PSIEpsilon) / (1 + k*PSIEpsilon)
		qi := (q[i] + PSIEpsilon) / (1 + k*PSIEpsilon)
		total += (qi - pi) * math.Log(qi/pi)
	}
	return total
}

func normalize(v []float64) {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	if sum > 0 {
		for i := range v {
			v[i] /= sum
		}
	}
}

// numericBins returns the reference's and current's counts over the
// reference's bins.
func numericBins(ref, cur Histogram) (p, q []float64) {
	if len(ref.Edges) < 2 || len(ref.Edges) != len(ref.Counts)+1 || len(cur.Edges) != len(cur.Counts)+1 {
		return nil, nil
	}
	edges := ref.Edges
	p = make([]float64, len(ref.Counts))
	for i, c := range ref.Counts {
		p[i] = float64(c)
	}
	if len(edges) == 2 && edges[0] == edges[1] {
		// One value: below it, it, above it.
		v := edges[0]
		p = []float64{0, p[0], 0}
		q = make([]float64, 3)
		for j, c := range cur.Counts {
			a, b := cur.Edges[j], cur.Edges[j+1]
			switch {
			case a == b && a == v:
				q[1] += float64(c)
			case b <= v:
				q[0] += float64(c)
			case a >= v:
				q[2] += float64(c)
			default: // the bin spans v: split by length (v itself has none)
				q[0] += float64(c) * (v - a) / (b - a)
				q[2] += float64(c) * (b - v) / (b - a)
			}
		}
		return p, q
	}
	if slices.Equal(edges, cur.Edges) {
		q = make([]float64, len(cur.Counts))
		for i, c := range cur.Counts {
			q[i] = float64(c)
		}
		return p, q
	}
	q = make([]float64, len(p))
	nb := len(p)
	for j, c := range cur.Counts {
		if c == 0 {
			continue
		}
		a, b := cur.Edges[j], cur.Edges[j+1]
		if b <= a {
			q[binOf(edges, a)] += float64(c)
			continue
		}
		for i := range nb {
			lo, hi := edges[i], edges[i+1]
			if i == 0 {
				lo = math.Inf(-1)
			}
			if i == nb-1 {
				hi = math.Inf(1)
			}
			if overlap := min(b, hi) - max(a, lo); overlap > 0 {
				q[i] += float64(c) * overlap / (b - a)
			}
		}
	}
	return p, q
}

// categoryBins returns the reference's and current's proportions over the
// reference's top values and one bin for the rest.
func categoryBins(ref, cur *ColumnProfile) (p, q []float64) {
	rc, cc := ref.Categories, cur.Categories
	curCounts := make(map[string]int64, len(cc.Top))
	var curTop int64
	for _, c := range cc.Top {
		curCounts[c.Value] = c.Count
		curTop += c.Count
	}
	complete := !cc.Approx && int64(len(cc.Top)) == cc.Distinct
	var share float64 // estimated count of a value not in current's top
	if rest := cc.Distinct - int64(len(cc.Top)); !complete && rest > 0 {
		share = float64(cur.Count-curTop) / float64(rest)
	}
	refN, curN := float64(ref.Count), float64(cur.Count)
	var refTop, qSum float64
	for _, c := range rc.Top {
		p = append(p, float64(c.Count)/refN)
		refTop += float64(c.Count)
		n, ok := curCounts[c.Value]
		qi := float64(n) / curN
		if !ok {
			qi = share / curN
		}
		q = append(q, qi)
		qSum += qi
	}
	p = append(p, max(0, 1-refTop/refN))
	q = append(q, max(0, 1-qSum))
	return p, q
}
