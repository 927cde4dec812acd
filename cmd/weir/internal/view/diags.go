package view

import (
	"encoding/json"
	"fmt"
	"io"

	"weir.dev/weir/internal/diag"
)

// Diagnostics prints diagnostics one per line as file:line:col: message,
// errors first in source order, followed by a count when there are errors.
func Diagnostics(w io.Writer, ds diag.Diagnostics) {
	st := StyleFor(w)
	n := 0
	for _, d := range ds {
		line := d.String()
		switch d.Severity {
		case diag.Error:
			n++
			line = st.Red("error: ") + line
		case diag.Warning:
			line = st.Yellow(line)
		}
		fmt.Fprintln(w, line)
	}
	if n > 1 {
		fmt.Fprintf(w, "%d errors\n", n)
	}
}

// DiagnosticsJSON prints diagnostics as a JSON array.
func DiagnosticsJSON(w io.Writer, ds diag.Diagnostics) error {
	if ds == nil {
		ds = diag.Diagnostics{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(ds)
}
