package load

import (
	"errors"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"
	jast "github.com/google/go-jsonnet/ast"
	"github.com/google/go-jsonnet/formatter"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"weir.dev/weir/internal/diag"
)

// Format returns a spec file in its language's canonical form: CUE's
// (cue fmt's, simplified), HCL's (hclwrite, as terraform fmt) or Jsonnet's
// (jsonnetfmt's defaults), by the file's name. A file that does not parse
// is a diagnostic at its position, and nothing is written.
func Format(filename string, src []byte) ([]byte, diag.Diagnostics) {
	switch {
	case strings.HasSuffix(filename, ".hcl"):
		// hclwrite formats what does not parse too: parse first, for
		// the error and its position.
		if _, hd := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); hd.HasErrors() {
			r := &hclReader{}
			r.add(hd, "syntax")
			return nil, r.diags
		}
		return hclwrite.Format(src), nil
	case strings.HasSuffix(filename, ".jsonnet"), strings.HasSuffix(filename, ".libsonnet"):
		out, err := formatter.Format(filename, string(src), formatter.DefaultOptions())
		if err != nil {
			// The parser's locations name no file (it was given text).
			msg, rng := err.Error(), (*diag.Range)(nil)
			var st interface{ Loc() jast.LocationRange }
			if errors.As(err, &st) {
				if lr := st.Loc(); lr.IsSet() {
					msg = strings.TrimPrefix(msg, lr.String())
					lr.FileName = filename
					rng = (&jsonnetConv{srcs: map[string][]byte{filename: src}}).rng(lr)
				}
			}
			if rng == nil { // "Unexpected end of file" has no location
				rng = endOf(filename, src)
			}
			return nil, diag.Diagnostics{diag.Errorf("syntax", "", rng, "%s", strings.TrimSpace(msg))}
		}
		return []byte(out), nil
	}
	return formatCUE(filename, src)
}

// IsSpecFile reports whether a file name is one weir fmt formats: .cue,
// .hcl (not hidden ones such as .terraform.lock.hcl), .jsonnet and
// .libsonnet.
func IsSpecFile(name string) bool {
	base := filepath.Base(name)
	return specLang(base) != "" || strings.HasSuffix(base, ".jsonnet") || strings.HasSuffix(base, ".libsonnet")
}

// formatCUE is what cue fmt does; a syntax error comes back as diagnostics
// naming filename.
func formatCUE(filename string, src []byte) ([]byte, diag.Diagnostics) {
	f, err := parser.ParseFile(filename, src, parser.ParseComments)
	if err != nil {
		return nil, (&converter{}).fromCUE(err, nil)
	}
	out, err := format.Node(f, format.Simplify())
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("syntax", "", &diag.Range{Filename: filename}, "%v", err)}
	}
	return out, nil
}

// endOf is the position just past a file's last byte.
func endOf(filename string, src []byte) *diag.Range {
	line, col := 1, 1
	for _, b := range src {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	at := diag.Pos{Line: line, Column: col, Offset: len(src)}
	return &diag.Range{Filename: filename, Start: at, End: at}
}
