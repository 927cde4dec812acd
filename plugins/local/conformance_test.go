package local_test

import (
	"testing"

	"weir.dev/weir/plugins/local"
	"weir.dev/weir/plugins/sdk/conformance"
)

// TestConformance runs the backend conformance suite in-process; plugins/host
// runs it again with the backend served as a plugin.
func TestConformance(t *testing.T) {
	conformance.Run(t, local.New(0), conformance.Options{})
}
