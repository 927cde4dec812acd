// Package data holds Weir's built-in data steps as library functions the
// executor calls: Ingest copies a dataset's source into a file, Validate
// checks its rows against the column rules and dataset checks the compiler
// derived from the spec, and Profile computes the per-column statistics that
// later serve as the drift reference (PSI compares two column profiles).
//
// Formats: CSV with a header row ("csv", the default) and JSON Lines
// ("jsonl", one object per line). Parquet is refused with ErrUnsupported.
// Sources: "file" and "http" (an http or https URL); "s3" and "sql" are
// refused with ErrUnsupported rather than faked.
//
// Nulls: in CSV an empty cell is null; in JSON Lines a null value or a
// missing key is null. Everything else follows from schema.ColumnRule.
//
// What the package owns: reading the two formats (with exact 1-based file
// line numbers, also for quoted CSV fields that span lines), the semantics of
// a ColumnRule on a cell, the dataset checks, the profile format and PSI.
//
// What it must not do: print, exit, import the compiler, CUE or OPA
// (TestImports enforces it), or know about runs, state or the artifact store
// (the executor moves the files). Failures of the data itself are values in
// a Report; errors are for I/O, format and configuration problems only.
//
// Speed: Validate and Profile read on one goroutine and check on another,
// with no allocation per cell on the common path; see bench_test.go.
package data
