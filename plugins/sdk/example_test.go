package sdk_test

import (
	"context"
	"encoding/json"
	"time"

	"weir.dev/weir/plugins/local"
	"weir.dev/weir/plugins/sdk"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// echoing is a backend that runs every step on the local machine, but
// lowers steps its own way: a plugin author's backend embeds what it
// reuses and implements the rest of backend.Interface.
type echoing struct{ *local.Backend }

func (e echoing) Describe(ctx context.Context) (*backend.Description, error) {
	return &backend.Description{Name: "echoing", Version: "0.1.0", ProtocolVersion: backend.ProtocolVersion}, nil
}

func (e echoing) Lower(ctx context.Context, s *schema.Step) (json.RawMessage, error) {
	return json.Marshal(map[string]any{"runs": s.Run.Command})
}

var _ backend.Interface = echoing{}

// A plugin's main is one call: Serve speaks the handshake and the protocol
// until Weir closes the plugin. Build it as weir-backend-echoing and put it
// in a project's .weir/plugins.
func Example() {
	sdk.ShutdownGrace = 10 * time.Second // optional: how long tasks get when Weir closes the plugin
	sdk.Serve(echoing{local.New(0)})
}
