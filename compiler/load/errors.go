package load

import (
	"fmt"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// converter adapts CUE errors and positions to diagnostics (the one adapter
// for CUE's error type).
type converter struct {
	dir string
	// root, once the spec is unified with the schema, lets unknown-field
	// errors suggest the field the user probably meant.
	root *cue.Value
	// sm, when set, gives unknown fields the position of their label.
	sm schema.SourceMap
}

// rng turns a CUE position into a range with a file name relative to the
// project folder; schema positions keep their import path.
func (c *converter) rng(p token.Pos) *diag.Range {
	if !p.IsValid() {
		return nil
	}
	name := p.Filename()
	if rel, err := filepath.Rel(c.dir, name); err == nil && !strings.HasPrefix(rel, "..") {
		name = rel
	}
	if i := strings.Index(name, "cue.mod/pkg/"); i >= 0 {
		name = name[i+len("cue.mod/pkg/"):]
	}
	return &diag.Range{Filename: name,
		Start: diag.Pos{Line: p.Line(), Column: p.Column(), Offset: p.Offset()},
		End:   diag.Pos{Line: p.Line(), Column: p.Column(), Offset: p.Offset()}}
}

// isSchemaFile reports whether a range points into the embedded schema.
func isSchemaFile(r *diag.Range) bool {
	return r != nil && strings.HasPrefix(r.Filename, SchemaImportPath+"/")
}

// fromCUE converts a CUE error (possibly a list) into diagnostics. skip, when
// set, drops incomplete-value errors at paths it accepts.
func (c *converter) fromCUE(err error, skip func(path []string) bool) diag.Diagnostics {
	var out diag.Diagnostics
	for _, e := range errors.Errors(err) {
		path := e.Path()
		if len(path) > 0 && path[0] == "#Project" {
			path = path[1:]
		}
		format, args := e.Msg()
		msg := errMsg(format, args)
		if format == "" || msg == "" || strings.Contains(msg, "%!") {
			// Scanner errors carry their text in Error() only, after the
			// position.
			msg = e.Error()
			if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg[:i], ":") {
				msg = msg[i+2:]
			}
			if msg == "" {
				msg = "invalid spec"
			}
		}
		code := classify(msg)
		if skip != nil && (code == "incomplete" || code == "required") {
			continue // the decoder reports these, each once, at the field
		}
		if code == "unknown-field" && len(path) > 1 && !isTopLevel(path[0]) {
			path = path[:1] // "traning.x" is an unknown section, not field
		}
		d := diag.Diagnostic{Severity: diag.Error, Code: code, Address: address(path)}
		// The user's positions come first; the schema's are context.
		var user, sch []diag.Range
		for _, p := range errors.Positions(e) {
			if r := c.rng(p); r != nil {
				if isSchemaFile(r) {
					sch = append(sch, *r)
				} else {
					user = append(user, *r)
				}
			}
		}
		all := append(user, sch...)
		if len(user) > 0 {
			d.Range = &all[0]
			d.Related = all[1:]
		} else if len(all) > 0 {
			d.Related = all
		}
		field := strings.Join(path, ".")
		if code == "unknown-field" && c.sm != nil {
			if r, ok := c.sm[field]; ok {
				d.Range = &r
			}
		}
		switch {
		case field != "" && code == "unknown-field":
			name := path[len(path)-1]
			parent := strings.Join(path[:len(path)-1], ".")
			if len(path) == 1 {
				d.Summary = "unknown section " + quote(name)
			} else {
				d.Summary = "unknown field " + quote(name) + " in " + parent
			}
			if c.root != nil {
				d.Summary += diag.DidYouMean(name, allowedFields(*c.root, path[:len(path)-1]))
			}
		case field != "":
			d.Summary = field + ": " + msg
		default:
			d.Summary = msg
		}
		out = append(out, d)
	}
	return out
}

func errMsg(format string, args []any) string {
	if format == "" {
		return "invalid spec"
	}
	return fmt.Sprintf(format, args...)
}

// classify gives a stable code to CUE's messages.
func classify(msg string) string {
	switch {
	case strings.Contains(msg, "field not allowed"):
		return "unknown-field"
	case strings.Contains(msg, "required but not present"):
		return "required"
	case strings.Contains(msg, "incomplete value"), strings.Contains(msg, "non-concrete"):
		return "incomplete"
	case strings.Contains(msg, "out of bound"), strings.Contains(msg, "does not match"), strings.Contains(msg, "invalid value"):
		return "constraint"
	case strings.Contains(msg, "conflicting values"), strings.Contains(msg, "empty disjunction"), strings.Contains(msg, "mismatched types"):
		return "conflict"
	case strings.Contains(msg, "expected"), strings.Contains(msg, "illegal"), strings.Contains(msg, "missing ','"), strings.Contains(msg, "string literal not terminated"):
		return "syntax"
	case strings.Contains(msg, "not found"), strings.Contains(msg, "reference"):
		return "reference"
	case strings.Contains(msg, "cycle"):
		return "cycle"
	}
	return "invalid"
}

// address is the section.name prefix of a field path.
func address(path []string) string {
	if len(path) >= 2 && isSection(path[0]) {
		return path[0] + "." + path[1]
	}
	return ""
}

func isSection(s string) bool {
	switch s {
	case "datasets", "features", "training", "models", "serving", "monitoring", "batch", "tasks", "backends":
		return true
	}
	return false
}

func isTopLevel(s string) bool {
	for _, f := range schema.TopLevelFields {
		if f == s {
			return true
		}
	}
	return false
}

func quote(s string) string { return `"` + s + `"` }

// allowedFields lists the regular and optional fields the schema allows in
// the struct at path (for "did you mean").
func allowedFields(root cue.Value, path []string) []string {
	v := root
	if len(path) > 0 {
		sels := make([]cue.Selector, len(path))
		for i, p := range path {
			sels[i] = cue.Str(p)
		}
		v = root.LookupPath(cue.MakePath(sels...))
	}
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var out []string
	for it.Next() {
		s := it.Selector()
		if s.IsString() {
			out = append(out, s.Unquoted())
		}
	}
	return out
}
