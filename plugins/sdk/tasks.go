package sdk

import (
	"context"
	"io"
	"sync"
	"time"

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

// Events that nothing waits for (a task's ID, its state changes, its
// lines) wait up to eventLag to go with the next one that something waits
// for (a result, an error), or until flushBytes of them are queued: a short
// task then costs one message, not three, and a wakeup in both processes
// less for each message saved. The first message of a stream goes at once
// (Weir waits for the first task's ID to know the stream works).
const (
	eventLag   = 20 * time.Millisecond
	flushBytes = 64 << 10
)

// Tasks implements the protocol: each submit on the stream runs, in a
// goroutine of its own, the backend's Submit and then Watch, whose events go
// to one queue (see eventQueue: a task's end goes at once, the rest within
// eventLag, several events per message). When Weir closes its side, the
// tasks in flight are watched to their end; when the stream breaks, their
// watches end (never the tasks). Serve also serves this on the tasks socket.
func (s *Server) Tasks(stream pb.Backend_TasksServer) error { return s.tasks(stream) }

// taskStream is a Tasks stream: gRPC's, or a connection to the tasks
// socket.
type taskStream interface {
	Context() context.Context
	Recv() (*pb.TaskRequest, error)
	eventSender
}

// eventSender sends messages of events.
type eventSender interface {
	Send(*pb.TaskEvents) error
}

func (s *Server) tasks(stream taskStream) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := newEventQueue(stream)
	sent := make(chan error, 1)
	go func() {
		err := out.run()
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
				out.forget(req.Ref)
				mu.Unlock()
				stop()
			}()
		case *pb.TaskRequest_Open:
			// Only the first message on the tasks socket, read before.
			out.push(req.Ref, nil, status.Error(codes.InvalidArgument, "open is the first message on the tasks socket, and only there"))
		case *pb.TaskRequest_StopWatching:
			mu.Lock()
			if stop := stops[req.Ref]; stop != nil {
				stop()
				out.stop(req.Ref)
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
// never waits for the stream, so no task's watch waits for another's
// events. The end of a task (its result or error) is sent at once by the
// goroutine that pushes it, unless another is sending: then that one
// sends it next. Everything else waits for such a send, or for eventLag;
// run sends it then, as few messages as it can.
type eventQueue struct {
	out eventSender

	mu      sync.Mutex
	events  []*pb.TaskEvent
	size    int             // about the bytes of events
	sent    bool            // a message has been sent
	sending bool            // a goroutine is sending
	stopped map[uint64]bool // tasks Weir stopped watching: their events are dropped
	armed   bool            // lag is set to wake run
	closed  bool
	err     error // the stream's send error: nothing more is queued
	wake    chan struct{}
	lag     *time.Timer
}

func newEventQueue(out eventSender) *eventQueue {
	q := &eventQueue{out: out, wake: make(chan struct{}, 1)}
	q.lag = time.AfterFunc(time.Hour, func() {
		q.mu.Lock()
		q.armed = false
		q.mu.Unlock()
		q.signal()
	})
	q.lag.Stop()
	return q
}

// signal wakes run.
func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues an event of the task ref: ev, or the error err.
func (q *eventQueue) push(ref uint64, ev *pb.WatchEvent, err error) {
	te := &pb.TaskEvent{Ref: ref}
	size := 16
	if err != nil {
		e := wire.TaskError(err)
		te.Event = &pb.TaskEvent_Error{Error: e}
		size += len(e.Message)
	} else {
		te.Event = &pb.TaskEvent_Watch{Watch: ev}
		if r := ev.GetResult(); r != nil {
			size += len(r.Message)
		}
		if st := ev.GetState(); st != nil {
			size += len(st.Message)
		}
	}
	// Only the end of a task is waited for. Its ID, when Weir waits for
	// it (the first task on a gRPC stream), goes at once too, as the
	// stream's first message.
	q.mu.Lock()
	now := q.add(te, size) && (err != nil || ev.GetResult() != nil || !q.sent)
	q.mu.Unlock()
	if now {
		q.send()
	}
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
			q.due()
			return
		}
	}
	q.add(&pb.TaskEvent{Ref: ref, Event: &pb.TaskEvent_Watch{Watch: &pb.WatchEvent{Event: &pb.WatchEvent_Lines{Lines: &pb.Lines{Lines: []string{l}}}}}}, len(l)+16)
}

// add queues an event, unless nothing more is to be sent or the task's
// events are dropped; it says whether it did.
func (q *eventQueue) add(te *pb.TaskEvent, size int) bool {
	if q.err != nil || q.closed || q.stopped[te.Ref] {
		return false
	}
	q.events = append(q.events, te)
	q.size += size
	q.due()
	return true
}

// due makes sure what is queued goes within eventLag, or at once (by
// run) when much is.
func (q *eventQueue) due() {
	switch {
	case q.size >= flushBytes:
		q.signal()
	case !q.armed:
		q.armed = true
		q.lag.Reset(eventLag)
	}
}

// stop drops the queued events of the task ref and those it pushes later:
// Weir stopped watching it.
func (q *eventQueue) stop(ref uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped == nil {
		q.stopped = map[uint64]bool{}
	}
	q.stopped[ref] = true
	kept := q.events[:0]
	for _, e := range q.events {
		if e.Ref != ref {
			kept = append(kept, e)
		}
	}
	clear(q.events[len(kept):])
	q.events = kept
}

// forget forgets a stopped task once nothing more can be pushed for it.
func (q *eventQueue) forget(ref uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.stopped, ref)
}

// close makes run return once the queue is sent.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.lag.Stop()
	q.signal()
}

// send sends what is queued, unless another goroutine is sending (it
// sends it next).
func (q *eventQueue) send() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.sending && len(q.events) > 0 && q.err == nil {
		q.sending = true
		batch := q.events
		q.events, q.size, q.sent = nil, 0, true
		q.mu.Unlock()
		var err error
		for len(batch) > 0 && err == nil {
			n := chunk(batch)
			err = q.out.Send(&pb.TaskEvents{Events: batch[:n]})
			batch = batch[n:]
		}
		q.mu.Lock()
		q.sending = false
		if err != nil {
			q.err, q.events = err, nil
		}
	}
	if q.closed || q.err != nil {
		q.signal() // run may be waiting for this send to end
	}
}

// run sends what is queued when it is due, until the queue is closed and
// sent, or a send fails.
func (q *eventQueue) run() error {
	for {
		<-q.wake
		q.send()
		q.mu.Lock()
		err := q.err
		done := q.closed && !q.sending && len(q.events) == 0
		q.mu.Unlock()
		if err != nil {
			return err
		}
		if done {
			return nil
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
