package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/plugins/sdk"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// gated is a backend whose tasks print lines, then wait for their gate
// (closed by the test) before they end; it records how each watch ended
// and what was cancelled.
type gated struct {
	backend.NoServices
	lines int

	mu        sync.Mutex
	seq       int
	gates     map[string]chan struct{}
	ended     map[string]string // "done" or "stopped"
	cancelled []string
}

func newGated(lines int) *gated {
	return &gated{lines: lines, gates: map[string]chan struct{}{}, ended: map[string]string{}}
}

func (*gated) Describe(context.Context) (*backend.Description, error) {
	return &backend.Description{Name: "gated"}, nil
}

func (*gated) Lower(context.Context, *schema.Step) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

func (g *gated) Submit(_ context.Context, t *backend.Task) (string, error) {
	if len(t.Argv) == 0 {
		return "", fmt.Errorf("no command")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	id := strconv.Itoa(g.seq)
	g.gates[id] = make(chan struct{})
	return id, nil
}

func (g *gated) open(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.gates[id])
}

func (g *gated) Watch(ctx context.Context, id string, fn func(backend.Event)) (*backend.Result, error) {
	g.mu.Lock()
	gate := g.gates[id]
	g.mu.Unlock()
	fn(backend.Event{State: backend.StateRunning})
	for i := range g.lines {
		fn(backend.Event{Line: "line " + strconv.Itoa(i)})
	}
	select {
	case <-gate:
	case <-ctx.Done():
		g.mu.Lock()
		g.ended[id] = "stopped"
		g.mu.Unlock()
		return nil, ctx.Err()
	}
	g.mu.Lock()
	g.ended[id] = "done"
	g.mu.Unlock()
	return &backend.Result{State: backend.StateSucceeded}, nil
}

func (g *gated) Cancel(_ context.Context, id string, _ time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cancelled = append(g.cancelled, id)
	return nil
}

func (g *gated) endedAs(id string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ended[id]
}

// tasksClient serves b over an in-memory connection and opens a Tasks
// stream on it.
func tasksClient(t *testing.T, b backend.Interface) pb.Backend_TasksClient {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	pb.RegisterBackendServer(srv, sdk.NewServer(b))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
		return lis.Dial()
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := pb.NewBackendClient(conn)
	d, err := c.Describe(context.Background(), &pb.DescribeRequest{})
	require.NoError(t, err)
	require.True(t, d.TasksStream, "the SDK says it serves Tasks")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := c.Tasks(ctx)
	require.NoError(t, err)
	return stream
}

func submit(t *testing.T, s pb.Backend_TasksClient, ref uint64, argv ...string) {
	t.Helper()
	require.NoError(t, s.Send(&pb.TaskRequest{Ref: ref, Request: &pb.TaskRequest_Submit{Submit: &pb.SubmitRequest{Task: &pb.Task{Argv: argv}}}}))
}

// recvUntil reads messages until cond holds for one of their events, and
// returns all their events and the number of messages.
func recvUntil(t *testing.T, s pb.Backend_TasksClient, cond func(*pb.TaskEvent) bool) ([]*pb.TaskEvent, int) {
	t.Helper()
	var all []*pb.TaskEvent
	msgs := 0
	for met := false; !met; {
		m, err := s.Recv()
		require.NoError(t, err)
		msgs++
		for _, e := range m.Events {
			all = append(all, e)
			met = cond(e) || met
		}
	}
	return all, msgs
}

// TestTasksStream: the events of two tasks on one stream, each in order
// (ID, state, lines, result); a task's lines coalesced; a submit error as
// its task's event; a ref in use refused.
func TestTasksStream(t *testing.T) {
	g := newGated(200)
	s := tasksClient(t, g)
	submit(t, s, 1, "a")
	submit(t, s, 2, "b")
	submit(t, s, 3) // no command: Submit fails
	submit(t, s, 1, "again")
	errs := map[uint64]*pb.TaskError{}
	evs, _ := recvUntil(t, s, func(e *pb.TaskEvent) bool {
		if e.GetError() != nil {
			errs[e.Ref] = e.GetError()
		}
		return len(errs) == 2
	})
	assert.Equal(t, int32(codes.Unknown), errs[3].Code)
	assert.Equal(t, "no command", errs[3].Message)
	assert.Equal(t, int32(codes.InvalidArgument), errs[1].Code, "ref 1 is in use")
	assert.Contains(t, errs[1].Message, "ref 1 is already in use")

	// Both tasks run; let them end.
	ids := map[uint64]string{}
	for _, e := range evs {
		if sub := e.GetWatch().GetSubmitted(); sub != nil {
			ids[e.Ref] = sub.Id
		}
	}
	for len(ids) < 2 {
		more, _ := recvUntil(t, s, func(e *pb.TaskEvent) bool { return e.GetWatch().GetSubmitted() != nil })
		evs = append(evs, more...)
		for _, e := range more {
			if sub := e.GetWatch().GetSubmitted(); sub != nil {
				ids[e.Ref] = sub.Id
			}
		}
	}
	g.open(ids[1])
	g.open(ids[2])
	done := 0
	more, msgs := recvUntil(t, s, func(e *pb.TaskEvent) bool {
		if e.GetWatch().GetResult() != nil {
			done++
		}
		return done == 2
	})
	evs = append(evs, more...)

	for _, ref := range []uint64{1, 2} {
		var kinds []string
		lines := 0
		for _, e := range evs {
			if e.Ref != ref || e.GetError() != nil {
				continue
			}
			w := e.GetWatch()
			switch {
			case w.GetSubmitted() != nil:
				kinds = append(kinds, "submitted")
			case w.GetState() != nil:
				kinds = append(kinds, "state")
			case w.GetLines() != nil:
				for _, l := range w.GetLines().Lines {
					assert.Equal(t, "line "+strconv.Itoa(lines), l, "task %d's lines in order", ref)
					lines++
				}
				if kinds[len(kinds)-1] != "lines" {
					kinds = append(kinds, "lines")
				}
			case w.GetResult() != nil:
				kinds = append(kinds, "result")
			}
		}
		assert.Equal(t, []string{"submitted", "state", "lines", "result"}, kinds, "task %d", ref)
		assert.Equal(t, 200, lines, "task %d", ref)
	}
	assert.Positive(t, msgs)
}

// TestTasksStopWatching: stop_watching ends the watch of one task, not the
// task, and nothing more is sent for it; closing Weir's side lets the tasks
// in flight end before the stream does.
func TestTasksStopWatching(t *testing.T) {
	g := newGated(0)
	s := tasksClient(t, g)
	submit(t, s, 1, "a")
	submit(t, s, 2, "b")
	ids := map[uint64]string{}
	recvUntil(t, s, func(e *pb.TaskEvent) bool {
		if sub := e.GetWatch().GetSubmitted(); sub != nil {
			ids[e.Ref] = sub.Id
		}
		return len(ids) == 2
	})
	require.NoError(t, s.Send(&pb.TaskRequest{Ref: 1, Request: &pb.TaskRequest_StopWatching{StopWatching: &pb.StopWatching{}}}))
	require.Eventually(t, func() bool { return g.endedAs(ids[1]) == "stopped" }, 5*time.Second, 10*time.Millisecond)
	assert.Empty(t, g.cancelled, "stopping a watch does not cancel the task")

	require.NoError(t, s.CloseSend())
	g.open(ids[2])
	var after []*pb.TaskEvent
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		after = append(after, m.Events...)
	}
	require.NotEmpty(t, after)
	last := after[len(after)-1]
	assert.Equal(t, uint64(2), last.Ref)
	assert.NotNil(t, last.GetWatch().GetResult(), "the task in flight ended before the stream")
	// Task 1's running state may have left before stop_watching came (it
	// waits up to eventLag); its end, never.
	for _, e := range after {
		if e.Ref == 1 {
			assert.Nil(t, e.GetError(), "an error for a task no longer watched")
			assert.Nil(t, e.GetWatch().GetResult(), "a result for a task no longer watched")
		}
	}
}
