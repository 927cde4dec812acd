package kubernetes

import (
	"context"
	"fmt"
	"time"

	"weir.dev/weir/runtime/backend"
)

// The serving resources are built by serving.go; until the backend deploys
// them, Deploy, SetTraffic and Undeploy say so. (Delete this file when
// Backend gets its own Deploy.)

// Deploy returns an error wrapping backend.ErrNoServices.
func (b *Backend) Deploy(context.Context, *backend.Service) (*backend.Deployment, error) {
	return nil, fmt.Errorf("the kubernetes backend runs steps only, for now: %w", backend.ErrNoServices)
}

// SetTraffic returns an error wrapping backend.ErrNoServices.
func (b *Backend) SetTraffic(context.Context, string, []backend.Split) (*backend.Deployment, error) {
	return nil, fmt.Errorf("the kubernetes backend runs steps only, for now: %w", backend.ErrNoServices)
}

// Undeploy returns an error wrapping backend.ErrNoServices.
func (b *Backend) Undeploy(context.Context, string, time.Duration) error {
	return fmt.Errorf("the kubernetes backend runs steps only, for now: %w", backend.ErrNoServices)
}
