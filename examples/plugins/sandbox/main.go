// Command weir-backend-sandbox is a Weir backend plugin that runs each step
// hermetically, in a bubblewrap (bwrap) sandbox: the whole file system
// read-only, no network (unless the step sets network: true), no
// capabilities, its own process, IPC, UTS, cgroup and user namespaces, a
// private TMPDIR that vanishes with the step, and only the step's inputs,
// outputs and metrics file writable.
//
// It lives outside Weir's module, as any third-party plugin would: it uses
// only Weir's plugin SDK and the public backend types, and it reuses Weir's
// local backend to run and watch the bwrap process. Install it as
// weir-backend-sandbox in a project's .weir/plugins (or on
// $WEIR_PLUGIN_PATH or $PATH) and use it with
//
//	backends: hermetic: kind: "sandbox"
//	tasks: x: {command: [...], backend: "hermetic"}
package main

import "weir.dev/weir/plugins/sdk"

func main() { sdk.Serve(New()) }
