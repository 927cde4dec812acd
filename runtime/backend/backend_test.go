package backend_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"weir.dev/weir/runtime/backend"
)

func TestNoServices(t *testing.T) {
	var ns backend.NoServices
	_, err := ns.Deploy(context.Background(), &backend.Service{Name: "serving.x"})
	if !errors.Is(err, backend.ErrNoServices) || !errors.Is(err, backend.ErrUnsupported) {
		t.Errorf("Deploy: %v, want ErrNoServices wrapping ErrUnsupported", err)
	}
	if _, err := ns.SetTraffic(context.Background(), "x", nil); !errors.Is(err, backend.ErrUnsupported) {
		t.Errorf("SetTraffic: %v", err)
	}
	if err := ns.Undeploy(context.Background(), "x", time.Second); !errors.Is(err, backend.ErrUnsupported) {
		t.Errorf("Undeploy: %v", err)
	}
	wrapped := fmt.Errorf("the local backend runs steps only: %w", backend.ErrNoServices)
	if !errors.Is(wrapped, backend.ErrUnsupported) {
		t.Error("a wrapped ErrNoServices is not ErrUnsupported")
	}
	if got := wrapped.Error(); got != "the local backend runs steps only: this backend does not host long-lived services" {
		t.Errorf("message %q", got)
	}
}

func TestTerminal(t *testing.T) {
	for s, want := range map[backend.State]bool{
		backend.StatePending: false, backend.StateRunning: false,
		backend.StateSucceeded: true, backend.StateFailed: true, backend.StateCancelled: true,
	} {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, !want)
		}
	}
}
