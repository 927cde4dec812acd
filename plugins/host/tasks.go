package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"weir.dev/weir/plugins/internal/wire"
	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/runtime/backend"
)

// taskStream is a plugin process's Tasks stream, which carries every task
// the host submits to it: one goroutine reads it and sorts the events into
// the queues of their tasks, so a task whose watcher is slow holds up no
// other.
type taskStream struct {
	stream pb.Backend_TasksClient
	cancel context.CancelFunc

	sendMu sync.Mutex // one Send at a time

	mu    sync.Mutex
	next  uint64
	tasks map[uint64]*streamTask // the tasks whose events are still to come
	err   error                  // why the stream ended (io.EOF: the plugin ended it)
	done  chan struct{}          // closed once err is set
}

// streamTask is one task on a Tasks stream: the events received for it and
// not yet taken. Its fields are guarded by the stream's mu.
type streamTask struct {
	ts     *taskStream
	ref    uint64
	events []*pb.TaskEvent
	wake   chan struct{} // a token when events were added
	ended  bool          // its last event (result or error) was received
}

// openTasks opens a process's Tasks stream. The stream outlives ctx: it
// lasts until the process exits, the plugin ends it, or cancel.
func openTasks(pr *process) (*taskStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := pr.rpc.Tasks(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	ts := &taskStream{stream: stream, cancel: cancel, tasks: map[uint64]*streamTask{}, done: make(chan struct{})}
	go ts.read()
	return ts, nil
}

// read sorts the stream's events into their tasks' queues until the
// stream ends. Events of a task no longer watched are dropped.
func (ts *taskStream) read() {
	for {
		msg, err := ts.stream.Recv()
		ts.mu.Lock()
		if err != nil {
			ts.err = err
			close(ts.done)
			ts.mu.Unlock()
			ts.cancel()
			return
		}
		for _, e := range msg.Events {
			t := ts.tasks[e.Ref]
			if t == nil {
				continue
			}
			t.events = append(t.events, e)
			if e.GetError() != nil || e.GetWatch().GetResult() != nil {
				t.ended = true
				delete(ts.tasks, e.Ref) // nothing more comes for it
			}
			select {
			case t.wake <- struct{}{}:
			default:
			}
		}
		ts.mu.Unlock()
	}
}

// broken reports whether the stream has ended.
func (ts *taskStream) broken() bool {
	select {
	case <-ts.done:
		return true
	default:
		return false
	}
}

// submit sends a task to the plugin and returns its queue. A send that
// fails means the stream ended: the error is then the stream's.
func (ts *taskStream) submit(t *backend.Task) (*streamTask, error) {
	ts.mu.Lock()
	if ts.err != nil {
		err := ts.err
		ts.mu.Unlock()
		return nil, err
	}
	ts.next++
	st := &streamTask{ts: ts, ref: ts.next, wake: make(chan struct{}, 1)}
	ts.tasks[st.ref] = st
	ts.mu.Unlock()
	if err := ts.send(&pb.TaskRequest{Ref: st.ref, Request: &pb.TaskRequest_Submit{Submit: &pb.SubmitRequest{Task: wire.Task(t)}}}); err != nil {
		<-ts.done // Send says io.EOF; the reader has the stream's status
		return nil, ts.err
	}
	return st, nil
}

func (ts *taskStream) send(req *pb.TaskRequest) error {
	ts.sendMu.Lock()
	defer ts.sendMu.Unlock()
	return ts.stream.Send(req)
}

// stop stops watching a task: the plugin is told to send nothing more for
// it, and what it sends meanwhile is dropped.
func (st *streamTask) stop() {
	ts := st.ts
	ts.mu.Lock()
	ended := st.ended || ts.err != nil
	delete(ts.tasks, st.ref)
	st.events = nil
	ts.mu.Unlock()
	if !ended {
		ts.send(&pb.TaskRequest{Ref: st.ref, Request: &pb.TaskRequest_StopWatching{StopWatching: &pb.StopWatching{}}})
	}
}

// taskError is an error the plugin sent for a task on the Tasks stream: its
// Submit's or its Watch's.
type taskError struct{ err error }

func (e *taskError) Error() string { return e.err.Error() }
func (e *taskError) Unwrap() error { return e.err }

// recv returns the task's next event, waiting for it until ctx ends. Its
// errors are ctx's, a *taskError, or the stream's once the events received
// before it ended are taken.
func (st *streamTask) recv(ctx context.Context) (*pb.WatchEvent, error) {
	ts := st.ts
	for {
		ts.mu.Lock()
		if len(st.events) > 0 {
			e := st.events[0]
			st.events[0] = nil
			st.events = st.events[1:]
			ts.mu.Unlock()
			if te := e.GetError(); te != nil {
				return nil, &taskError{wire.ErrorFrom(status.Error(codes.Code(te.Code), te.Message))}
			}
			if e.GetWatch() == nil {
				return nil, fmt.Errorf("an event of task %d on the Tasks stream holds neither an event nor an error", st.ref)
			}
			return e.GetWatch(), nil
		}
		err := ts.err
		ts.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-st.wake:
		case <-ts.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// tasks returns the process's Tasks stream, opening one if there is none
// or the last one ended; nil if the plugin does not serve Tasks.
func (p *Plugin) tasks(pr *process) (*taskStream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !pr.tasksStream || p.noTasks {
		return nil, nil
	}
	if pr.tasks != nil && !pr.tasks.broken() {
		return pr.tasks, nil
	}
	ts, err := openTasks(pr)
	if err != nil {
		return nil, err
	}
	pr.tasks = ts
	return ts, nil
}

// errNoTasks says the plugin does not serve Tasks after all.
var errNoTasks = errors.New("the plugin does not serve Tasks")

// submitTasks submits a task over the process's Tasks stream and keeps its
// queue for Watch. ctx bounds only the wait for the task's ID.
func (p *Plugin) submitTasks(ctx context.Context, pr *process, ts *taskStream, t *backend.Task) (string, error) {
	st, err := ts.submit(t)
	var ev *pb.WatchEvent
	if err == nil {
		ev, err = st.recv(ctx)
	}
	if err != nil {
		if st != nil {
			st.stop()
		}
		var te *taskError
		switch {
		case errors.As(err, &te):
			return "", te.err
		case status.Code(err) == codes.Unimplemented:
			p.mu.Lock()
			p.noTasks = true
			p.mu.Unlock()
			return "", errNoTasks
		case ctx.Err() != nil:
			return "", ctx.Err()
		case err == io.EOF:
			return "", fmt.Errorf("backend plugin %s ended the Tasks stream before it answered a submit", p.opts.Kind)
		}
		return "", p.callError(pr, "Tasks", err)
	}
	sub := ev.GetSubmitted()
	if sub == nil {
		st.stop()
		return "", fmt.Errorf("backend plugin %s: the first event of a task on the Tasks stream is not its ID", p.opts.Kind)
	}
	id := strconv.Itoa(pr.gen) + "/" + sub.Id
	p.mu.Lock()
	p.runs[id] = &taskEvents{st: st}
	p.mu.Unlock()
	return id, nil
}

// taskEvents are the events of a task submitted over the Tasks stream, for
// Watch.
type taskEvents struct {
	st  *streamTask
	ctx context.Context
}

func (e *taskEvents) watch(ctx context.Context) eventStream { e.ctx = ctx; return e }
func (e *taskEvents) Recv() (*pb.WatchEvent, error)         { return e.st.recv(e.ctx) }
func (e *taskEvents) stop()                                 { e.st.stop() }
