// Package policy is Weir's policy pass: it loads Rego v1 policies (the
// built-in bundle of package policies and the project's own folders),
// compiles them once, evaluates them over the IR and the plan, and turns
// their deny, warn and violation values into schema.Finding values with
// source positions, enforcement overrides and waivers applied. It also runs
// the policies' unit tests (Test) and documents the rules (Rules, Docs).
//
// This is the only package of Weir that imports OPA, and no OPA type
// crosses its API: errors from OPA become diag.Diagnostic values with
// stable codes (policy-syntax, policy-compile, policy-error,
// policy-timeout ...) at the .rego file's line and column.
//
// Conventions follow conftest: policies live in packages under weir.; a
// finding is a string, or an object {msg, path, severity} whose path is an
// address ("training.churn_model") or a field path
// ("training.churn_model.image") that Eval maps to the spec through
// schema.SourceMap. A package's METADATA (custom.id, custom.severity,
// custom.remediation, title, description) names and documents its rule.
//
// The package never prints; policies cannot reach the network (http.send
// and net.lookup_ip_addr are refused at compile time), so a spec, lock and
// state give the same findings every time.
package policy
