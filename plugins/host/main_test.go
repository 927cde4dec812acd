package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"weir.dev/weir/plugins/local"
	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/plugins/sdk"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// pluginEnv selects what this test binary serves when the host tests start
// it as a plugin.
const pluginEnv = "WEIR_HOST_TEST_PLUGIN"

func TestMain(m *testing.M) {
	mode := os.Getenv(pluginEnv)
	switch mode {
	case "":
		os.Exit(m.Run())
	case "local":
		sdk.Serve(local.New(0))
	case "floor-handoff", "floor-direct", "floor-backend":
		serveFloor(os.Getenv("WEIR_FLOOR_SOCKET"), strings.TrimPrefix(mode, "floor-"))
	case "echo", "echo-handoff":
		serveEcho(os.Getenv("WEIR_FLOOR_SOCKET"), mode == "echo-handoff")
	case "crash":
		sdk.Serve(&crashing{Backend: local.New(0)})
	case "hang":
		sdk.Serve(&hanging{Backend: local.New(0)})
	case "hang-submit":
		sdk.Serve(&hangingSubmit{Backend: local.New(0)})
	case "instant":
		sdk.Serve(&instant{})
	case "fat":
		sdk.Serve(&fat{Backend: local.New(0)})
	case "lowercrash":
		sdk.Serve(&lowerCrash{Backend: local.New(0)})
	case "lowercrash-old":
		// The same, built before LowerSteps: Weir calls Lower per step.
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  sdk.Handshake(),
			VersionedPlugins: map[int]plugin.PluginSet{1: {pb.PluginName: &serverOnly{b: &lowerCrash{Backend: local.New(0)}, mode: "notasks"}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
	case "describe-v2":
		sdk.Serve(&lying{Backend: local.New(0)})
	case "cookie":
		// A go-plugin plugin of another program: another magic cookie.
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "OTHER_PROGRAM_PLUGIN", MagicCookieValue: "other"},
			Plugins:         plugin.PluginSet{pb.PluginName: &serverOnly{b: local.New(0)}},
			GRPCServer:      plugin.DefaultGRPCServer,
		})
	case "grpctasks", "badsocket":
		// The SDK's server without the tasks socket (tasks go on the gRPC
		// stream), and one that names a socket nobody listens on.
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  sdk.Handshake(),
			VersionedPlugins: map[int]plugin.PluginSet{1: {pb.PluginName: &serverOnly{b: local.New(0), mode: mode}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
	case "norun", "notasks", "tasks-unimplemented":
		// A plugin without Run and Tasks, as one written in another
		// language may be; one built with an SDK older than Tasks; one
		// that says it serves Tasks but does not.
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  sdk.Handshake(),
			VersionedPlugins: map[int]plugin.PluginSet{1: {pb.PluginName: &serverOnly{b: local.New(0), mode: mode}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
	case "v2":
		// A Weir plugin built for a protocol version this weir does not
		// speak.
		hs := sdk.Handshake()
		hs.ProtocolVersion = 2
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  hs,
			VersionedPlugins: map[int]plugin.PluginSet{2: {pb.PluginName: &serverOnly{b: local.New(0)}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", pluginEnv, mode)
		os.Exit(2)
	}
	os.Exit(0)
}

// serverOnly registers a backend's protocol server with go-plugin; mode
// "norun", "notasks" or "tasks-unimplemented" takes calls away from it.
type serverOnly struct {
	plugin.NetRPCUnsupportedPlugin
	b    backend.Interface
	mode string
}

func (s *serverOnly) GRPCServer(_ *plugin.GRPCBroker, g *grpc.Server) error {
	srv := sdk.NewServer(s.b)
	switch s.mode {
	case "norun":
		pb.RegisterBackendServer(g, withoutRun{withoutTasks{srv, false}})
	case "notasks":
		pb.RegisterBackendServer(g, withoutTasks{srv, false})
	case "tasks-unimplemented":
		pb.RegisterBackendServer(g, withoutTasks{srv, true})
	case "badsocket":
		pb.RegisterBackendServer(g, badSocket{srv})
	default:
		pb.RegisterBackendServer(g, srv)
	}
	return nil
}

// withoutRun answers Run with UNIMPLEMENTED.
type withoutRun struct{ withoutTasks }

func (withoutRun) Run(*pb.SubmitRequest, pb.Backend_RunServer) error {
	return status.Error(codes.Unimplemented, "no Run here")
}

// withoutTasks answers Tasks with UNIMPLEMENTED, as a plugin built before
// Tasks does; claims says it serves Tasks all the same.
type withoutTasks struct {
	*sdk.Server
	claims bool
}

func (w withoutTasks) Describe(ctx context.Context, req *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	d, err := w.Server.Describe(ctx, req)
	if d != nil {
		d.TasksStream = w.claims
	}
	return d, err
}

func (withoutTasks) Tasks(pb.Backend_TasksServer) error {
	return status.Error(codes.Unimplemented, "no Tasks here")
}

// LowerSteps answers UNIMPLEMENTED, as a plugin built before LowerSteps
// does.
func (withoutTasks) LowerSteps(context.Context, *pb.LowerStepsRequest) (*pb.LowerStepsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "no LowerSteps here")
}

// badSocket names a tasks socket that does not exist.
type badSocket struct{ *sdk.Server }

func (b badSocket) Describe(ctx context.Context, req *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	d, err := b.Server.Describe(ctx, req)
	if d != nil {
		d.TasksSocket, d.TasksToken = "/nonexistent/weir-tasks.sock", "x"
	}
	return d, err
}

func (s *serverOnly) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

// crashing dies 300ms after a task whose step address holds "crash" starts,
// as a plugin that panics or loses its scheduler would.
type crashing struct{ *local.Backend }

func (c *crashing) Submit(ctx context.Context, t *backend.Task) (string, error) {
	id, err := c.Backend.Submit(ctx, t)
	if err == nil && strings.Contains(t.Step, "crash") {
		go func() {
			time.Sleep(300 * time.Millisecond)
			// Straight to file descriptor 2, as a panic would write.
			fmt.Fprintln(os.NewFile(2, "stderr"), "fatal: lost the connection to the scheduler")
			os.Exit(3)
		}()
	}
	return id, err
}

// hanging never answers Cancel.
type hanging struct{ *local.Backend }

func (h *hanging) Cancel(ctx context.Context, id string, grace time.Duration) error {
	select {}
}

// hangingSubmit never returns from a Submit of a step named tasks.stuck.
type hangingSubmit struct{ *local.Backend }

func (h *hangingSubmit) Submit(ctx context.Context, t *backend.Task) (string, error) {
	if t.Step == "tasks.stuck" {
		select {}
	}
	return h.Backend.Submit(ctx, t)
}

// fat lowers each step to a task of about 100 KB: a plan's worth of them
// is more than gRPC's default message limit.
type fat struct{ *local.Backend }

func (*fat) Lower(_ context.Context, s *schema.Step) (json.RawMessage, error) {
	return json.Marshal(map[string]string{"step": s.Address, "padding": strings.Repeat("x", 100<<10)})
}

// lowerCrash dies when asked to lower a step whose address holds "crash".
type lowerCrash struct{ *local.Backend }

func (l *lowerCrash) Lower(ctx context.Context, s *schema.Step) (json.RawMessage, error) {
	if strings.Contains(s.Address, "crash") {
		fmt.Fprintln(os.NewFile(2, "stderr"), "fatal: out of lowering juice")
		os.Exit(3)
	}
	return l.Backend.Lower(ctx, s)
}

// lying says it speaks protocol version 2 once the handshake is done.
type lying struct{ *local.Backend }

func (l *lying) Describe(ctx context.Context) (*backend.Description, error) {
	d, err := l.Backend.Describe(ctx)
	if d != nil {
		d.ProtocolVersion = 2
	}
	return d, err
}

// instant is a backend whose tasks end at once, without a process: what is
// left of a step's cost is the protocol's.
type instant struct {
	backend.NoServices
	mu  sync.Mutex
	seq int
}

func (*instant) Describe(context.Context) (*backend.Description, error) {
	return &backend.Description{Name: "instant", ProtocolVersion: backend.ProtocolVersion}, nil
}

func (*instant) Lower(context.Context, *schema.Step) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

func (i *instant) Submit(context.Context, *backend.Task) (string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.seq++
	return strconv.Itoa(i.seq), nil
}

func (*instant) Watch(_ context.Context, _ string, fn func(backend.Event)) (*backend.Result, error) {
	return &backend.Result{State: backend.StateSucceeded}, nil
}

func (*instant) Cancel(context.Context, string, time.Duration) error { return nil }
