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

func TestContractNames(t *testing.T) {
	for name, want := range map[string]string{"model": "MODEL", "train-set": "TRAIN_SET", "v2.data": "V2_DATA"} {
		if got := backend.EnvName(name); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", name, got, want)
		}
	}
	for _, c := range []struct {
		p, want string
		ok      bool
	}{
		{"/w/run/s", "/weir", true},
		{"/w/run/s/in/data", "/weir/in/data", true},
		{"/w/run/s/../s/out", "/weir/out", true},
		{"/w/run/sibling", "", false},
		{"/w/run", "", false},
		{"in/data", "", false},
	} {
		got, ok := backend.ContainerPath("/w/run/s", c.p, "/weir")
		if got != c.want || ok != c.ok {
			t.Errorf("ContainerPath(%q) = %q, %v; want %q, %v", c.p, got, ok, c.want, c.ok)
		}
	}
}
