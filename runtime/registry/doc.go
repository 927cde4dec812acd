// Package registry is the model registry's logic: registering a model
// version and checking its quality gates, approving it, promoting it to an
// alias (an environment or stage such as "staging" or "prod") and rolling an
// alias back. It owns the rules; runtime/state owns the records.
//
// Rules:
//
//   - A version is a candidate when every gate holds and rejected otherwise;
//     a gate on a metric that was not reported fails. Each result says why
//     ("auc = 0.71 does not satisfy >=0.80").
//   - Only an actor listed among the approvers may approve, and a rejected
//     version cannot be approved or promoted.
//   - When approval is required, only an approved version may be promoted.
//   - Every change appends an audit event in the same transaction as the
//     change (state.Tx.AppendAudit); a refused approval is audited too.
//
// What it must not do: evaluate CUE or Rego (gates arrive compiled, as
// schema.ColumnRule), know who a user really is (the caller authenticates
// and passes the actor), print, or exit.
package registry
