package kubernetes

import (
	"context"
	"time"

	"weir.dev/weir/runtime/backend"
)

// serving returns the backend's serving half (serving_deploy.go's
// Serving), made at first use with the backend's clients and settings.
func (b *Backend) serving(ctx context.Context) (*Serving, error) {
	if _, err := b.clients(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		s, err := NewServing(b.cfg, b.spec, Clients{Kube: b.client, Dynamic: b.dyn})
		if err != nil {
			return nil, err
		}
		b.srv = s
	}
	return b.srv, nil
}

// Deploy starts a revision of a service as a Deployment (with its Service,
// HorizontalPodAutoscaler and PodDisruptionBudget), through Serving.
func (b *Backend) Deploy(ctx context.Context, s *backend.Service) (*backend.Deployment, error) {
	srv, err := b.serving(ctx)
	if err != nil {
		return nil, err
	}
	return srv.Deploy(ctx, s)
}

// SetTraffic splits a deployment's traffic between its revisions, through
// Serving (Gateway API HTTPRoute weights, or replica ratios).
func (b *Backend) SetTraffic(ctx context.Context, id string, split []backend.Split) (*backend.Deployment, error) {
	srv, err := b.serving(ctx)
	if err != nil {
		return nil, err
	}
	return srv.SetTraffic(ctx, id, split)
}

// Undeploy removes every revision of a deployment, through Serving.
func (b *Backend) Undeploy(ctx context.Context, id string, grace time.Duration) error {
	srv, err := b.serving(ctx)
	if err != nil {
		return err
	}
	return srv.Undeploy(ctx, id, grace)
}
