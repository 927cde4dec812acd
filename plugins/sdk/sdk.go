// Package sdk is what a Go author needs to write a Weir backend plugin:
// implement runtime/backend's Interface, and make main
//
//	func main() { sdk.Serve(mybackend.New()) }
//
// Serve speaks the go-plugin handshake and the protocol of plugins/proto;
// the package conformance is the test suite a backend must pass. A backend
// may also implement backend.Configurer (settings from the spec) and
// backend.StepsLowerer (a plan's steps lowered in one call; without it,
// LowerSteps calls Lower for each step, on every processor). The SDK
// imports runtime/backend and schema (the interface and its types), never
// the executor or the state.
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"weir.dev/weir/plugins/internal/wire"
	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// ProtocolVersion is the protocol version this SDK speaks.
const ProtocolVersion = pb.ProtocolVersion

// Serve serves b as a backend plugin until Weir closes it, then cancels the
// tasks still running (with a grace period of ShutdownGrace) and returns.
// It serves the Tasks stream over gRPC and on a tasks socket of its own
// (PROTOCOL.md 5.2), which Weir uses when it can.
// Run by hand, without Weir's magic cookie in its environment, it says that
// it is a plugin and exits with status 1.
func Serve(b backend.Interface) {
	srv := NewServer(b)
	if ts, err := listenTasks(srv); err == nil {
		// Without it (no Unix sockets here) Weir uses the gRPC stream.
		srv.socket = ts
		defer ts.close()
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		VersionedPlugins: map[int]plugin.PluginSet{
			pb.ProtocolVersion: {pb.PluginName: &grpcPlugin{srv: srv}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.InitialWindowSize(1<<20), grpc.InitialConnWindowSize(1<<20))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "plugin", Level: hclog.Error, Output: os.Stderr,
		}),
	})
	srv.Shutdown(ShutdownGrace)
}

// ShutdownGrace is how long tasks still running when Weir closes the
// plugin get to stop before they are killed.
var ShutdownGrace = 5 * time.Second

// Handshake is the go-plugin handshake of Weir's protocol.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  pb.ProtocolVersion,
		MagicCookieKey:   pb.MagicCookieKey,
		MagicCookieValue: pb.MagicCookieValue,
	}
}

// grpcPlugin registers the server with go-plugin's gRPC server.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *Server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBackendServer(s, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the SDK serves backends; plugins/host is the client")
}

// Server is the protocol's Backend service over a backend.Interface. Serve
// uses it; tests can register it on a gRPC server of their own.
type Server struct {
	pb.UnimplementedBackendServer
	b backend.Interface

	// cfg is held for reading by every call and for writing by Configure,
	// so a backend's settings are seen by the calls after Configure.
	cfg sync.RWMutex

	mu      sync.Mutex
	running map[string]bool

	socket *tasksSocket // Serve's tasks socket, if it opened one
}

// NewServer returns the protocol's server for b.
func NewServer(b backend.Interface) *Server {
	return &Server{b: b, running: map[string]bool{}}
}

// Shutdown cancels the tasks submitted and not yet watched to their end,
// giving each the grace period, and waits for them.
func (s *Server) Shutdown(grace time.Duration) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.running))
	for id := range s.running {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), grace+5*time.Second)
			defer cancel()
			s.b.Cancel(ctx, id, grace)
		}()
	}
	wg.Wait()
}

// Configure implements the protocol.
func (s *Server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	s.cfg.Lock()
	defer s.cfg.Unlock()
	c, ok := s.b.(backend.Configurer)
	if !ok {
		return &pb.ConfigureResponse{}, nil
	}
	var cfg schema.Backend
	if len(req.SettingsJson) > 0 {
		if err := json.Unmarshal(req.SettingsJson, &cfg); err != nil {
			return nil, wire.Status(&wire.Invalid{Err: fmt.Errorf("settings of backend %s: %v", req.Name, err)})
		}
	}
	if err := c.Configure(ctx, &cfg); err != nil {
		return nil, wire.Status(&wire.Invalid{Err: err})
	}
	return &pb.ConfigureResponse{}, nil
}

// Describe implements the protocol.
func (s *Server) Describe(ctx context.Context, _ *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	d, err := s.b.Describe(ctx)
	if err != nil {
		return nil, wire.Status(err)
	}
	if d.ProtocolVersion == 0 {
		d.ProtocolVersion = pb.ProtocolVersion
	}
	res := wire.Description(d)
	res.TasksStream = true // Server serves Tasks
	if s.socket != nil {
		res.TasksSocket, res.TasksToken = s.socket.path, s.socket.token
	}
	return res, nil
}

// Lower implements the protocol. Any error but ErrUnsupported's says the
// backend cannot run the step (INVALID_ARGUMENT).
func (s *Server) Lower(ctx context.Context, req *pb.LowerRequest) (*pb.LowerResponse, error) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	step, err := wire.StepFrom(req.StepJson)
	if err != nil {
		return nil, wire.Status(&wire.Invalid{Err: fmt.Errorf("decoding the step: %v", err)})
	}
	t, err := s.b.Lower(ctx, step)
	if err = lowered(step, t, err); err != nil {
		return nil, err
	}
	return &pb.LowerResponse{TaskJson: t}, nil
}

// LowerSteps implements the protocol: each step is answered as Lower
// would, by the backend's LowerSteps when it has one. The steps are
// decoded (and lowered one by one) on every processor.
func (s *Server) LowerSteps(ctx context.Context, req *pb.LowerStepsRequest) (*pb.LowerStepsResponse, error) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	n := len(req.StepsJson)
	out := make([]*pb.Lowered, n)
	steps := make([]*schema.Step, n)
	sl, batch := s.b.(backend.StepsLowerer)
	wire.Each(n, func(i int) {
		step, err := wire.StepFrom(req.StepsJson[i])
		if err != nil {
			out[i] = &pb.Lowered{Error: wire.TaskError(&wire.Invalid{Err: fmt.Errorf("decoding the step: %v", err)})}
			return
		}
		steps[i] = step
		if !batch {
			t, err := s.b.Lower(ctx, step)
			out[i] = answer(step, t, err)
		}
	})
	if batch {
		var decoded []*schema.Step
		var at []int // decoded[j] is the request's at[j]
		for i, step := range steps {
			if step != nil {
				decoded, at = append(decoded, step), append(at, i)
			}
		}
		tasks, errs, err := sl.LowerSteps(ctx, decoded)
		if err != nil {
			return nil, wire.Status(err)
		}
		if len(tasks) != len(decoded) || len(errs) != len(decoded) {
			return nil, status.Errorf(codes.Internal, "the backend answered %d steps with %d tasks and %d errors", len(decoded), len(tasks), len(errs))
		}
		for j, step := range decoded {
			out[at[j]] = answer(step, tasks[j], errs[j])
		}
	}
	return &pb.LowerStepsResponse{Lowered: out}, nil
}

// answer is a step's answer in LowerSteps: the task it was lowered to, or
// the error.
func answer(step *schema.Step, t json.RawMessage, err error) *pb.Lowered {
	if err := lowered(step, t, err); err != nil {
		return &pb.Lowered{Error: wire.TaskError(err)}
	}
	return &pb.Lowered{TaskJson: t}
}

// lowered is the protocol's error for a step the backend lowered to t, or
// failed to with err: nil when t is a task.
func lowered(step *schema.Step, t json.RawMessage, err error) error {
	if err != nil {
		if !errors.Is(err, backend.ErrUnsupported) {
			err = &wire.Invalid{Err: err}
		}
		return wire.Status(err)
	}
	if !json.Valid(t) {
		return wire.Status(fmt.Errorf("the backend lowered %s to invalid JSON", step.Address))
	}
	return nil
}

// Submit implements the protocol.
func (s *Server) Submit(ctx context.Context, req *pb.SubmitRequest) (*pb.SubmitResponse, error) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	id, err := s.b.Submit(ctx, wire.TaskFrom(req.Task))
	if err != nil {
		return nil, wire.Status(err)
	}
	s.mu.Lock()
	s.running[id] = true
	s.mu.Unlock()
	return &pb.SubmitResponse{Id: id}, nil
}

// Watch implements the protocol: events go out as they come; the result is
// the last message.
func (s *Server) Watch(req *pb.WatchRequest, stream pb.Backend_WatchServer) error {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	return s.watch(req.Id, stream)
}

// Run implements the protocol: Submit, then the task's ID and Watch's
// events on one stream.
func (s *Server) Run(req *pb.SubmitRequest, stream pb.Backend_RunServer) error {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	id, err := s.b.Submit(stream.Context(), wire.TaskFrom(req.Task))
	if err != nil {
		return wire.Status(err)
	}
	s.mu.Lock()
	s.running[id] = true
	s.mu.Unlock()
	if err := stream.Send(&pb.WatchEvent{Event: &pb.WatchEvent_Submitted{Submitted: &pb.Submitted{Id: id}}}); err != nil {
		return err
	}
	return s.watch(id, stream)
}

func (s *Server) watch(id string, stream pb.Backend_WatchServer) error {
	out := newSender(stream)
	res, err := s.b.Watch(stream.Context(), id, out.event)
	if err != nil {
		out.close()
		return wire.Status(err)
	}
	if err := out.close(); err != nil {
		return err
	}
	return stream.Send(&pb.WatchEvent{Event: &pb.WatchEvent_Result{Result: s.ended(id, res)}})
}

// leftRunning is implemented by backends that can tell whether a task
// that ended left processes running (runtime/exec reuses the folders of
// those that did not).
type leftRunning interface {
	LeftRunning(taskID string) bool
}

// ended forgets a task that Watch saw end and returns its result for the
// wire, saying whether it left processes running if the backend can tell.
func (s *Server) ended(id string, res *backend.Result) *pb.Result {
	s.mu.Lock()
	delete(s.running, id)
	s.mu.Unlock()
	r := wire.Result(res)
	if lr, ok := s.b.(leftRunning); ok {
		r.NothingLeftRunning = !lr.LeftRunning(id)
	}
	return r
}

// Cancel implements the protocol.
func (s *Server) Cancel(ctx context.Context, req *pb.CancelRequest) (*pb.CancelResponse, error) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	if err := s.b.Cancel(ctx, req.Id, time.Duration(req.GraceNanos)); err != nil {
		return nil, wire.Status(err)
	}
	return &pb.CancelResponse{}, nil
}

// Deploy implements the protocol.
func (s *Server) Deploy(ctx context.Context, req *pb.DeployRequest) (*pb.DeployResponse, error) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	d, err := s.b.Deploy(ctx, wire.ServiceFrom(req.Service))
	if err != nil {
		return nil, wire.Status(err)
	}
	return &pb.DeployResponse{Deployment: wire.Deployment(d)}, nil
}

// SetTraffic implements the protocol.
func (s *Server) SetTraffic(ctx context.Context, req *pb.SetTrafficRequest) (*pb.SetTrafficResponse, error) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	d, err := s.b.SetTraffic(ctx, req.Id, wire.SplitsFrom(req.Split))
	if err != nil {
		return nil, wire.Status(err)
	}
	return &pb.SetTrafficResponse{Deployment: wire.Deployment(d)}, nil
}

// Undeploy implements the protocol.
func (s *Server) Undeploy(ctx context.Context, req *pb.UndeployRequest) (*pb.UndeployResponse, error) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	if err := s.b.Undeploy(ctx, req.Id, time.Duration(req.GraceNanos)); err != nil {
		return nil, wire.Status(err)
	}
	return &pb.UndeployResponse{}, nil
}

// sender forwards a Watch's events to the stream as they come, but for the
// final state, which the result carries. After a failed send it drops the
// rest: the stream is gone, and the error is returned by close.
type sender struct {
	stream pb.Backend_WatchServer
	mu     sync.Mutex
	err    error
}

func newSender(stream pb.Backend_WatchServer) *sender { return &sender{stream: stream} }

func (s *sender) event(e backend.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	// The final state goes out as the result, one message later.
	if e.State != "" && !e.State.Terminal() {
		s.err = s.stream.Send(&pb.WatchEvent{Event: &pb.WatchEvent_State{State: &pb.StateChange{State: wire.State(e.State), Message: e.Message}}})
	}
	if e.Line != "" && s.err == nil {
		s.err = s.stream.Send(&pb.WatchEvent{Event: &pb.WatchEvent_Lines{Lines: &pb.Lines{Lines: []string{e.Line}}}})
	}
}

func (s *sender) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.err
	s.err = errors.New("watch ended")
	return err
}
