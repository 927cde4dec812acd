package view

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// RuleMeta describes a policy rule for the renderers: SARIF rule
// descriptors, Markdown remediation notes, JUnit test cases for rules that
// passed. The CLI fills it from the policy engine's rules; view does not
// import the engine.
type RuleMeta struct {
	ID          string `json:"id"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// Severity is the level the rule's findings get: "error", "warning",
	// "info", or "off" for a rule turned off by enforcement.
	Severity    string `json:"severity,omitempty"`
	Remediation string `json:"remediation,omitempty"`
}

// FindingFormats are the formats RenderFindings writes, conftest's set.
var FindingFormats = []string{"text", "json", "sarif", "github", "markdown", "junit", "tap", "table"}

// RenderFindings writes policy findings in format:
//
//   - text: one "file:line:col: severity rule: message" line each, then a
//     count; waived findings say so and why.
//   - json: {"findings": [...], "summary": {...}}.
//   - sarif: SARIF 2.1.0 for code scanning, with rule descriptors from
//     rules, stable partialFingerprints (so re-runs do not duplicate
//     alerts) and waived findings as suppressions.
//   - github: GitHub Actions workflow commands (::error, ::warning, and
//     ::notice for info and waived findings), always with a file and line.
//   - markdown: a pull-request comment: counts, a table, waivers, and how
//     to fix each rule that fired.
//   - junit: one test case per finding (errors fail, warnings pass with
//     output, waived ones are skipped) and one passing case per rule
//     without findings.
//   - tap: TAP 13 in the same shape (warnings as TODO, waived as SKIP).
//   - table: a bordered table.
//
// A finding without a source position is placed on line 1 of specFile.
// Findings are written in the order given (the policy engine sorts them).
func RenderFindings(w io.Writer, format string, findings []schema.Finding, rules []RuleMeta, specFile string) error {
	r := findingRenderer{w: w, findings: findings, rules: rules, specFile: specFile}
	switch format {
	case "text", "":
		return r.text()
	case "json":
		return r.json()
	case "sarif":
		return r.sarif()
	case "github":
		return r.github()
	case "markdown":
		return r.markdown()
	case "junit":
		return r.junit()
	case "tap":
		return r.tap()
	case "table":
		return r.table()
	}
	return fmt.Errorf("unknown findings format %q (want one of %s)", format, strings.Join(FindingFormats, ", "))
}

type findingRenderer struct {
	w        io.Writer
	findings []schema.Finding
	rules    []RuleMeta
	specFile string
}

// location is where a finding points: its source, or line 1 of the spec
// file (known false).
type location struct {
	file            string
	line, col       int
	endLine, endCol int
	known           bool
}

func (r *findingRenderer) loc(f schema.Finding) location {
	if s := f.Source; s != nil && s.Filename != "" && s.Start.Line > 0 {
		l := location{file: s.Filename, line: s.Start.Line, col: s.Start.Column, known: true}
		if s.End.Line > 0 && (s.End.Line != s.Start.Line || s.End.Column != s.Start.Column) {
			l.endLine, l.endCol = s.End.Line, s.End.Column
		}
		return l
	}
	file := r.specFile
	if s := f.Source; s != nil && s.Filename != "" {
		file = s.Filename
	}
	return location{file: file, line: 1, col: 1}
}

// String renders file:line:col for a known position, the file alone for a
// finding without one, and the address when there is no file either.
func (l location) String() string {
	switch {
	case l.known:
		if l.col > 0 {
			return fmt.Sprintf("%s:%d:%d", l.file, l.line, l.col)
		}
		return fmt.Sprintf("%s:%d", l.file, l.line)
	case l.file != "":
		return l.file
	}
	return ""
}

type findingSummary struct {
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Info     int `json:"info"`
	Waived   int `json:"waived"`
}

func summarize(fs []schema.Finding) findingSummary {
	var s findingSummary
	for _, f := range fs {
		switch {
		case f.Waived != "":
			s.Waived++
		case f.Severity == diag.Error:
			s.Errors++
		case f.Severity == diag.Warning:
			s.Warnings++
		default:
			s.Info++
		}
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func (s findingSummary) String() string {
	total := s.Errors + s.Warnings + s.Info + s.Waived
	if total == 0 {
		return "No policy findings."
	}
	var parts []string
	if s.Errors > 0 {
		parts = append(parts, plural(s.Errors, "error", "errors"))
	}
	if s.Warnings > 0 {
		parts = append(parts, plural(s.Warnings, "warning", "warnings"))
	}
	if s.Info > 0 {
		parts = append(parts, strconv.Itoa(s.Info)+" info")
	}
	if s.Waived > 0 {
		parts = append(parts, strconv.Itoa(s.Waived)+" waived")
	}
	return plural(total, "finding", "findings") + ": " + strings.Join(parts, ", ")
}

func (r *findingRenderer) text() error {
	st := StyleFor(r.w)
	var b strings.Builder
	for _, f := range r.findings {
		where := r.loc(f).String()
		if where == "" {
			where = f.Address
		}
		sev := f.Severity.String()
		switch {
		case f.Waived != "":
			sev = st.Dim(sev)
		case f.Severity == diag.Error:
			sev = st.Red(sev)
		case f.Severity == diag.Warning:
			sev = st.Yellow(sev)
		}
		if where != "" {
			b.WriteString(where)
			b.WriteString(": ")
		}
		msg := f.Message
		if !r.loc(f).known && f.Address != "" && where != f.Address {
			msg = f.Address + ": " + msg
		}
		fmt.Fprintf(&b, "%s %s: %s", sev, f.Rule, strings.ReplaceAll(msg, "\n", "\n\t"))
		if f.Waived != "" {
			b.WriteString(st.Dim(" (waived: " + f.Waived + ")"))
		}
		b.WriteByte('\n')
	}
	b.WriteString(summarize(r.findings).String())
	b.WriteByte('\n')
	_, err := io.WriteString(r.w, b.String())
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (r *findingRenderer) json() error {
	fs := r.findings
	if fs == nil {
		fs = []schema.Finding{}
	}
	return writeJSON(r.w, struct {
		Findings []schema.Finding `json:"findings"`
		Summary  findingSummary   `json:"summary"`
	}{fs, summarize(r.findings)})
}

// fingerprint identifies a finding across runs for code scanning: the same
// rule, address and message give the same alert, wherever the line moves.
func fingerprint(f schema.Finding) string {
	sum := sha256.Sum256([]byte(f.Rule + "\x00" + f.Address + "\x00" + f.Message))
	return hex.EncodeToString(sum[:])
}

// allRules is rules sorted by id, plus a bare entry for any rule a finding
// names that rules lack.
func (r *findingRenderer) allRules() []RuleMeta {
	seen := map[string]bool{}
	var out []RuleMeta
	for _, m := range r.rules {
		if !seen[m.ID] {
			seen[m.ID] = true
			out = append(out, m)
		}
	}
	for _, f := range r.findings {
		if !seen[f.Rule] {
			seen[f.Rule] = true
			out = append(out, RuleMeta{ID: f.Rule, Severity: f.Severity.String()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func sarifLevel(severity string) string {
	switch severity {
	case "error":
		return "error"
	case "warning":
		return "warning"
	case "off":
		return "none"
	}
	return "note"
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name,omitempty"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      *sarifText     `json:"fullDescription,omitempty"`
	Help                 *sarifText     `json:"help,omitempty"`
	DefaultConfiguration map[string]any `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties,omitempty"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
	EndLine     int `json:"endLine,omitempty"`
	EndColumn   int `json:"endColumn,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI string `json:"uri"`
		} `json:"artifactLocation"`
		Region sarifRegion `json:"region"`
	} `json:"physicalLocation"`
	LogicalLocations []map[string]string `json:"logicalLocations,omitempty"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          map[string]string  `json:"properties,omitempty"`
}

func fileURI(file string) string {
	return (&url.URL{Path: filepath.ToSlash(file)}).String()
}

func (r *findingRenderer) sarif() error {
	rules := r.allRules()
	index := map[string]int{}
	descs := make([]sarifRule, len(rules))
	for i, m := range rules {
		index[m.ID] = i
		d := sarifRule{
			ID:                   m.ID,
			ShortDescription:     sarifText{Text: firstNonEmpty(m.Title, m.ID)},
			DefaultConfiguration: map[string]any{"level": sarifLevel(m.Severity)},
			Properties:           map[string]any{"tags": []string{"weir", "policy"}},
		}
		if m.Title != "" {
			d.Name = m.Title
		}
		if m.Description != "" {
			d.FullDescription = &sarifText{Text: m.Description}
		}
		if m.Remediation != "" {
			d.Help = &sarifText{Text: m.Remediation, Markdown: "**Remediation:** " + m.Remediation}
		}
		descs[i] = d
	}
	results := make([]sarifResult, 0, len(r.findings))
	for _, f := range r.findings {
		l := r.loc(f)
		var loc sarifLocation
		loc.PhysicalLocation.ArtifactLocation.URI = fileURI(l.file)
		loc.PhysicalLocation.Region = sarifRegion{StartLine: l.line, StartColumn: l.col, EndLine: l.endLine, EndColumn: l.endCol}
		if f.Address != "" {
			loc.LogicalLocations = []map[string]string{{"fullyQualifiedName": f.Address, "kind": "element"}}
		}
		res := sarifResult{
			RuleID:              f.Rule,
			RuleIndex:           index[f.Rule],
			Level:               sarifLevel(f.Severity.String()),
			Message:             sarifText{Text: f.Message},
			Locations:           []sarifLocation{loc},
			PartialFingerprints: map[string]string{"weirFinding/v1": fingerprint(f)},
		}
		if f.Path != "" {
			res.Properties = map[string]string{"path": f.Path}
		}
		if f.Waived != "" {
			res.Suppressions = []sarifSuppression{{Kind: "inSource", Status: "accepted", Justification: f.Waived}}
		}
		results = append(results, res)
	}
	doc := map[string]any{
		"$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name":  "weir",
				"rules": descs,
			}},
			"results": results,
		}},
	}
	return writeJSON(r.w, doc)
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}

// ghData escapes a workflow command's message; ghProp a property value.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghProp(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

func (r *findingRenderer) github() error {
	var b strings.Builder
	for _, f := range r.findings {
		l := r.loc(f)
		cmd, title, msg := "notice", f.Rule, f.Message
		switch {
		case f.Waived != "":
			title += " (waived)"
			msg += " — waived: " + f.Waived
		case f.Severity == diag.Error:
			cmd = "error"
		case f.Severity == diag.Warning:
			cmd = "warning"
		}
		if !l.known && f.Address != "" {
			msg = f.Address + ": " + msg
		}
		fmt.Fprintf(&b, "::%s file=%s,line=%d", cmd, ghProp(l.file), l.line)
		if l.col > 0 {
			fmt.Fprintf(&b, ",col=%d", l.col)
		}
		if l.endLine > 0 {
			fmt.Fprintf(&b, ",endLine=%d,endColumn=%d", l.endLine, l.endCol)
		}
		fmt.Fprintf(&b, ",title=%s::%s\n", ghProp(title), ghData(msg))
	}
	_, err := io.WriteString(r.w, b.String())
	return err
}

func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", "<br>")
}

func mdCode(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

func (r *findingRenderer) markdown() error {
	var b strings.Builder
	s := summarize(r.findings)
	b.WriteString("### Policy findings\n\n")
	if len(r.findings) == 0 {
		b.WriteString("No policy findings.\n")
		_, err := io.WriteString(r.w, b.String())
		return err
	}
	var counts []string
	if s.Errors > 0 {
		counts = append(counts, "**"+plural(s.Errors, "error", "errors")+"**")
	}
	if s.Warnings > 0 {
		counts = append(counts, plural(s.Warnings, "warning", "warnings"))
	}
	if s.Info > 0 {
		counts = append(counts, strconv.Itoa(s.Info)+" info")
	}
	if s.Waived > 0 {
		counts = append(counts, strconv.Itoa(s.Waived)+" waived")
	}
	b.WriteString(strings.Join(counts, ", "))
	b.WriteString("\n\n")

	icon := map[diag.Severity]string{diag.Error: "❌ error", diag.Warning: "⚠️ warning", diag.Info: "ℹ️ info"}
	fired := map[string]bool{}
	var waived []schema.Finding
	active := 0
	for _, f := range r.findings {
		if f.Waived != "" {
			waived = append(waived, f)
			continue
		}
		if active == 0 {
			b.WriteString("| | Rule | Where | Message |\n| --- | --- | --- | --- |\n")
		}
		active++
		fired[f.Rule] = true
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", icon[f.Severity], mdCode(f.Rule), r.mdWhere(f), mdCell(f.Message))
	}
	if len(waived) > 0 {
		if active > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "<details><summary>%s</summary>\n\n", plural(len(waived), "waived finding", "waived findings"))
		b.WriteString("| Rule | Where | Message | Waiver |\n| --- | --- | --- | --- |\n")
		for _, f := range waived {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdCode(f.Rule), r.mdWhere(f), mdCell(f.Message), mdCell(f.Waived))
		}
		b.WriteString("\n</details>\n")
	}
	var fixes []RuleMeta
	for _, m := range r.allRules() {
		if fired[m.ID] && m.Remediation != "" {
			fixes = append(fixes, m)
		}
	}
	if len(fixes) > 0 {
		b.WriteString("\n#### How to fix\n\n")
		for _, m := range fixes {
			fmt.Fprintf(&b, "- %s", mdCode(m.ID))
			if m.Title != "" {
				fmt.Fprintf(&b, " (%s)", m.Title)
			}
			fmt.Fprintf(&b, ": %s\n", strings.ReplaceAll(strings.TrimSpace(m.Remediation), "\n", " "))
		}
	}
	_, err := io.WriteString(r.w, b.String())
	return err
}

func (r *findingRenderer) mdWhere(f schema.Finding) string {
	l := r.loc(f)
	var parts []string
	if l.known {
		parts = append(parts, mdCode(fmt.Sprintf("%s:%d", l.file, l.line)))
	}
	if f.Address != "" {
		parts = append(parts, mdCode(f.Address))
	}
	if len(parts) == 0 {
		parts = append(parts, mdCode(l.file))
	}
	return strings.Join(parts, " ")
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

// caseName names a finding's test case: its address (or location) and
// message.
func (r *findingRenderer) caseName(f schema.Finding) string {
	if f.Address != "" {
		return f.Address + ": " + f.Message
	}
	return f.Message
}

func (r *findingRenderer) passedRules() []RuleMeta {
	fired := map[string]bool{}
	for _, f := range r.findings {
		fired[f.Rule] = true
	}
	var out []RuleMeta
	for _, m := range r.allRules() {
		if !fired[m.ID] && m.Severity != "off" {
			out = append(out, m)
		}
	}
	return out
}

func (r *findingRenderer) junit() error {
	suite := junitSuite{Name: "weir policy"}
	for _, f := range r.findings {
		l := r.loc(f)
		c := junitCase{Classname: f.Rule, Name: r.caseName(f), File: l.file, Line: l.line}
		switch {
		case f.Waived != "":
			c.Skipped = &junitSkipped{Message: "waived: " + f.Waived}
			suite.Skipped++
		case f.Severity == diag.Error:
			c.Failure = &junitFailure{Message: f.Message, Type: "error", Text: l.String() + ": " + f.Message}
			suite.Failures++
		default:
			c.SystemOut = f.Severity.String() + ": " + l.String() + ": " + f.Message
		}
		suite.Cases = append(suite.Cases, c)
	}
	for _, m := range r.passedRules() {
		suite.Cases = append(suite.Cases, junitCase{Classname: m.ID, Name: firstNonEmpty(m.Title, m.ID)})
	}
	suite.Tests = len(suite.Cases)
	doc := junitSuites{Name: suite.Name, Tests: suite.Tests, Failures: suite.Failures, Skipped: suite.Skipped, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(r.w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(r.w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(r.w, "\n")
	return err
}

func (r *findingRenderer) tap() error {
	var b strings.Builder
	passed := r.passedRules()
	fmt.Fprintf(&b, "TAP version 13\n1..%d\n", len(r.findings)+len(passed))
	n := 0
	for _, f := range r.findings {
		n++
		l := r.loc(f)
		desc := strings.ReplaceAll(oneLine(f.Rule+": "+r.caseName(f)), "#", `\#`)
		switch {
		case f.Waived != "":
			fmt.Fprintf(&b, "ok %d - %s # SKIP waived: %s\n", n, desc, oneLine(f.Waived))
		case f.Severity == diag.Error:
			fmt.Fprintf(&b, "not ok %d - %s\n", n, desc)
		default:
			fmt.Fprintf(&b, "not ok %d - %s # TODO %s\n", n, desc, f.Severity)
		}
		fmt.Fprintf(&b, "  ---\n  severity: %s\n  at: %s\n  message: %s\n", f.Severity, strconv.Quote(l.String()), strconv.Quote(f.Message))
		if f.Path != "" {
			fmt.Fprintf(&b, "  path: %s\n", strconv.Quote(f.Path))
		}
		b.WriteString("  ...\n")
	}
	for _, m := range passed {
		n++
		fmt.Fprintf(&b, "ok %d - %s\n", n, m.ID)
	}
	_, err := io.WriteString(r.w, b.String())
	return err
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func (r *findingRenderer) table() error {
	rows := [][]string{{"SEVERITY", "RULE", "LOCATION", "MESSAGE"}}
	for _, f := range r.findings {
		sev := f.Severity.String()
		msg := oneLine(f.Message)
		if f.Waived != "" {
			sev = "waived"
			msg += " (waived: " + oneLine(f.Waived) + ")"
		}
		where := r.loc(f).String()
		if !r.loc(f).known && f.Address != "" {
			where = f.Address
		}
		rows = append(rows, []string{sev, f.Rule, where, msg})
	}
	widths := make([]int, 4)
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	rule := func() {
		for _, w := range widths {
			b.WriteString("+" + strings.Repeat("-", w+2))
		}
		b.WriteString("+\n")
	}
	rule()
	for i, row := range rows {
		for j, c := range row {
			fmt.Fprintf(&b, "| %s%s ", c, strings.Repeat(" ", widths[j]-utf8.RuneCountInString(c)))
		}
		b.WriteString("|\n")
		if i == 0 {
			rule()
		}
	}
	rule()
	b.WriteString(summarize(r.findings).String())
	b.WriteByte('\n')
	_, err := io.WriteString(r.w, b.String())
	return err
}
