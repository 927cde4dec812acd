// Package artifact is Weir's local content-addressed store: the files and
// directories that steps produce, kept under <project>/.weir/artifacts and
// named by the sha256 of their content.
//
// Layout:
//
//	root/sha256/<first 2 hex>/<64 hex>   one read-only blob per digest
//	root/tmp/put-<pid>-<random>          writes in progress
//
// A digest is the string "sha256:<64 lowercase hex>". A directory is stored as
// one blob: a deterministic tar of its tree (entries in lexical order, zero
// times, uid and gid 0, no user names, modes 0644/0755 for files by their
// executable bit and 0755 for directories), so the same tree always has the
// same digest. Whether a digest names a file or a directory is not a property
// of the blob: PutPath reports it and the caller records it (the state keeps
// it with every output) and hands it back to Materialize.
//
// What the package owns: writing blobs atomically (temp file, fsync, rename),
// de-duplication, handing copies to steps, integrity checks, garbage
// collection of blobs the caller no longer references, and the rule that an
// output name stays inside its folder (SafeOutputName).
//
// What it must not do: know about runs, steps or the state database (GC is
// told what to keep), print, or exit. Remote stores (object storage for remote
// backends) will sit behind the same digests in another package.
//
// Concurrency: Put, PutFile, PutPath, Materialize, Verify and Check are safe
// to call from several goroutines and processes at once. GC must not run
// while another process writes blobs it would not keep: callers run it under
// the state lock.
package artifact
