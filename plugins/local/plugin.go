package local

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Lower turns a step into the process spec shown in the plan (see the
// package function Lower).
func (b *Backend) Lower(ctx context.Context, s *schema.Step) (json.RawMessage, error) {
	return Lower(s)
}

// Configure takes the spec's settings for the backend: the GPUs it may
// hand out. It is how a local backend served as a plugin learns them.
func (b *Backend) Configure(ctx context.Context, cfg *schema.Backend) error {
	if cfg != nil {
		b.mu.Lock()
		b.GPUs = cfg.GPUs
		b.mu.Unlock()
	}
	return nil
}

var _ backend.Configurer = (*Backend)(nil)

// errNoServices is the answer to Deploy, SetTraffic and Undeploy: the local
// backend runs steps only (its Description says Services: false); serving
// goes through the gateway.
var errNoServices = fmt.Errorf("the local backend runs steps only: %w", backend.ErrNoServices)

// Deploy returns an error wrapping backend.ErrNoServices.
func (b *Backend) Deploy(context.Context, *backend.Service) (*backend.Deployment, error) {
	return nil, errNoServices
}

// SetTraffic returns an error wrapping backend.ErrNoServices.
func (b *Backend) SetTraffic(context.Context, string, []backend.Split) (*backend.Deployment, error) {
	return nil, errNoServices
}

// Undeploy returns an error wrapping backend.ErrNoServices.
func (b *Backend) Undeploy(context.Context, string, time.Duration) error {
	return errNoServices
}
