// Package policies is Weir's built-in policy bundle: Rego v1 modules, one
// rule per file with a `# METADATA` block (title, description,
// custom.id, custom.severity, custom.remediation), each with a _test.rego
// beside it, and helpers under lib/.
//
// The package only embeds the files. compiler/policy loads, compiles and
// evaluates them; nothing here imports OPA.
package policies

import "embed"

// FS holds the bundle: *.rego at the root (rules and their tests) and
// lib/*.rego (helpers shared by the rules, with their tests).
//
//go:embed *.rego lib/*.rego
var FS embed.FS
