package main

import (
	"os/exec"
	"testing"

	"weir.dev/weir/plugins/sdk/conformance"
)

// TestConformance runs Weir's backend conformance suite against the
// sandbox, in-process. Weir's own tests (cmd/weir) build this plugin and
// run it out of process.
func TestConformance(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap is not installed: apt-get install bubblewrap")
	}
	conformance.Run(t, New(), conformance.Options{})
}
