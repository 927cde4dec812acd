package schema

import (
	"strings"

	"weir.dev/weir/internal/diag"
)

// SourceMap maps a field path of the spec ("training.churn_model.image",
// "models.m.gates.auc") to where it is written. The loader fills it; passes
// and policy findings use it to point at the source.
type SourceMap map[string]diag.Range

// Lookup returns the range of path, or of its nearest ancestor that has one,
// so "training.x.search.params.lr[2]" falls back to "training.x.search.params.lr".
// It returns nil when nothing along the path is known.
func (m SourceMap) Lookup(path string) *diag.Range {
	for p := path; p != ""; p = parent(p) {
		if r, ok := m[p]; ok {
			return &r
		}
	}
	return nil
}

// parent drops the last element of a path: "a.b[1]" -> "a.b", "a.b" -> "a".
func parent(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i > 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}
