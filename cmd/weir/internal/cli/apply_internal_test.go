package cli

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// TestDeferredOn: serving is deferred on a backend that says it hosts no
// services, not on one that did not answer Describe (its deploy runs and
// reports the backend's own error), and monitoring always is.
func TestDeferredOn(t *testing.T) {
	cfg, _ := json.Marshal(schema.DeployConfig{Serving: "api", Spec: &schema.Serving{Server: &schema.Run{Command: []string{"serve"}}}})
	deploy := func(be string) *schema.Step {
		return &schema.Step{Address: "serving.api.deploy", Kind: "deploy", Backend: be, Config: cfg}
	}
	deferred := deferredOn(map[string]*backend.Description{
		"local":   {Name: "local", Services: false},
		"cluster": {Name: "kubernetes", Services: true},
	})
	why, ok := deferred(deploy("local"))
	assert.True(t, ok)
	assert.Contains(t, why, "backend local hosts no long-lived services")
	_, ok = deferred(deploy("cluster"))
	assert.False(t, ok, "a backend with services")
	_, ok = deferred(deploy("unreachable"))
	assert.False(t, ok, "a backend that did not answer Describe")
	_, ok = deferred(&schema.Step{Address: "monitoring.m", Kind: "monitor", Backend: "cluster"})
	assert.True(t, ok)
}
