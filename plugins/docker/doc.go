// Package docker is the Docker backend: each step runs as a container of a
// Docker Engine (the Engine API, through github.com/moby/moby/client), under
// the step contract of DESIGN section 5 with its paths under /weir/: the
// work folder's in/ (read-only), out/ and tmp/, params.json (read-only) and
// metrics.jsonl are bind-mounted there, and the WEIR_* variables name them.
// Limits come from the step's resources, GPUs are device requests, a step
// has no network unless it asks for one, and every container carries the
// labels weir.project, weir.run and weir.step. A container is removed as
// soon as its task has been collected; Cleanup removes those a killed weir
// left behind.
//
// Images are handled with go-containerregistry: a Resolver turns tags into
// digests (a registry through remote, the engine through daemon) for
// weir.lock; a step with a code folder runs on a derived image, its base
// plus one reproducible layer holding the code at /weir/code (Derive,
// LayerFromDir), named by its content and loaded into the engine or pushed
// to the project's registry.
//
// The Engine API client is github.com/moby/moby/client, the current module
// of Docker's client, which go-containerregistry's daemon package needs
// anyway (one client, not two); it negotiates the API version down to the
// engine's (Debian's 20.10 speaks 1.41).
//
// The step's folders are bind-mounted, so the engine must run on the
// machine running weir; an engine elsewhere needs the launcher of DESIGN
// section 5 (plugins/kubernetes/launcher, which the kubernetes backend
// uses; this backend does not use it yet). Derived images accumulate in the engine under weir.local/; nothing
// prunes them yet.
//
// The package implements runtime/backend's interface. It never imports the
// compiler, the executor, CUE or OPA; it never prints.
package docker
