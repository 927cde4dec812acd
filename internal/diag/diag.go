// Package diag holds the one diagnostic type of Weir: everything a user can
// get wrong (a syntax error, a conflict, a dangling reference, a policy
// finding) is a Diagnostic with a severity, a stable code, an address and a
// source range. Passes return (result, Diagnostics); only the CLI renders them.
//
// diag is a leaf: it imports the standard library only.
package diag

import (
	"fmt"
	"sort"
	"strings"
)

// Severity of a diagnostic. The zero value is Error so that a diagnostic
// built without thought stops the run rather than being ignored.
type Severity int

const (
	Error Severity = iota
	Warning
	Info
)

func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Info:
		return "info"
	}
	return "error"
}

// MarshalText renders the severity as its name in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "error":
		*s = Error
	case "warning":
		*s = Warning
	case "info":
		*s = Info
	default:
		return fmt.Errorf("unknown severity %q", b)
	}
	return nil
}

// Pos is a position in a source file; Line and Column are 1-based. A zero Pos
// means "no position".
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Offset int `json:"-"`
}

// Range is a span of a source file. End may equal Start when only one point
// is known.
type Range struct {
	Filename string `json:"filename"`
	Start    Pos    `json:"start"`
	End      Pos    `json:"end"`
}

// IsZero reports whether r carries no position at all.
func (r Range) IsZero() bool { return r.Filename == "" && r.Start.Line == 0 }

// String renders file:line:col, the form editors and CI annotations jump to.
func (r Range) String() string {
	if r.IsZero() {
		return ""
	}
	if r.Start.Line == 0 {
		return r.Filename
	}
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// Diagnostic is one thing the user should know about.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	// Code is stable across releases (e.g. "dangling-ref"); tests and tools
	// match on it, never on Summary.
	Code    string `json:"code"`
	Summary string `json:"summary"`
	Detail  string `json:"detail,omitempty"`
	// Address names the spec element concerned (e.g. "training.churn_model"),
	// empty when the problem is not tied to one.
	Address string `json:"address,omitempty"`
	// Range is where in the source the problem is; nil when unknown.
	Range *Range `json:"range,omitempty"`
	// Related are further positions that contribute (the other side of a
	// conflict, the rest of a cycle).
	Related []Range `json:"related,omitempty"`
}

// String renders "file:line:col: summary" (or "address: summary" without a
// position), the one-line form every text view uses.
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.Range != nil && !d.Range.IsZero() {
		b.WriteString(d.Range.String())
		b.WriteString(": ")
	} else if d.Address != "" {
		b.WriteString(d.Address)
		b.WriteString(": ")
	}
	if d.Severity != Error {
		b.WriteString(d.Severity.String())
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString("\n\t")
		b.WriteString(strings.ReplaceAll(d.Detail, "\n", "\n\t"))
	}
	return b.String()
}

// Diagnostics is a list of diagnostics; the nil value is an empty list.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Errors returns the error diagnostics only.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == Error {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders diagnostics by file, line, column, then code and summary, so
// output is stable whatever order the passes found them in.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		ar, br := a.Range, b.Range
		switch {
		case ar == nil && br != nil:
			return false
		case ar != nil && br == nil:
			return true
		case ar != nil && br != nil:
			if ar.Filename != br.Filename {
				return ar.Filename < br.Filename
			}
			if ar.Start.Line != br.Start.Line {
				return ar.Start.Line < br.Start.Line
			}
			if ar.Start.Column != br.Start.Column {
				return ar.Start.Column < br.Start.Column
			}
		}
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Summary < b.Summary
	})
}

// Dedup removes exact repeats (same code, summary and position), keeping order.
func (ds Diagnostics) Dedup() Diagnostics {
	seen := make(map[string]bool, len(ds))
	out := ds[:0]
	for _, d := range ds {
		k := d.Code + "\x00" + d.Summary + "\x00" + d.Address
		if d.Range != nil {
			k += "\x00" + d.Range.String()
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, d)
	}
	return out
}

// Err returns the diagnostics as an error when they hold an error, else nil.
// The error's text is every diagnostic, one per line.
func (ds Diagnostics) Err() error {
	if !ds.HasErrors() {
		return nil
	}
	return ErrorList(ds)
}

// ErrorList adapts Diagnostics to the error interface for callers (the CLI)
// that need one; errors.As recovers the list.
type ErrorList Diagnostics

func (e ErrorList) Error() string {
	lines := make([]string, len(e))
	for i, d := range e {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Errorf builds an error diagnostic with a code, address and optional range.
func Errorf(code, address string, rng *Range, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Error, Code: code, Address: address, Range: rng, Summary: fmt.Sprintf(format, args...)}
}

// Warnf builds a warning diagnostic.
func Warnf(code, address string, rng *Range, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Warning, Code: code, Address: address, Range: rng, Summary: fmt.Sprintf(format, args...)}
}
