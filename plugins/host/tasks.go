package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

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
	stream taskWire
	cancel context.CancelFunc

	sendMu sync.Mutex // one Send at a time

	mu     sync.Mutex
	next   uint64
	tasks  map[uint64]*streamTask // the tasks whose events are still to come
	proven bool                   // a message came: the plugin serves Tasks
	err    error                  // why the stream ended (io.EOF: the plugin ended it)
	done   chan struct{}          // closed once err is set
}

// taskWire carries a Tasks stream: gRPC's, or the tasks socket.
type taskWire interface {
	Send(*pb.TaskRequest) error
	Recv() (*pb.TaskEvents, error)
}

// socketWire is a Tasks stream on the plugin's tasks socket (PROTOCOL.md
// 5.2). Its errors are UNAVAILABLE statuses, as a broken gRPC stream's.
type socketWire struct{ f *wire.Frames }

func (w socketWire) Send(m *pb.TaskRequest) error {
	if err := w.f.Write(m); err != nil {
		w.f.Conn().Close() // the reader ends too, with the stream's error
		return io.EOF
	}
	return nil
}

func (w socketWire) Recv() (*pb.TaskEvents, error) {
	m := &pb.TaskEvents{}
	if err := w.f.Read(m); err != nil {
		if err == io.EOF {
			return nil, status.Error(codes.Unavailable, "the plugin closed the tasks socket")
		}
		return nil, status.Error(codes.Unavailable, "the tasks socket: "+err.Error())
	}
	return m, nil
}

// socketOpenTimeout bounds connecting to a tasks socket and its answer to
// open.
const socketOpenTimeout = 5 * time.Second

// dialTasks opens a Tasks stream on the process's tasks socket.
func dialTasks(pr *process) (*taskStream, error) {
	c, err := net.DialTimeout("unix", pr.tasksSocket, socketOpenTimeout)
	if err != nil {
		return nil, err
	}
	f := wire.NewFrames(c)
	c.SetDeadline(time.Now().Add(socketOpenTimeout))
	err = f.Write(&pb.TaskRequest{Request: &pb.TaskRequest_Open{Open: &pb.OpenTasks{Token: pr.tasksToken}}})
	if err == nil {
		err = f.Read(&pb.TaskEvents{})
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("opening the tasks socket: %w", err)
	}
	c.SetDeadline(time.Time{})
	ts := &taskStream{stream: socketWire{f}, cancel: func() { c.Close() }, proven: true,
		tasks: map[uint64]*streamTask{}, done: make(chan struct{})}
	go ts.read()
	return ts, nil
}

// streamTask is one task on a Tasks stream: the events received for it and
// not yet taken. Its fields are guarded by the stream's mu.
type streamTask struct {
	ts     *taskStream
	ref    uint64
	events []*pb.TaskEvent
	wake   chan struct{} // a token when events were added
	ended  bool          // its last event (result or error) was received
	// id is the plugin's ID of the task, from its submitted event; idc is
	// closed once it is known or the task ended without one.
	id      string
	idc     chan struct{}
	stopped bool // stop was called
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
		ts.proven = true
		for _, e := range msg.Events {
			t := ts.tasks[e.Ref]
			if t == nil {
				continue
			}
			t.events = append(t.events, e)
			if sub := e.GetWatch().GetSubmitted(); sub != nil && t.id == "" {
				t.id = sub.Id
				close(t.idc)
			}
			if e.GetError() != nil || e.GetWatch().GetResult() != nil {
				t.ended = true
				delete(ts.tasks, e.Ref) // nothing more comes for it
				if t.id == "" {
					close(t.idc)
				}
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
	st := &streamTask{ts: ts, ref: ts.next, wake: make(chan struct{}, 1), idc: make(chan struct{})}
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
	st.stopped = true
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
				return nil, &taskError{wire.TaskErrorFrom(te)}
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
	if pr.tasks != nil && !pr.tasks.broken() {
		return pr.tasks, nil
	}
	if pr.tasksSocket != "" && !pr.noSocket {
		ts, err := dialTasks(pr)
		if err == nil {
			pr.tasks = ts
			return ts, nil
		}
		pr.noSocket = true // the gRPC stream, if the plugin serves it, will do
	}
	if !pr.tasksStream || p.noTasks {
		return nil, nil
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
// queue for Watch. Once the stream has carried a message (the plugin
// serves it), it does not wait for the plugin's answer: the task's ID is
// then Weir's number for it on the stream ("GEN#REF"), and a refusal comes
// from Watch. Before that, ctx bounds the wait for the task's ID.
func (p *Plugin) submitTasks(ctx context.Context, pr *process, ts *taskStream, t *backend.Task) (string, error) {
	ts.mu.Lock()
	proven := ts.proven
	ts.mu.Unlock()
	st, err := ts.submit(t)
	if err == nil && proven {
		id := strconv.Itoa(pr.gen) + "#" + strconv.FormatUint(st.ref, 10)
		p.mu.Lock()
		p.refs[id] = st
		p.mu.Unlock()
		return id, nil
	}
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

// refEvents reads the events of a task submitted without waiting for its
// ID: an error before the ID is the submit's.
type refEvents struct {
	st  *streamTask
	ctx context.Context
	id  bool // the submitted event was read
}

func (r *refEvents) Recv() (*pb.WatchEvent, error) {
	ev, err := r.st.recv(r.ctx)
	var te *taskError
	switch {
	case ev.GetSubmitted() != nil:
		r.id = true
	case !r.id && errors.As(err, &te):
		return nil, &taskError{&backend.SubmitError{Err: te.err}}
	}
	return ev, err
}

// ref finds a task submitted without waiting for its ID ("GEN#REF"): its
// queue, its process and GEN; a nil queue if there is none (any more).
func (p *Plugin) ref(id string) (*streamTask, *process, string) {
	g, _, _ := strings.Cut(id, "#")
	gen, _ := strconv.Atoi(g)
	p.mu.Lock()
	defer p.mu.Unlock()
	st, pr := p.refs[id], p.procs[gen]
	if pr == nil {
		return nil, nil, g
	}
	return st, pr, g
}

// watchRef follows a task submitted without waiting for its ID (see
// submitTasks). When ctx ends first, its events stay queued for the next
// Watch if its ID has not come yet; once it has, the plugin is told to
// stop sending them and the next Watch asks for them by the ID.
func (p *Plugin) watchRef(ctx context.Context, id string, fn func(backend.Event)) (*backend.Result, error) {
	st, pr, g := p.ref(id)
	if st == nil {
		return nil, fmt.Errorf("task %q: %w", id, backend.ErrNotFound)
	}
	ts := st.ts
	ts.mu.Lock()
	stopped, pid := st.stopped, st.id
	ts.mu.Unlock()
	if stopped {
		p.mu.Lock()
		delete(p.refs, id)
		p.mu.Unlock()
		return p.Watch(ctx, g+"/"+pid, fn)
	}
	res, err := p.follow(ctx, pr, id, &refEvents{st: st, ctx: ctx}, fn)
	ts.mu.Lock()
	keep := ctx.Err() != nil && !st.ended && ts.err == nil
	known := st.id != ""
	ts.mu.Unlock()
	if keep && !known {
		return res, err // the queue waits for the next Watch
	}
	if keep {
		st.stop()
		return res, err // the next Watch asks by the ID
	}
	p.mu.Lock()
	delete(p.refs, id)
	p.mu.Unlock()
	return res, err
}

// cancelRef cancels a task submitted without waiting for its ID, once the
// ID has come; a task that ended meanwhile, or was never started, needs no
// cancelling. A plugin that has not said the ID within the grace period and
// CancelMargin is hung, as one that does not answer Cancel: it is killed.
func (p *Plugin) cancelRef(ctx context.Context, id string, grace time.Duration) error {
	st, pr, g := p.ref(id)
	if st == nil {
		return nil // its Watch took its end
	}
	deadline := grace + p.opts.CancelMargin
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case <-st.idc:
	case <-st.ts.done:
		return nil // the tasks ended with the stream's process, or the next Watch says why
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		p.kill(pr)
		return fmt.Errorf("backend plugin %s did not start task %s within %v: killed the plugin", p.opts.Kind, id, deadline)
	}
	st.ts.mu.Lock()
	pid := st.id
	st.ts.mu.Unlock()
	if pid == "" {
		return nil // refused: it never ran
	}
	return p.Cancel(ctx, g+"/"+pid, grace)
}
