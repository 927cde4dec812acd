// Package wire converts between runtime/backend's types and the protocol's
// messages (plugins/proto), and between Go errors and gRPC statuses. The
// host adapter and the SDK share it, so both ends read and write the same
// way. It never talks to the network itself.
package wire

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Resources converts a step's resources (nil stays nil).
func Resources(r *schema.Resources) *pb.Resources {
	if r == nil {
		return nil
	}
	return &pb.Resources{Cpu: r.CPU, Memory: r.Memory, Gpu: int32(r.GPU), GpuType: r.GPUType}
}

// ResourcesFrom converts back.
func ResourcesFrom(r *pb.Resources) *schema.Resources {
	if r == nil {
		return nil
	}
	return &schema.Resources{CPU: r.Cpu, Memory: r.Memory, GPU: int(r.Gpu), GPUType: r.GpuType}
}

// Task converts a task.
func Task(t *backend.Task) *pb.Task {
	return &pb.Task{RunId: t.RunID, Step: t.Step, Attempt: int32(t.Attempt), Argv: t.Argv, WorkDir: t.WorkDir, Dir: t.Dir,
		Env: t.Env, Inputs: t.Inputs, Outputs: t.Outputs, Image: t.Image, Resources: Resources(t.Resources),
		Network: t.Network, LogPath: t.LogPath, Kind: t.Kind, Element: t.Element, Workers: int32(t.Workers),
		TimeoutNanos: int64(t.Timeout)}
}

// TaskFrom converts back.
func TaskFrom(t *pb.Task) *backend.Task {
	if t == nil {
		return &backend.Task{}
	}
	return &backend.Task{RunID: t.RunId, Step: t.Step, Attempt: int(t.Attempt), Argv: t.Argv, WorkDir: t.WorkDir, Dir: t.Dir,
		Env: t.Env, Inputs: t.Inputs, Outputs: t.Outputs, Image: t.Image, Resources: ResourcesFrom(t.Resources),
		Network: t.Network, LogPath: t.LogPath, Kind: t.Kind, Element: t.Element, Workers: int(t.Workers),
		Timeout: time.Duration(t.TimeoutNanos)}
}

var states = map[backend.State]pb.State{
	backend.StatePending:   pb.State_STATE_PENDING,
	backend.StateRunning:   pb.State_STATE_RUNNING,
	backend.StateSucceeded: pb.State_STATE_SUCCEEDED,
	backend.StateFailed:    pb.State_STATE_FAILED,
	backend.StateCancelled: pb.State_STATE_CANCELLED,
}

// State converts a state ("" is STATE_UNSPECIFIED).
func State(s backend.State) pb.State { return states[s] }

// StateFrom converts back (STATE_UNSPECIFIED is "").
func StateFrom(s pb.State) backend.State {
	for k, v := range states {
		if v == s {
			return k
		}
	}
	return ""
}

// Result converts a task's result.
func Result(r *backend.Result) *pb.Result {
	return &pb.Result{State: State(r.State), ExitCode: int32(r.ExitCode), Message: r.Message, DurationNanos: int64(r.Duration)}
}

// ResultFrom converts back.
func ResultFrom(r *pb.Result) *backend.Result {
	return &backend.Result{State: StateFrom(r.State), ExitCode: int(r.ExitCode), Message: r.Message, Duration: time.Duration(r.DurationNanos)}
}

// Description converts a description.
func Description(d *backend.Description) *pb.DescribeResponse {
	return &pb.DescribeResponse{Name: d.Name, Version: d.Version, ProtocolVersion: int32(d.ProtocolVersion), Gpus: int32(d.GPUs),
		Services: d.Services, MaxParallelism: int32(d.MaxParallelism), CpuHourPrice: d.CPUHourPrice, GpuHourPrice: d.GPUHourPrice}
}

// DescriptionFrom converts back.
func DescriptionFrom(d *pb.DescribeResponse) *backend.Description {
	return &backend.Description{Name: d.Name, Version: d.Version, ProtocolVersion: int(d.ProtocolVersion), GPUs: int(d.Gpus),
		Services: d.Services, MaxParallelism: int(d.MaxParallelism), CPUHourPrice: d.CpuHourPrice, GPUHourPrice: d.GpuHourPrice}
}

// Service converts a service revision.
func Service(s *backend.Service) *pb.Service {
	return &pb.Service{Name: s.Name, Revision: s.Revision, Argv: s.Argv, WorkDir: s.WorkDir, Dir: s.Dir, Env: s.Env,
		Inputs: s.Inputs, Image: s.Image, Resources: Resources(s.Resources), Port: int32(s.Port),
		MinReplicas: int32(s.MinReplicas), MaxReplicas: int32(s.MaxReplicas), LogPath: s.LogPath}
}

// ServiceFrom converts back.
func ServiceFrom(s *pb.Service) *backend.Service {
	if s == nil {
		return &backend.Service{}
	}
	return &backend.Service{Name: s.Name, Revision: s.Revision, Argv: s.Argv, WorkDir: s.WorkDir, Dir: s.Dir, Env: s.Env,
		Inputs: s.Inputs, Image: s.Image, Resources: ResourcesFrom(s.Resources), Port: int(s.Port),
		MinReplicas: int(s.MinReplicas), MaxReplicas: int(s.MaxReplicas), LogPath: s.LogPath}
}

// Deployment converts a deployment (nil stays nil).
func Deployment(d *backend.Deployment) *pb.Deployment {
	if d == nil {
		return nil
	}
	out := &pb.Deployment{Id: d.ID, Endpoint: d.Endpoint, Message: d.Message}
	for _, r := range d.Revisions {
		out.Revisions = append(out.Revisions, &pb.Revision{Name: r.Name, Weight: int32(r.Weight), Ready: r.Ready})
	}
	return out
}

// DeploymentFrom converts back (nil stays nil).
func DeploymentFrom(d *pb.Deployment) *backend.Deployment {
	if d == nil {
		return nil
	}
	out := &backend.Deployment{ID: d.Id, Endpoint: d.Endpoint, Message: d.Message, Revisions: []backend.Revision{}}
	for _, r := range d.Revisions {
		out.Revisions = append(out.Revisions, backend.Revision{Name: r.Name, Weight: int(r.Weight), Ready: r.Ready})
	}
	return out
}

// Splits converts a traffic split.
func Splits(s []backend.Split) []*pb.Split {
	out := make([]*pb.Split, len(s))
	for i, x := range s {
		out[i] = &pb.Split{Revision: x.Revision, Weight: int32(x.Weight)}
	}
	return out
}

// SplitsFrom converts back.
func SplitsFrom(s []*pb.Split) []backend.Split {
	out := make([]backend.Split, len(s))
	for i, x := range s {
		out[i] = backend.Split{Revision: x.Revision, Weight: int(x.Weight)}
	}
	return out
}

// Step encodes a step for Lower: its plan-file JSON.
func Step(s *schema.Step) ([]byte, error) { return json.Marshal(s) }

// StepFrom decodes a step sent to Lower.
func StepFrom(b []byte) (*schema.Step, error) {
	var s schema.Step
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Invalid marks an error as the request's fault (INVALID_ARGUMENT on the
// wire): a step the backend cannot run, settings it cannot use.
type Invalid struct{ Err error }

func (e *Invalid) Error() string { return e.Err.Error() }
func (e *Invalid) Unwrap() error { return e.Err }

// Status turns a backend's error into the gRPC status the protocol
// specifies (nil stays nil).
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	var inv *Invalid
	switch {
	case errors.Is(err, backend.ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, backend.ErrNotFound):
		code = codes.NotFound
	case errors.As(err, &inv):
		code = codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

// TaskError is an error as a message (a Tasks event's, a LowerSteps
// answer's): the status Status gives it.
func TaskError(err error) *pb.TaskError {
	st := status.Convert(Status(err))
	return &pb.TaskError{Code: int32(st.Code()), Message: st.Message()}
}

// TaskErrorFrom turns a TaskError back into the error it stands for, as
// ErrorFrom does a status.
func TaskErrorFrom(te *pb.TaskError) error {
	return ErrorFrom(status.Error(codes.Code(te.Code), te.Message))
}

// remote is an error that came over the wire: its message as the plugin
// wrote it, and the sentinel its status code stands for.
type remote struct {
	msg  string
	kind error
}

func (e *remote) Error() string { return e.msg }
func (e *remote) Unwrap() error { return e.kind }

// ErrorFrom turns a gRPC status back into the error it stands for:
// UNIMPLEMENTED wraps backend.ErrUnsupported, NOT_FOUND backend.ErrNotFound,
// CANCELED and DEADLINE_EXCEEDED the context's errors. Errors that are not
// statuses are returned as they are.
func ErrorFrom(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var kind error
	switch st.Code() {
	case codes.Unimplemented:
		kind = backend.ErrUnsupported
	case codes.NotFound:
		kind = backend.ErrNotFound
	case codes.Canceled:
		kind = context.Canceled
	case codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	}
	return &remote{msg: st.Message(), kind: kind}
}

// Each calls f(i) for every i in [0, n), spread over as many goroutines as
// there are processors, and returns once every call has; f must be safe to
// call concurrently. The steps of a big plan are encoded and decoded so.
func Each(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/64)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for start := 0; start < n; start += per {
		end := min(start+per, n)
		wg.Go(func() {
			for i := start; i < end; i++ {
				f(i)
			}
		})
	}
	wg.Wait()
}
