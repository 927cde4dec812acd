package wire

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

func TestRoundTrips(t *testing.T) {
	task := &backend.Task{RunID: "r1", Step: "tasks.x", Attempt: 2, Argv: []string{"a", "b"}, WorkDir: "/w", Dir: "/w/code",
		Env: map[string]string{"A": "1"}, Inputs: map[string]string{"in": "/w/in/in"}, Outputs: map[string]string{"out": "/w/out/out"},
		Image: "python:3.12", Resources: &schema.Resources{CPU: 1.5, Memory: "4Gi", GPU: 1, GPUType: "nvidia.com/gpu"},
		Network: true, LogPath: "/w/log.txt", Kind: "train", Element: "training.m", Workers: 4, Timeout: 90 * time.Minute}
	assert.Equal(t, task, TaskFrom(Task(task)))

	for _, s := range []backend.State{backend.StatePending, backend.StateRunning, backend.StateSucceeded, backend.StateFailed, backend.StateCancelled, ""} {
		assert.Equal(t, s, StateFrom(State(s)))
	}
	res := &backend.Result{State: backend.StateFailed, ExitCode: 3, Message: "exited with code 3", Duration: 1500 * time.Millisecond}
	assert.Equal(t, res, ResultFrom(Result(res)))

	d := &backend.Description{Name: "x", Version: "1.2.3", ProtocolVersion: 1, GPUs: 2, Services: true, MaxParallelism: 8, CPUHourPrice: 0.05, GPUHourPrice: 2.5}
	assert.Equal(t, d, DescriptionFrom(Description(d)))

	svc := &backend.Service{Name: "serving.api", Revision: "v3", Argv: []string{"serve"}, WorkDir: "/w", Dir: "/w",
		Env: map[string]string{"PORT": "8080"}, Inputs: map[string]string{"model": "/m"}, Port: 8080, MinReplicas: 1, MaxReplicas: 4, LogPath: "/w/log"}
	assert.Equal(t, svc, ServiceFrom(Service(svc)))
	dep := &backend.Deployment{ID: "d1", Endpoint: "http://x", Revisions: []backend.Revision{{Name: "v3", Weight: 100, Ready: true}}}
	assert.Equal(t, dep, DeploymentFrom(Deployment(dep)))
	split := []backend.Split{{Revision: "v2", Weight: 90}, {Revision: "v3", Weight: 10}}
	assert.Equal(t, split, SplitsFrom(Splits(split)))

	step := &schema.Step{Address: "tasks.x", Kind: "task", Run: &schema.StepRun{Command: []string{"true"}}, CacheKey: "sha256:1"}
	b, err := Step(step)
	assert.NoError(t, err)
	back, err := StepFrom(b)
	assert.NoError(t, err)
	assert.Equal(t, step, back)
}

func TestErrors(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
		is   error
	}{
		{fmt.Errorf("local: %w", backend.ErrNoServices), codes.Unimplemented, backend.ErrUnsupported},
		{fmt.Errorf("task 7: %w", backend.ErrNotFound), codes.NotFound, backend.ErrNotFound},
		{&Invalid{Err: errors.New("needs a GPU")}, codes.InvalidArgument, nil},
		{context.Canceled, codes.Canceled, context.Canceled},
		{errors.New("disk full"), codes.Unknown, nil},
	}
	for _, c := range cases {
		st := Status(c.err)
		assert.Equal(t, c.code, status.Code(st), c.err.Error())
		back := ErrorFrom(st)
		assert.Equal(t, c.err.Error(), back.Error(), "the message crosses the wire as it is")
		if c.is != nil {
			assert.ErrorIs(t, back, c.is)
		}
	}
	assert.Nil(t, Status(nil))
	assert.Nil(t, ErrorFrom(nil))
}
