// Package data holds Weir's built-in data steps as library functions the
// executor calls: Ingest copies a dataset's source into a file, Validate
// checks its rows against the column rules and dataset checks the compiler
// derived from the spec (schema.ValidateConfig), and Profile computes the
// per-column statistics (schema.ProfileConfig) that later serve as the drift
// reference; PSI compares two column profiles.
//
// Formats: CSV with a header row ("csv", the default) and JSON Lines
// ("jsonl", one object per line). Parquet is refused with ErrUnsupported.
// Sources: "file" and "http" (an http or https URL); "s3" and "sql" are
// refused with ErrUnsupported rather than faked.
//
// Nulls: in CSV an empty cell is null (so is "", which CSV cannot tell
// apart); in JSON Lines a null value or a missing key is null.
//
// What the package owns: reading the two formats with exact 1-based file
// line numbers (also for quoted CSV fields that span lines), the meaning of
// a schema.ColumnRule for a cell, the dataset checks, the profile format
// and PSI.
//
// What it must not do: print, exit, import the compiler, CUE or OPA
// (TestImports enforces it), or know about runs, state or the artifact store
// (the executor moves the files and records digests). Failures of the data
// itself are values in a Report; errors are for I/O, format and
// configuration problems only.
//
// Speed: Validate and Profile read on one goroutine and check on another,
// in batches of rows whose cells sit in one byte buffer (no allocation per
// record or cell on the common path). CSV is read by csvScanner, which
// follows encoding/csv rule for rule (FuzzCSVScanner holds them together)
// but avoids its string per record; patterns run on a lazily built DFA
// (FuzzMatcher holds it to regexp). bench_test.go measures both against
// encoding/csv merely reading the same file.
//
// The package map in STYLE.md lists runtime/ as one block; this package is
// its data steps, beside the executor that calls them.
package data
