package data

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"weir.dev/weir/schema"
)

// MaxViolations is how many violations a Report keeps, in file order; its
// counts cover all of them. It is also how many duplicates a unique check
// keeps.
const MaxViolations = 100

// maxValueLen is the longest value a Violation or Duplicate quotes, in bytes.
const maxValueLen = 64

// Violation codes say which part of a rule a cell failed.
const (
	CodeMissing    = "missing"     // the column is not in the CSV header
	CodeNull       = "null"        // a null where the rule is not nullable
	CodeType       = "type"        // not an int, number, bool or string
	CodeBound      = "bound"       // a numeric bound does not hold
	CodePattern    = "pattern"     // the value does not match a pattern (=~)
	CodeNotPattern = "not-pattern" // the value matches a forbidden pattern (!~)
	CodeEnum       = "enum"        // the value is not one of the allowed values
)

// Report is the outcome of Validate.
type Report struct {
	// Format is the format that was read: "csv" or "jsonl".
	Format string `json:"format"`
	// Rows is the number of rows checked (not counting the header).
	Rows int64 `json:"rows"`
	// ViolationCount counts every violation of a column rule.
	ViolationCount int64 `json:"violationCount"`
	// ViolationsByColumn counts violations per column.
	ViolationsByColumn map[string]int64 `json:"violationsByColumn,omitempty"`
	// Violations are the first MaxViolations violations in file order (by
	// line, then by column order).
	Violations []Violation `json:"violations,omitempty"`
	// Checks are the dataset checks, passed or failed, in the order
	// minRows, maxRows, maxNullFraction (by column name), unique (as listed).
	Checks []CheckResult `json:"checks,omitempty"`
}

// Violation is one cell that breaks its column's rule.
type Violation struct {
	// Line is the 1-based line of the file on which the cell starts; the
	// CSV header is line 1.
	Line int64 `json:"line"`
	// Column is the column's name.
	Column string `json:"column"`
	// Code says which kind of part failed (CodeNull, CodeBound, ...).
	Code string `json:"code"`
	// Value is the cell's text, cut to 64 bytes ("…" marks a cut); empty
	// for CodeNull and CodeMissing.
	Value string `json:"value,omitempty"`
	// Failed is the failing part of the rule as CUE would write it: "int",
	// ">=0", `=~"^[A-Z]+$"`, `"a" | "b"`; empty for CodeNull and
	// CodeMissing.
	Failed string `json:"failed,omitempty"`
	// Rule is the rule's source text ("int & >=0").
	Rule string `json:"rule"`
}

// String renders the violation as one line, e.g.
// "line 42: column tenure: -3 does not satisfy >=0 (rule: int & >=0)".
func (v Violation) String() string {
	var what string
	switch v.Code {
	case CodeNull:
		what = "null not allowed"
	case CodeMissing:
		what = "missing from the header"
	default:
		what = quoteValue(v.Value) + " does not satisfy " + v.Failed
	}
	return fmt.Sprintf("line %d: column %s: %s (rule: %s)", v.Line, v.Column, what, v.Rule)
}

// CheckResult is the outcome of one dataset check.
type CheckResult struct {
	// Check is the check's name in the spec: "minRows", "maxRows",
	// "maxNullFraction" or "unique".
	Check string `json:"check"`
	// Column is the column checked, for per-column checks.
	Column string `json:"column,omitempty"`
	// OK reports whether the check passed.
	OK bool `json:"ok"`
	// Message says what was found, passed or not.
	Message string `json:"message"`
	// DuplicateCount counts the rows of a unique column whose value an
	// earlier row already had.
	DuplicateCount int64 `json:"duplicateCount,omitempty"`
	// Duplicates are the first MaxViolations of them.
	Duplicates []Duplicate `json:"duplicates,omitempty"`
}

// String renders the check as one line.
func (c CheckResult) String() string {
	status := "ok"
	if !c.OK {
		status = "FAILED"
	}
	return c.Check + ": " + status + ": " + c.Message
}

// Duplicate is a value of a unique column seen a second time.
type Duplicate struct {
	// Value is the repeated value, cut like Violation.Value.
	Value string `json:"value"`
	// FirstLine is the line of the value's first row, Line of this one.
	FirstLine int64 `json:"firstLine"`
	Line      int64 `json:"line"`
}

// String renders the duplicate as one line.
func (d Duplicate) String() string {
	return fmt.Sprintf("line %d: %s already on line %d", d.Line, quoteValue(d.Value), d.FirstLine)
}

// OK reports whether every row passed its rules and every check passed. A
// nil Report is not OK.
func (r *Report) OK() bool {
	if r == nil || r.ViolationCount > 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Summary renders the report as one line, e.g. "1000 rows, 3 violations in
// 2 columns (plan, tenure), 1 of 3 checks failed (minRows)".
func (r *Report) Summary() string {
	if r == nil {
		return "no report"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows, ", r.Rows)
	switch r.ViolationCount {
	case 0:
		b.WriteString("no violations")
	case 1:
		b.WriteString("1 violation")
	default:
		fmt.Fprintf(&b, "%d violations", r.ViolationCount)
	}
	if len(r.ViolationsByColumn) > 0 {
		cols := slices.Sorted(maps.Keys(r.ViolationsByColumn))
		fmt.Fprintf(&b, " in %d %s (%s)", len(cols), plural(len(cols), "column"), strings.Join(cols, ", "))
	}
	if len(r.Checks) > 0 {
		var failed []string
		for _, c := range r.Checks {
			if !c.OK {
				name := c.Check
				if c.Column != "" {
					name += " " + c.Column
				}
				failed = append(failed, name)
			}
		}
		if len(failed) == 0 {
			fmt.Fprintf(&b, ", %d %s passed", len(r.Checks), plural(len(r.Checks), "check"))
		} else {
			fmt.Fprintf(&b, ", %d of %d %s failed (%s)", len(failed), len(r.Checks), plural(len(r.Checks), "check"), strings.Join(failed, ", "))
		}
	}
	return b.String()
}

// Validate reads the table at path in cfg.Format ("csv" when empty, or
// "jsonl") and checks every row against cfg.Rules and the whole table
// against cfg.Checks.
//
// Rule semantics per cell: a null (an empty CSV cell, a JSON null or a
// missing JSON key) passes only if the rule is Nullable and then nothing
// else is checked; otherwise the type, the bounds (which need a number),
// the patterns and the enum are checked in that order and the first part to
// fail is the violation (one per cell). In CSV, "int" is an optionally
// signed run of digits, "number" a decimal number with an optional fraction
// and exponent, "bool" true or false (also True, TRUE, False, FALSE), and
// "string" any text; in JSON Lines the JSON type decides ("int" is a number
// written without fraction or exponent). Patterns and the enum compare the
// cell's text (for JSON strings, the string itself). A rule for a column the
// CSV header lacks is one CodeMissing violation on line 1; a JSON key a row
// lacks is null in that row. Unique checks ignore nulls.
//
// Validate returns an error only when the file cannot be read, is not
// well-formed (the error names the line), a rule cannot be compiled (a bad
// pattern or bound), or ctx ends; violations and failed checks are in the
// Report.
func Validate(ctx context.Context, path string, cfg schema.ValidateConfig) (*Report, error) {
	format, err := formatOf(cfg.Format)
	if err != nil {
		return nil, err
	}
	checks, err := compileRules(cfg.Rules)
	if err != nil {
		return nil, err
	}
	var keys []string
	if format == "jsonl" {
		keys = columnsOf(cfg)
	}
	src, err := open(path, format, keys)
	if err != nil {
		return nil, err
	}
	defer src.Close()

	v := newValidator(format, src.columns(), checks, cfg.Checks)
	if err := pump(ctx, src, v.batch); err != nil {
		return nil, err
	}
	v.finish()
	return v.report, nil
}

// columnsOf lists every column cfg mentions, sorted (never nil: a JSON
// Lines reader given no columns reads none).
func columnsOf(cfg schema.ValidateConfig) []string {
	set := map[string]bool{}
	for c := range cfg.Rules {
		set[c] = true
	}
	if ch := cfg.Checks; ch != nil {
		for c := range ch.MaxNullFraction {
			set[c] = true
		}
		for _, c := range ch.Unique {
			set[c] = true
		}
	}
	return append([]string{}, slices.Sorted(maps.Keys(set))...)
}

type typeCode uint8

const (
	typeAny typeCode = iota
	typeInt
	typeNumber
	typeString
	typeBool
)

// A failure is which part of a rule a cell failed: a code and, for bounds
// and patterns, the index of the part. The zero failure is a pass.
type failure struct {
	code  failCode
	index int32
}

type failCode uint8

const (
	passed failCode = iota
	failMissing
	failNull
	failType
	failBound
	failPattern
	failNotPattern
	failEnum
)

var codeNames = [...]string{
	failMissing:    CodeMissing,
	failNull:       CodeNull,
	failType:       CodeType,
	failBound:      CodeBound,
	failPattern:    CodePattern,
	failNotPattern: CodeNotPattern,
	failEnum:       CodeEnum,
}

var pass = failure{}

// colCheck is a ColumnRule compiled for the hot loop.
type colCheck struct {
	name        string
	rule        string // source text for messages
	idx         int    // column index in the table; -1 when missing
	typ         typeCode
	typeName    string
	nullable    bool
	bounds      []schema.Bound
	patterns    []*matcher
	notPatterns []*matcher
	hasEnum     bool
	hasText     bool                // patterns, not-patterns or an enum to check
	enumList    []string            // small enums: a scan beats hashing
	enum        map[string]struct{} // large enums
	enumText    string
	count       int64 // violations
}

func compileRules(rules map[string]schema.ColumnRule) ([]*colCheck, error) {
	var out []*colCheck
	for _, name := range slices.Sorted(maps.Keys(rules)) {
		r := rules[name]
		c := &colCheck{name: name, rule: r.Source, nullable: r.Nullable, bounds: r.Bounds, typeName: r.Type, idx: -1}
		switch r.Type {
		case "":
			c.typ = typeAny
		case "int":
			c.typ = typeInt
		case "number":
			c.typ = typeNumber
		case "string":
			c.typ = typeString
		case "bool":
			c.typ = typeBool
		default:
			return nil, fmt.Errorf("rule for column %s: unknown type %q (want int, number, string or bool)", name, r.Type)
		}
		for _, b := range r.Bounds {
			switch b.Op {
			case ">", ">=", "<", "<=", "!=":
			default:
				return nil, fmt.Errorf("rule for column %s: unknown bound operator %q", name, b.Op)
			}
		}
		for _, p := range r.Patterns {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("rule for column %s: pattern %q: %w", name, p, err)
			}
			c.patterns = append(c.patterns, newMatcher(re))
		}
		for _, p := range r.NotPatterns {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("rule for column %s: pattern %q: %w", name, p, err)
			}
			c.notPatterns = append(c.notPatterns, newMatcher(re))
		}
		if r.Enum != nil {
			c.hasEnum = true
			if len(r.Enum) <= smallEnum {
				c.enumList = r.Enum
			} else {
				c.enum = make(map[string]struct{}, len(r.Enum))
			}
			quoted := make([]string, len(r.Enum))
			for i, e := range r.Enum {
				if c.enum != nil {
					c.enum[e] = struct{}{}
				}
				quoted[i] = strconv.Quote(e)
			}
			c.enumText = strings.Join(quoted, " | ")
		}
		c.hasText = len(c.patterns) > 0 || len(c.notPatterns) > 0 || c.hasEnum
		if c.rule == "" {
			c.rule = c.describe()
		}
		out = append(out, c)
	}
	return out, nil
}

// describe writes the rule as CUE when it came without source text.
func (c *colCheck) describe() string {
	var parts []string
	if c.typeName != "" {
		parts = append(parts, c.typeName)
	}
	for i := range c.bounds {
		parts = append(parts, c.part(failure{failBound, int32(i)}))
	}
	for i := range c.patterns {
		parts = append(parts, c.part(failure{failPattern, int32(i)}))
	}
	for i := range c.notPatterns {
		parts = append(parts, c.part(failure{failNotPattern, int32(i)}))
	}
	s := strings.Join(parts, " & ")
	if c.hasEnum {
		if s != "" {
			s += " & (" + c.enumText + ")"
		} else {
			s = c.enumText
		}
	}
	if s == "" {
		s = "_"
	}
	if c.nullable {
		s += " | null"
	}
	return s
}

// part renders the part of the rule f names.
func (c *colCheck) part(f failure) string {
	switch f.code {
	case failType:
		return c.typeName
	case failBound:
		b := c.bounds[f.index]
		return b.Op + strconv.FormatFloat(b.Value, 'g', -1, 64)
	case failPattern:
		return "=~" + strconv.Quote(c.patterns[f.index].re.String())
	case failNotPattern:
		return "!~" + strconv.Quote(c.notPatterns[f.index].re.String())
	case failEnum:
		return c.enumText
	}
	return ""
}

// checkText checks a non-empty CSV cell.
func (c *colCheck) checkText(s []byte) failure {
	if c.typ == typeInt || c.typ == typeNumber || len(c.bounds) > 0 {
		x, syn := scanNumber(s, len(c.bounds) > 0)
		switch {
		case c.typ == typeInt && syn != intSyntax,
			c.typ == typeNumber && syn == notNumber,
			c.typ == typeBool && !isBool(s):
			return failure{failType, 0}
		case syn == notNumber:
			return failure{failBound, 0}
		}
		if f := c.checkBounds(x); f != pass {
			return f
		}
	} else if c.typ == typeBool && !isBool(s) {
		return failure{failType, 0}
	}
	if !c.hasText {
		return pass
	}
	return c.checkPatterns(s)
}

// checkJSON checks a non-null JSON Lines cell.
func (c *colCheck) checkJSON(s []byte, k cellKind) failure {
	var ok bool
	switch c.typ {
	case typeAny:
		ok = true
	case typeInt:
		ok = k == kindNumber && !bytes.ContainsAny(s, ".eE")
	case typeNumber:
		ok = k == kindNumber
	case typeString:
		ok = k == kindString
	case typeBool:
		ok = k == kindBool
	}
	if !ok {
		return failure{failType, 0}
	}
	if len(c.bounds) > 0 {
		if k != kindNumber {
			return failure{failBound, 0}
		}
		if f := c.checkBounds(mustParse(s)); f != pass {
			return f
		}
	}
	if !c.hasText {
		return pass
	}
	return c.checkPatterns(s)
}

func (c *colCheck) checkBounds(x float64) failure {
	for i, b := range c.bounds {
		if !b.Holds(x) {
			return failure{failBound, int32(i)}
		}
	}
	return pass
}

func (c *colCheck) checkPatterns(s []byte) failure {
	for i, re := range c.patterns {
		if !re.Match(s) {
			return failure{failPattern, int32(i)}
		}
	}
	for i, re := range c.notPatterns {
		if re.Match(s) {
			return failure{failNotPattern, int32(i)}
		}
	}
	if c.hasEnum && !c.inEnum(s) {
		return failure{failEnum, 0}
	}
	return pass
}

// smallEnum is the largest enum checked by scanning rather than hashing.
const smallEnum = 8

func (c *colCheck) inEnum(s []byte) bool {
	if c.enum != nil {
		_, ok := c.enum[string(s)]
		return ok
	}
	for _, e := range c.enumList {
		if string(s) == e {
			return true
		}
	}
	return false
}

func (c *colCheck) violation(line int64, value []byte, f failure) Violation {
	v := Violation{Line: line, Column: c.name, Code: codeNames[f.code], Rule: c.rule}
	if f.code != failNull && f.code != failMissing {
		v.Value = truncate(string(value))
		v.Failed = c.part(f)
	}
	return v
}

// tracker counts nulls of a column and, for unique columns, remembers its
// values.
type tracker struct {
	name     string
	idx      int // -1 when the column is missing
	nulls    int64
	unique   bool
	seen     map[string]int64 // value -> first line
	dupCount int64
	dups     []Duplicate
}

type validator struct {
	report   *Report
	all      []*colCheck // every rule, by column name
	checks   []*colCheck // rules of present columns, in table order
	trackers []*tracker  // columns under maxNullFraction or unique
	cfg      *schema.Checks
	byName   map[string]*tracker
	scratch  []found
}

// found is a violation of the current batch, ordered by row then column.
type found struct {
	row, ord int
	v        Violation
}

func newValidator(format string, names []string, checks []*colCheck, cfg *schema.Checks) *validator {
	v := &validator{
		report: &Report{Format: format, ViolationsByColumn: map[string]int64{}},
		all:    checks,
		cfg:    cfg,
		byName: map[string]*tracker{},
	}
	index := make(map[string]int, len(names))
	for i, n := range names {
		index[n] = i
	}
	for _, c := range checks {
		i, ok := index[c.name]
		if !ok {
			c.count++
			if len(v.report.Violations) < MaxViolations {
				v.report.Violations = append(v.report.Violations, c.violation(1, nil, failure{failMissing, 0}))
			}
			continue
		}
		c.idx = i
		v.checks = append(v.checks, c)
	}
	slices.SortFunc(v.checks, func(a, b *colCheck) int { return a.idx - b.idx })
	if cfg != nil {
		track := func(name string) *tracker {
			if t := v.byName[name]; t != nil {
				return t
			}
			t := &tracker{name: name, idx: -1}
			if i, ok := index[name]; ok {
				t.idx = i
			}
			v.byName[name] = t
			v.trackers = append(v.trackers, t)
			return t
		}
		for _, name := range slices.Sorted(maps.Keys(cfg.MaxNullFraction)) {
			track(name)
		}
		for _, name := range cfg.Unique {
			t := track(name)
			t.unique = true
			t.seen = map[string]int64{}
		}
	}
	return v
}

// batch checks the rows of b. Each rule runs down the whole batch (one
// branch pattern at a time); violations are then put in file order.
func (v *validator) batch(b *batch) {
	w := len(b.names)
	remaining := MaxViolations - len(v.report.Violations)
	v.scratch = v.scratch[:0]
	for ord, c := range v.checks {
		kept := 0
		note := func(r int, cell []byte, f failure) {
			c.count++
			if kept < remaining {
				kept++
				v.scratch = append(v.scratch, found{row: r, ord: ord, v: c.violation(b.line(r, c.idx), cell, f)})
			}
		}
		if b.kinds == nil {
			for r, i := 0, c.idx; r < b.n; r, i = r+1, i+w {
				cell := b.cell(i)
				if len(cell) == 0 {
					if !c.nullable {
						note(r, cell, failure{failNull, 0})
					}
					continue
				}
				if f := c.checkText(cell); f != pass {
					note(r, cell, f)
				}
			}
		} else {
			for r, i := 0, c.idx; r < b.n; r, i = r+1, i+w {
				k := b.kinds[i]
				if k == kindNull {
					if !c.nullable {
						note(r, nil, failure{failNull, 0})
					}
					continue
				}
				cell := b.cell(i)
				if f := c.checkJSON(cell, k); f != pass {
					note(r, cell, f)
				}
			}
		}
	}
	if len(v.scratch) > 0 {
		slices.SortFunc(v.scratch, func(a, b found) int {
			if a.row != b.row {
				return a.row - b.row
			}
			return a.ord - b.ord
		})
		for _, f := range v.scratch[:min(remaining, len(v.scratch))] {
			v.report.Violations = append(v.report.Violations, f.v)
		}
	}
	for _, t := range v.trackers {
		if t.idx < 0 {
			continue
		}
		for r, i := 0, t.idx; r < b.n; r, i = r+1, i+w {
			cell := b.cell(i)
			null := len(cell) == 0
			if b.kinds != nil {
				null = b.kinds[i] == kindNull
			}
			if null {
				t.nulls++
				continue
			}
			if !t.unique {
				continue
			}
			line := b.line(r, t.idx)
			if first, dup := t.seen[string(cell)]; dup {
				t.dupCount++
				if len(t.dups) < MaxViolations {
					t.dups = append(t.dups, Duplicate{Value: truncate(string(cell)), FirstLine: first, Line: line})
				}
				continue
			}
			t.seen[string(cell)] = line
		}
	}
	v.report.Rows += int64(b.n)
}

// finish totals the counts and runs the dataset checks.
func (v *validator) finish() {
	r := v.report
	for _, c := range v.all {
		r.ViolationCount += c.count
		if c.count > 0 {
			r.ViolationsByColumn[c.name] = c.count
		}
	}
	if v.cfg == nil {
		return
	}
	if m := v.cfg.MinRows; m != nil {
		r.Checks = append(r.Checks, CheckResult{Check: "minRows", OK: r.Rows >= int64(*m),
			Message: fmt.Sprintf("%d rows, at least %d required", r.Rows, *m)})
	}
	if m := v.cfg.MaxRows; m != nil {
		r.Checks = append(r.Checks, CheckResult{Check: "maxRows", OK: r.Rows <= int64(*m),
			Message: fmt.Sprintf("%d rows, at most %d allowed", r.Rows, *m)})
	}
	for _, name := range slices.Sorted(maps.Keys(v.cfg.MaxNullFraction)) {
		limit := v.cfg.MaxNullFraction[name]
		t := v.byName[name]
		res := CheckResult{Check: "maxNullFraction", Column: name}
		if t.idx < 0 {
			res.Message = fmt.Sprintf("column %s is not in the data", name)
		} else {
			frac := 0.0
			if r.Rows > 0 {
				frac = float64(t.nulls) / float64(r.Rows)
			}
			res.OK = frac <= limit
			res.Message = fmt.Sprintf("column %s: %d of %d values null (fraction %s), at most %s allowed",
				name, t.nulls, r.Rows, strconv.FormatFloat(frac, 'g', 4, 64), strconv.FormatFloat(limit, 'g', -1, 64))
		}
		r.Checks = append(r.Checks, res)
	}
	done := map[string]bool{}
	for _, name := range v.cfg.Unique {
		if done[name] {
			continue
		}
		done[name] = true
		t := v.byName[name]
		res := CheckResult{Check: "unique", Column: name}
		switch {
		case t.idx < 0:
			res.Message = fmt.Sprintf("column %s is not in the data", name)
		case t.dupCount > 0:
			res.DuplicateCount, res.Duplicates = t.dupCount, t.dups
			res.Message = fmt.Sprintf("column %s: %d duplicate %s, first %s", name, t.dupCount, plural(int(t.dupCount), "value"), t.dups[0])
		default:
			res.OK = true
			res.Message = fmt.Sprintf("column %s: %d distinct values", name, len(t.seen))
		}
		r.Checks = append(r.Checks, res)
		t.seen = nil
	}
}

// truncate cuts s to maxValueLen bytes on a rune boundary, marking the cut.
func truncate(s string) string {
	if len(s) <= maxValueLen {
		return s
	}
	cut := maxValueLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// quoteValue quotes s when it would be ambiguous bare in a message: empty,
// or holding spaces, quotes, commas or non-printing characters.
func quoteValue(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == ',' || r == '\'' || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// mustParse parses a number the JSON decoder has already checked.
func mustParse(s []byte) float64 {
	x, _ := strconv.ParseFloat(string(s), 64)
	return x
}
