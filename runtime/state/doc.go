// Package state is Weir's record of what happened: runs, step executions and
// their outputs, parameters and metrics, the artifacts they produced, model
// versions with their gates, approvals and aliases, the hash-chained audit
// log, the state serial and the apply lock. The embedded implementation is
// one SQLite file, <project>/.weir/state.db, opened with modernc.org/sqlite
// (pure Go, no cgo).
//
// Contracts:
//
//   - Every write is one transaction (BEGIN IMMEDIATE, so writers queue on
//     busy_timeout instead of failing on a lock upgrade). A process killed at
//     any moment leaves either all of a write or none of it: a succeeded
//     execution is recorded with its outputs, params, metrics and the serial
//     bump in one transaction.
//   - The serial counts transactions that change results: a succeeded
//     execution, a new model version, an approval, an alias move. A plan
//     records it; apply refuses a plan whose serial is stale. Failed runs,
//     locks and audit events do not change it.
//   - The lock is a row in the database, so it holds across processes and
//     hosts that share the file. A second Lock fails at once with a
//     *LockedError naming the holder; it never waits.
//   - Callers that change several things at once, or must check and change
//     atomically (the model registry), use Update and the methods of Tx; an
//     audit event appended with Tx.AppendAudit commits or vanishes with the
//     change it records.
//   - Errors from a damaged file, or a file that is not a SQLite database,
//     wrap ErrCorrupt and name the file and what to do about it.
//
// What it must not do: decide policy (which gate passes, who may approve:
// that is runtime/registry), know about the compiler, CUE or OPA, print or
// exit. A shared team backend (PostgreSQL) may later implement the same
// operations; the Go API here is written so that it can.
package state
