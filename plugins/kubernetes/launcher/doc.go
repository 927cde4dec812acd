// Package launcher moves a step's artifacts between an object store and
// the step contract's /weir/ inside a container that shares no folder
// with weir (DESIGN section 5): the way Kubeflow's launcher and Argo's
// executor work. It has a host side, used by the kubernetes backend, and a
// container side, the static binary cmd/weir-launcher added to the step's
// image as one layer (AddToImage).
//
// One attempt of a step goes:
//
//	host       Stage    inputs and params.json -> blobs/, PREFIX/manifest.json
//	container  Run      blobs -> /weir/in/NAME, /weir/params.json; the command;
//	                    /weir/out/NAME, /weir/metrics.jsonl -> blobs/, PREFIX/result.json
//	host       Collect  blobs -> the task's output paths and WEIR_METRICS
//
// The bucket is any gocloud.dev/blob URL: s3://, gs://, azblob:// (each
// can be left out of a build with a tag, see drivers_*.go) or file:// (a
// folder; in tests, one bind-mounted into the container). Its layout:
//
//	blobs/sha256/<64 hex>    a file, or a folder's deterministic tar, by digest
//	PREFIX/manifest.json     what goes where under /weir (Manifest)
//	PREFIX/result.json       how the command ended and what it wrote (Result)
//
// Digests are runtime/artifact's, computed by its Store (PutPath) on both
// sides: an artifact has the same digest here as in the local store, so
// cache keys and results do not depend on the backend. Every download is
// checked against its digest; a blob already in the bucket is never
// uploaded again. The code folder is not moved: it travels in the image.
//
// The task's environment never enters the bucket: the kubernetes backend
// gives it to the container (secrets through its own means), and the
// launcher rewrites the variables that name the host's work folder (HOME,
// TMPDIR) to /weir and sets the contract's WEIR_* variables itself.
//
// In the container the launcher writes under /weir only (in/, out/, tmp/,
// params.json, metrics.jsonl and its scratch store .launcher/, removed
// before it exits); AddToImage makes /weir writable by any user. A pod
// with a read-only root file system is not supported yet (it would need
// volumes at in/, out/ and tmp/, and params.json and metrics.jsonl moved
// into one of them). Root
// repeats plugins/docker's Root rather than importing that package: the
// launcher's binary must not carry the Engine API client.
//
// The package imports runtime/backend and runtime/artifact, gocloud.dev
// and go-containerregistry; never the compiler, the executor, CUE or OPA.
// Stage, Collect and ReadResult never print; Run is the launcher's main
// and writes its own failures to standard error.
//
// Not done yet: the transfers are one at a time (gocloud's writers already
// split large objects into parts); nothing removes blobs or task prefixes
// from the bucket (lifecycle rules of the bucket do).
package launcher
