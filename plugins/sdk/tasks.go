package sdk

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"weir.dev/weir/plugins/internal/wire"
	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/runtime/backend"
)

// Limits of one TaskEvents message: the sender puts at most this many
// events, of about this many bytes, in one message (the host accepts
// messages of 4 MiB).
const (
	maxBatchEvents = 1024
	maxBatchBytes  = 1 << 20
)

// Tasks implements the protocol: each submit on the stream runs, in a
// goroutine of its own, the backend's Submit and then Watch, whose events go
// to one queue; one goroutine sends the queue, several events per message
// when they come faster than the stream takes them. When Weir closes its
// side, the tasks in flight are watched to their end; when the stream
// breaks, their watches end (never the tasks).
func (s *Server) Tasks(stream pb.Backend_TasksServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := newEventQueue()
	sent := make(chan error, 1)
	go func() {
		err := out.run(stream)
		if err != nil {
			cancel() // nothing more can be sent: stop watching
		}
		sent <- err
	}()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		stops = map[uint64]context.CancelFunc{}
	)
	var recvErr error
	for {
		req, err := stream.Recv()
		if err != nil {
			if err != io.EOF {
				recvErr = err
				cancel() // the stream is gone: stop watching
			}
			break
		}
		switch r := req.Request.(type) {
		case *pb.TaskRequest_Submit:
			mu.Lock()
			_, dup := stops[req.Ref]
			tctx, stop := context.WithCancel(ctx)
			if !dup {
				stops[req.Ref] = stop
			}
			mu.Unlock()
			if dup {
				stop()
				out.push(req.Ref, nil, status.Errorf(codes.InvalidArgument, "task ref %d is already in use on this stream", req.Ref))
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.task(tctx, req.Ref, r.Submit.GetTask(), out)
				mu.Lock()
				delete(stops, req.Ref)
				mu.Unlock()
				stop()
			}()
		case *pb.TaskRequest_StopWatching:
			mu.Lock()
			if stop := stops[req.Ref]; stop != nil {
				stop()
			}
			mu.Unlock()
		}
	}
	wg.Wait()
	out.close()
	if err := <-sent; err != nil {
		return err
	}
	return recvErr
}

// task submits one task of a Tasks stream and watches it to its end, its
// events going to out. Once ctx ends (Weir stopped watching, or the stream
// broke) nothing more is sent for it.
func (s *Server) task(ctx context.Context, ref uint64, t *pb.Task, out *eventQueue) {
	s.cfg.RLock()
	defer s.cfg.RUnlock()
	id, err := s.b.Submit(ctx, wire.TaskFrom(t))
	if err != nil {
		out.push(ref, nil, wire.Status(err))
		return
	}
	s.mu.Lock()
	s.running[id] = true
	s.mu.Unlock()
	out.push(ref, &pb.WatchEvent{Event: &pb.WatchEvent_Submitted{Submitted: &pb.Submitted{Id: id}}}, nil)
	res, err := s.b.Watch(ctx, id, func(e backend.Event) {
		// The final state goes out as the result, one event later.
		if e.State != "" && !e.State.Terminal() {
			out.push(ref, &pb.WatchEvent{Event: &pb.WatchEvent_State{State: &pb.StateChange{State: wire.State(e.State), Message: e.Message}}}, nil)
		}
		if e.Line != "" {
			out.line(ref, e.Line)
		}
	})
	if ctx.Err() != nil {
		return // Weir stopped watching: it ignores anything more
	}
	if err != nil {
		out.push(ref, nil, wire.Status(err))
		return
	}
	out.push(ref, &pb.WatchEvent{Event: &pb.WatchEvent_Result{Result: s.ended(id, res)}}, nil)
}

// eventQueue is the events of a Tasks stream waiting to be sent. Pushing
// never blocks, so no task's watch waits for the stream; run sends what is
// queued, as few messages as it can.
type eventQueue struct {
	mu     sync.Mutex
	events []*pb.TaskEvent
	size   int // about the bytes of events
	closed bool
	err    error // the stream's send error: nothing more is queued
	wake   chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

// push queues an event of the task ref: ev, or the error err.
func (q *eventQueue) push(ref uint64, ev *pb.WatchEvent, err error) {
	te := &pb.TaskEvent{Ref: ref}
	size := 16
	if err != nil {
		st := status.Convert(err)
		te.Event = &pb.TaskEvent_Error{Error: &pb.TaskError{Code: int32(st.Code()), Message: st.Message()}}
		size += len(st.Message())
	} else {
		te.Event = &pb.TaskEvent_Watch{Watch: ev}
		if r := ev.GetResult(); r != nil {
			size += len(r.Message)
		}
		if st := ev.GetState(); st != nil {
			size += len(st.Message)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.add(te, size)
}

// line queues a line of output of the task ref, with the lines before it
// when they have not gone yet.
func (q *eventQueue) line(ref uint64, l string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.events); n > 0 && q.size+len(l) < maxBatchBytes {
		last := q.events[n-1]
		if lines := last.GetWatch().GetLines(); last.Ref == ref && lines != nil {
			lines.Lines = append(lines.Lines, l)
			q.size += len(l) + 2
			return
		}
	}
	q.add(&pb.TaskEvent{Ref: ref, Event: &pb.TaskEvent_Watch{Watch: &pb.WatchEvent{Event: &pb.WatchEvent_Lines{Lines: &pb.Lines{Lines: []string{l}}}}}}, len(l)+16)
}

func (q *eventQueue) add(te *pb.TaskEvent, size int) {
	if q.err != nil || q.closed {
		return
	}
	q.events = append(q.events, te)
	q.size += size
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close makes run return once the queue is sent.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run sends the queue until it is closed and empty, or a send fails.
func (q *eventQueue) run(stream pb.Backend_TasksServer) error {
	for {
		q.mu.Lock()
		for len(q.events) == 0 && !q.closed {
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		if len(q.events) == 0 { // closed
			q.mu.Unlock()
			return nil
		}
		batch := q.events
		q.events, q.size = nil, 0
		q.mu.Unlock()
		for len(batch) > 0 {
			n := chunk(batch)
			err := stream.Send(&pb.TaskEvents{Events: batch[:n]})
			if err != nil {
				q.mu.Lock()
				q.err, q.events = err, nil
				q.mu.Unlock()
				return err
			}
			batch = batch[n:]
		}
	}
}

// chunk is how many of the events go in one message.
func chunk(events []*pb.TaskEvent) int {
	size := 0
	for i, e := range events {
		if i == maxBatchEvents {
			return i
		}
		size += 16
		for _, l := range e.GetWatch().GetLines().GetLines() {
			size += len(l) + 2
		}
		if size > maxBatchBytes && i > 0 {
			return i
		}
	}
	return len(events)
}
