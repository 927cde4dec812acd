package load

import (
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"

	"weir.dev/weir/internal/diag"
)

// Format returns src formatted the canonical CUE way (what `cue fmt` does).
// A syntax error comes back as diagnostics naming filename.
func Format(filename string, src []byte) ([]byte, diag.Diagnostics) {
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
