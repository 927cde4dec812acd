// Package gen writes deterministic synthetic tables for the data steps'
// tests and benchmarks: customer rows of ten mixed columns (strings, ints,
// numbers, a bool, an enum, a city that CSV must quote), together with the
// column rules they are checked against.
//
// The same rows and seed always give the same bytes. About one row in ten
// thousand breaks a rule (a negative tenure), so validation has some
// violations to report.
package gen

import (
	"bufio"
	"io"
	"math/rand/v2"
	"strconv"

	"weir.dev/weir/schema"
)

// Header lists the columns WriteCSV writes, in order.
var Header = []string{"customer_id", "age", "tenure", "monthly", "total", "plan", "country", "active", "score", "city"}

// BadEvery is the period of rows whose tenure is negative: rows 1*BadEvery,
// 2*BadEvery, ... (counted from 1) break the tenure rule.
const BadEvery = 10007

// Rules are the column rules of the generated table: every type, bounds,
// one pattern and one enum.
func Rules() map[string]schema.ColumnRule {
	return map[string]schema.ColumnRule{
		"customer_id": {Source: `string & =~"^C[0-9]{7}$"`, Type: "string", Patterns: []string{`^C[0-9]{7}$`}},
		"age":         {Source: "int & >=18 & <=120", Type: "int", Bounds: []schema.Bound{{Op: ">=", Value: 18}, {Op: "<=", Value: 120}}},
		"tenure":      {Source: "int & >=0", Type: "int", Bounds: []schema.Bound{{Op: ">=", Value: 0}}},
		"monthly":     {Source: "number & >0", Type: "number", Bounds: []schema.Bound{{Op: ">", Value: 0}}},
		"total":       {Source: "number & >=0", Type: "number", Bounds: []schema.Bound{{Op: ">=", Value: 0}}},
		"plan":        {Source: `"basic" | "plus" | "pro" | "enterprise"`, Enum: []string{"basic", "plus", "pro", "enterprise"}},
		"country":     {Source: "string", Type: "string"},
		"active":      {Source: "bool", Type: "bool"},
		"score":       {Source: "number & >=0 & <=1", Type: "number", Bounds: []schema.Bound{{Op: ">=", Value: 0}, {Op: "<=", Value: 1}}},
		"city":        {Source: "string", Type: "string"},
	}
}

var (
	plans     = []string{"basic", "plus", "pro", "enterprise"}
	countries = []string{"US", "GB", "DE", "FR", "NL", "SE", "NO", "DK", "FI", "IE", "ES", "PT", "IT", "PL", "CZ", "AT", "CH", "BE", "CA", "AU"}
	cities    = []string{"Portland, OR", "Berlin", "Paris", "Amsterdam", "Austin, TX", "Lisbon", "Oslo", "Dublin", "Madrid", "Zurich", "Springfield, IL", "Toronto", "Sydney", "Vienna"}
)

// WriteCSV writes a header and rows rows, generated from seed, to w.
func WriteCSV(w io.Writer, rows int, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	rng := rand.New(rand.NewPCG(seed, 0x77656972))
	for i, h := range Header {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(h)
	}
	bw.WriteByte('\n')
	var b []byte
	for i := 1; i <= rows; i++ {
		b = b[:0]
		b = append(b, 'C')
		id := strconv.Itoa(i % 10000000)
		for range 7 - len(id) {
			b = append(b, '0')
		}
		b = append(b, id...)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(18+rng.IntN(78)), 10)
		b = append(b, ',')
		tenure := rng.IntN(121)
		if i%BadEvery == 0 {
			tenure = -tenure - 1
		}
		b = strconv.AppendInt(b, int64(tenure), 10)
		b = append(b, ',')
		monthly := 10 + float64(rng.IntN(19000))/100
		b = strconv.AppendFloat(b, monthly, 'f', 2, 64)
		b = append(b, ',')
		b = strconv.AppendFloat(b, monthly*float64(max(tenure, 0)), 'f', 2, 64)
		b = append(b, ',')
		b = append(b, plans[rng.IntN(len(plans))]...)
		b = append(b, ',')
		b = append(b, countries[rng.IntN(len(countries))]...)
		b = append(b, ',')
		b = strconv.AppendBool(b, rng.IntN(3) > 0)
		b = append(b, ',')
		b = strconv.AppendFloat(b, float64(rng.IntN(10001))/10000, 'f', 4, 64)
		b = append(b, ',')
		city := cities[rng.IntN(len(cities))]
		if city[len(city)-4] == ',' {
			b = append(b, '"')
			b = append(b, city...)
			b = append(b, '"')
		} else {
			b = append(b, city...)
		}
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}
