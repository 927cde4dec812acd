// Package schema holds Weir's contracts: the embedded CUE schema of the spec
// (weir.cue), the Go IR that mirrors it (Project and friends), the compiled
// column and gate rules, the source map, and the plan file format that
// carries a plan from `weir plan` to `weir apply`.
//
// schema is data only: it imports the standard library and internal/diag,
// never CUE, OPA, the compiler or the runtime.
package schema
