package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/data/internal/gen"
	"weir.dev/weir/schema"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func intp(n int) *int { return &n }

// lines renders the kept violations, one string each.
func lines(r *Report) []string {
	var out []string
	for _, v := range r.Violations {
		out = append(out, v.String())
	}
	return out
}

var customerRules = map[string]schema.ColumnRule{
	"id":     {Source: `string & =~"^C[0-9]+$"`, Type: "string", Patterns: []string{`^C[0-9]+$`}},
	"tenure": {Source: "int & >=0", Type: "int", Bounds: []schema.Bound{{Op: ">=", Value: 0}}},
	"monthly": {Source: "number & >0 & <1000 | null", Type: "number", Nullable: true,
		Bounds: []schema.Bound{{Op: ">", Value: 0}, {Op: "<", Value: 1000}}},
	"churned": {Source: "bool", Type: "bool"},
	"plan":    {Source: `"basic" | "pro"`, Enum: []string{"basic", "pro"}},
	"email":   {Source: `string & !~"@example\\.com$"`, Type: "string", NotPatterns: []string{`@example\.com$`}},
}

func TestValidateEveryRuleKind(t *testing.T) {
	path := writeFile(t, "customers.csv", strings.Join([]string{
		"id,tenure,monthly,churned,plan,email", // line 1
		"C1,3,9.5,true,basic,a@corp.io",        // 2: ok
		"C2,-3,10,false,pro,b@corp.io",         // 3: bound
		"C3,2.5,10,false,pro,c@corp.io",        // 4: type int
		"C4,7,abc,false,pro,d@corp.io",         // 5: type number
		"C5,7,1000,false,pro,e@corp.io",        // 6: second bound
		"C6,7,,maybe,pro,f@corp.io",            // 7: null ok (nullable), type bool
		"X7,7,1e2,TRUE,gold,g@example.com",     // 8: pattern, enum, not-pattern
		"C8,,0.5,False,basic,h@corp.io",        // 9: null not allowed
		"",
	}, "\n"))
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: customerRules})
	require.NoError(t, err)
	assert.Equal(t, "csv", rep.Format)
	assert.EqualValues(t, 8, rep.Rows)
	assert.Equal(t, []string{
		"line 3: column tenure: -3 does not satisfy >=0 (rule: int & >=0)",
		"line 4: column tenure: 2.5 does not satisfy int (rule: int & >=0)",
		"line 5: column monthly: abc does not satisfy number (rule: number & >0 & <1000 | null)",
		"line 6: column monthly: 1000 does not satisfy <1000 (rule: number & >0 & <1000 | null)",
		"line 7: column churned: maybe does not satisfy bool (rule: bool)",
		`line 8: column id: X7 does not satisfy =~"^C[0-9]+$" (rule: string & =~"^C[0-9]+$")`,
		`line 8: column plan: gold does not satisfy "basic" | "pro" (rule: "basic" | "pro")`,
		`line 8: column email: g@example.com does not satisfy !~"@example\\.com$" (rule: string & !~"@example\\.com$")`,
		"line 9: column tenure: null not allowed (rule: int & >=0)",
	}, lines(rep))
	assert.EqualValues(t, 9, rep.ViolationCount)
	assert.Equal(t, map[string]int64{"tenure": 3, "monthly": 2, "churned": 1, "id": 1, "plan": 1, "email": 1}, rep.ViolationsByColumn)
	codes := map[string]bool{}
	for _, v := range rep.Violations {
		codes[v.Code] = true
	}
	assert.Equal(t, map[string]bool{CodeBound: true, CodeType: true, CodePattern: true, CodeEnum: true, CodeNotPattern: true, CodeNull: true}, codes)
	assert.False(t, rep.OK())
	assert.Equal(t, "8 rows, 9 violations in 6 columns (churned, email, id, monthly, plan, tenure)", rep.Summary())
}

func TestValidatePassing(t *testing.T) {
	path := writeFile(t, "ok.csv", "id,tenure,monthly,churned,plan,email\nC1,0,0.01,false,pro,x@y.z\nC2,+12,,True,basic,\"a, b\"\n")
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Format: "csv", Rules: customerRules,
		Checks: &schema.Checks{MinRows: intp(2), MaxRows: intp(2), Unique: []string{"id"}, MaxNullFraction: map[string]float64{"monthly": 0.5}}})
	require.NoError(t, err)
	assert.Empty(t, rep.Violations)
	assert.True(t, rep.OK(), rep.Summary())
	assert.Equal(t, "2 rows, no violations, 4 checks passed", rep.Summary())
}

func TestValidateNulls(t *testing.T) {
	rules := map[string]schema.ColumnRule{
		"a": {Source: "string", Type: "string"},
		"b": {Source: "string | null", Type: "string", Nullable: true},
		"c": {Source: "_", Nullable: false},
	}
	path := writeFile(t, "n.csv", "a,b,c\n,,\nx,,y\n")
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: rules})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"line 2: column a: null not allowed (rule: string)",
		"line 2: column c: null not allowed (rule: _)",
	}, lines(rep))
}

func TestValidateMissingColumn(t *testing.T) {
	path := writeFile(t, "m.csv", "id\nC1\nC2\n")
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: map[string]schema.ColumnRule{
		"tenure": {Source: "int", Type: "int"},
		"id":     {Source: "string", Type: "string"},
	}})
	require.NoError(t, err)
	assert.Equal(t, []string{"line 1: column tenure: missing from the header (rule: int)"}, lines(rep))
	assert.EqualValues(t, 1, rep.ViolationCount)
	assert.Equal(t, CodeMissing, rep.Violations[0].Code)
	assert.Equal(t, map[string]int64{"tenure": 1}, rep.ViolationsByColumn)
}

func TestValidateChecks(t *testing.T) {
	path := writeFile(t, "c.csv", "id,x\na,1\nb,\na,2\nc,\nb,3\n")
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Checks: &schema.Checks{
		MinRows:         intp(10),
		MaxRows:         intp(3),
		MaxNullFraction: map[string]float64{"x": 0.25, "id": 0, "nope": 0.1},
		Unique:          []string{"id", "x", "gone"},
	}})
	require.NoError(t, err)
	var got []string
	for _, c := range rep.Checks {
		got = append(got, c.String())
	}
	assert.Equal(t, []string{
		"minRows: FAILED: 5 rows, at least 10 required",
		"maxRows: FAILED: 5 rows, at most 3 allowed",
		"maxNullFraction: ok: column id: 0 of 5 values null (fraction 0), at most 0 allowed",
		"maxNullFraction: FAILED: column nope is not in the data",
		"maxNullFraction: FAILED: column x: 2 of 5 values null (fraction 0.4), at most 0.25 allowed",
		"unique: FAILED: column id: 2 duplicate values, first line 4: a already on line 2",
		"unique: ok: column x: 3 distinct values",
		"unique: FAILED: column gone is not in the data",
	}, got)
	assert.Equal(t, []Duplicate{{Value: "a", FirstLine: 2, Line: 4}, {Value: "b", FirstLine: 3, Line: 6}}, rep.Checks[5].Duplicates)
	assert.EqualValues(t, 2, rep.Checks[5].DuplicateCount)
	assert.False(t, rep.OK())
	assert.Equal(t, "5 rows, no violations, 6 of 8 checks failed (minRows, maxRows, maxNullFraction nope, maxNullFraction x, unique id, unique gone)", rep.Summary())

	rep, err = Validate(context.Background(), path, schema.ValidateConfig{Checks: &schema.Checks{MinRows: intp(5)}})
	require.NoError(t, err)
	assert.True(t, rep.OK())
}

func TestValidateQuotedFieldsKeepLineNumbers(t *testing.T) {
	path := writeFile(t, "q.csv", strings.Join([]string{
		`id,note,n`,
		`1,"a, b",5`,            // 2
		`2,"multi`,              // 3
		`line, note",-1`,        // 4: n starts here
		`3,"x ""quoted"" y",-2`, // 5
		`4,plain,-4`,            // 6
		`5,"",7`,                // 7: empty quoted field is null
		``,
	}, "\n"))
	rules := map[string]schema.ColumnRule{
		"n":    {Source: "int & >=0", Type: "int", Bounds: []schema.Bound{{Op: ">=", Value: 0}}},
		"note": {Source: "string", Type: "string"},
		"id":   {Source: "int & !=3", Type: "int", Bounds: []schema.Bound{{Op: "!=", Value: 3}}},
	}
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: rules, Checks: &schema.Checks{Unique: []string{"n"}}})
	require.NoError(t, err)
	assert.EqualValues(t, 5, rep.Rows)
	assert.Equal(t, []string{
		"line 4: column n: -1 does not satisfy >=0 (rule: int & >=0)",
		"line 5: column id: 3 does not satisfy !=3 (rule: int & !=3)",
		"line 5: column n: -2 does not satisfy >=0 (rule: int & >=0)",
		"line 6: column n: -4 does not satisfy >=0 (rule: int & >=0)",
		"line 7: column note: null not allowed (rule: string)",
	}, lines(rep))
}

func TestValidateViolationOrderAndCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := range 300 {
		fmt.Fprintf(&b, "x%d,y%d\n", i, i)
	}
	path := writeFile(t, "many.csv", b.String())
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: map[string]schema.ColumnRule{
		"a": {Source: "int", Type: "int"}, "b": {Source: "int", Type: "int"},
	}})
	require.NoError(t, err)
	assert.EqualValues(t, 600, rep.ViolationCount)
	require.Len(t, rep.Violations, MaxViolations)
	for i, v := range rep.Violations {
		assert.EqualValues(t, 2+i/2, v.Line)
		assert.Equal(t, []string{"a", "b"}[i%2], v.Column)
	}
}

func TestValidateTruncatesValues(t *testing.T) {
	long := strings.Repeat("é", 50) // 100 bytes
	path := writeFile(t, "t.csv", "a\n"+long+"\n")
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: map[string]schema.ColumnRule{"a": {Source: "int", Type: "int"}}})
	require.NoError(t, err)
	require.Len(t, rep.Violations, 1)
	assert.Equal(t, strings.Repeat("é", 32)+"…", rep.Violations[0].Value)
}

func TestValidateJSONL(t *testing.T) {
	path := writeFile(t, "c.jsonl", strings.Join([]string{
		`{"id": "C1", "tenure": 3, "monthly": 9.5, "churned": true, "plan": "basic", "extra": {"x": 1}}`, // 1
		`{"id": "C2", "tenure": -3, "monthly": null, "churned": false, "plan": "pro"}`,                   // 2
		``, // 3: blank lines are skipped but counted
		`{"id": "C3", "tenure": "4", "monthly": 1e2, "churned": "yes", "plan": "pro"}`, // 4
		`{"id": "C4", "tenure": 1.0, "churned": false, "plan": "gold"}`,                // 5
		`{"tenure": 2, "id": 5, "churned": false, "plan": "pro"}`,                      // 6
		``,
	}, "\n"))
	rules := map[string]schema.ColumnRule{
		"id":      customerRules["id"],
		"tenure":  customerRules["tenure"],
		"monthly": customerRules["monthly"],
		"churned": customerRules["churned"],
		"plan":    customerRules["plan"],
	}
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Format: "jsonl", Rules: rules,
		Checks: &schema.Checks{MaxNullFraction: map[string]float64{"monthly": 0.5}, Unique: []string{"plan"}}})
	require.NoError(t, err)
	assert.Equal(t, "jsonl", rep.Format)
	assert.EqualValues(t, 5, rep.Rows)
	assert.Equal(t, []string{
		"line 2: column tenure: -3 does not satisfy >=0 (rule: int & >=0)",
		"line 4: column churned: yes does not satisfy bool (rule: bool)",
		"line 4: column tenure: 4 does not satisfy int (rule: int & >=0)",
		"line 5: column plan: gold does not satisfy \"basic\" | \"pro\" (rule: \"basic\" | \"pro\")",
		"line 5: column tenure: 1.0 does not satisfy int (rule: int & >=0)",
		`line 6: column id: 5 does not satisfy string (rule: string & =~"^C[0-9]+$")`,
	}, lines(rep))
	require.Len(t, rep.Checks, 2)
	assert.Equal(t, "maxNullFraction: FAILED: column monthly: 3 of 5 values null (fraction 0.6), at most 0.5 allowed", rep.Checks[0].String())
	assert.Equal(t, []Duplicate{{Value: "pro", FirstLine: 2, Line: 4}, {Value: "pro", FirstLine: 2, Line: 6}}, rep.Checks[1].Duplicates)
}

func TestValidateFormatErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, file, format, want string
	}{
		{"bare quote", "a,b\n1,2\n3,x\"y\n", "csv", `parse error on line 3, column 4: bare " in non-quoted-field`},
		{"unterminated quote", "a,b\n1,\"2\n", "csv", `parse error on line 2, column 6: extraneous or missing " in quoted-field`},
		{"field count", "a,b\n1,2\n3\n", "csv", "record on line 3: wrong number of fields"},
		{"no header", "", "csv", "no header row"},
		{"duplicate header", "a,b,a\n", "csv", `header names column "a" twice (columns 1 and 3)`},
		{"not an object", "{\"a\":1}\n[1]\n", "jsonl", "line 2: not a JSON object"},
		{"bad json", "{\"a\":1}\n\n{\"a\":}\n", "jsonl", "line 3: invalid character '}'"},
		{"trailing data", "{\"a\":1} 2\n", "jsonl", "line 1: data after the JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "f", tc.file)
			_, err := Validate(ctx, path, schema.ValidateConfig{Format: tc.format, Rules: map[string]schema.ColumnRule{"a": {Source: "_"}}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), path)
		})
	}

	_, err := Validate(ctx, filepath.Join(t.TempDir(), "absent.csv"), schema.ValidateConfig{})
	assert.ErrorIs(t, err, os.ErrNotExist)

	_, err = Validate(ctx, "x", schema.ValidateConfig{Format: "parquet"})
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = Validate(ctx, "x", schema.ValidateConfig{Format: "xml"})
	assert.EqualError(t, err, `unknown data format "xml" (want csv or jsonl)`)
}

func TestValidateBadRules(t *testing.T) {
	path := writeFile(t, "a.csv", "a\n1\n")
	for rule, want := range map[string]schema.ColumnRule{
		`rule for column a: pattern "(": error parsing regexp: missing closing ): ` + "`(`": {Patterns: []string{"("}},
		`rule for column a: unknown type "float" (want int, number, string or bool)`:        {Type: "float"},
		`rule for column a: unknown bound operator "=="`:                                    {Bounds: []schema.Bound{{Op: "==", Value: 1}}},
	} {
		_, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: map[string]schema.ColumnRule{"a": want}})
		assert.EqualError(t, err, rule)
	}
}

func TestValidateRuleWithoutSource(t *testing.T) {
	path := writeFile(t, "a.csv", "a\nxyz\n")
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: map[string]schema.ColumnRule{"a": {
		Type: "string", Nullable: true, Patterns: []string{"^x"}, NotPatterns: []string{"z$"}, Enum: []string{"xy"},
	}}})
	require.NoError(t, err)
	assert.Equal(t, []string{`line 2: column a: xyz does not satisfy !~"z$" (rule: string & =~"^x" & !~"z$" & ("xy") | null)`}, lines(rep))
}

func TestValidateCancelled(t *testing.T) {
	path := writeFile(t, "a.csv", "a\n1\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Validate(ctx, path, schema.ValidateConfig{})
	assert.True(t, errors.Is(err, context.Canceled), err)
}

func TestValidateBOMAndCRLF(t *testing.T) {
	path := writeFile(t, "a.csv", "\uFEFFa,b\r\n1,x\r\n-1,y\r\n")
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: map[string]schema.ColumnRule{
		"a": customerRules["tenure"], "b": {Source: `"x"`, Enum: []string{"x"}},
	}})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"line 3: column a: -1 does not satisfy >=0 (rule: int & >=0)",
		`line 3: column b: y does not satisfy "x" (rule: "x")`,
	}, lines(rep))
}

func TestValidateJSONLWithoutRules(t *testing.T) {
	path := writeFile(t, "c.jsonl", "{\"a\": 1}\n{\"b\": \"x\"}\n")
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Format: "jsonl", Checks: &schema.Checks{MinRows: intp(2)}})
	require.NoError(t, err)
	assert.EqualValues(t, 2, rep.Rows)
	assert.True(t, rep.OK())
	var nilReport *Report
	assert.False(t, nilReport.OK())
	assert.Equal(t, "no report", nilReport.Summary())
}

// TestValidateGeneratedTable runs the benchmark's table and rules at a
// size tests can afford: only the planted negative tenures fail.
func TestValidateGeneratedTable(t *testing.T) {
	const rows = 3 * gen.BadEvery
	path := genFile(t, rows)
	rep, err := Validate(context.Background(), path, schema.ValidateConfig{Rules: gen.Rules(), Checks: &schema.Checks{Unique: []string{"customer_id"}}})
	require.NoError(t, err)
	assert.EqualValues(t, rows, rep.Rows)
	assert.EqualValues(t, 3, rep.ViolationCount)
	assert.Equal(t, map[string]int64{"tenure": 3}, rep.ViolationsByColumn)
	for i, v := range rep.Violations {
		assert.EqualValues(t, 1+(i+1)*gen.BadEvery, v.Line) // the header is line 1
		assert.Equal(t, CodeBound, v.Code)
	}
	assert.True(t, rep.Checks[0].OK)
}
