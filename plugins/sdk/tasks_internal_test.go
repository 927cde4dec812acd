package sdk

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	pb "weir.dev/weir/plugins/proto"
)

// sink is a stream that keeps what is sent.
type sink struct {
	mu   sync.Mutex
	msgs []*pb.TaskEvents
}

func (s *sink) Send(m *pb.TaskEvents) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func submitted(id string) *pb.WatchEvent {
	return &pb.WatchEvent{Event: &pb.WatchEvent_Submitted{Submitted: &pb.Submitted{Id: id}}}
}

// TestEventQueueBatches: the stream's first event goes at once; then what
// nothing waits for (IDs, lines) waits for a task's end, which takes it
// along in one message, a task's consecutive lines in one event.
func TestEventQueueBatches(t *testing.T) {
	var s sink
	q := newEventQueue(&s)
	q.push(1, submitted("a"), nil)
	require.Equal(t, 1, s.count(), "the first event goes at once")
	q.line(1, "a1")
	q.line(1, "a2")
	q.push(2, submitted("b"), nil)
	q.line(2, "b1")
	q.line(1, "a3")
	assert.Equal(t, 1, s.count(), "IDs and lines wait")
	q.push(2, &pb.WatchEvent{Event: &pb.WatchEvent_Result{Result: &pb.Result{State: pb.State_STATE_SUCCEEDED}}}, nil)
	require.Equal(t, 2, s.count(), "a task's end goes at once, with what waited")
	ev := s.msgs[1].Events
	require.Len(t, ev, 5)
	assert.Equal(t, []string{"a1", "a2"}, ev[0].GetWatch().GetLines().GetLines())
	assert.Equal(t, "b", ev[1].GetWatch().GetSubmitted().GetId())
	assert.Equal(t, []string{"b1"}, ev[2].GetWatch().GetLines().GetLines())
	assert.Equal(t, []string{"a3"}, ev[3].GetWatch().GetLines().GetLines())
	assert.NotNil(t, ev[4].GetWatch().GetResult())

	q.close()
	require.NoError(t, q.run())
}

// TestEventQueueLag: what nothing waits for goes within eventLag, sent by
// run.
func TestEventQueueLag(t *testing.T) {
	var s sink
	q := newEventQueue(&s)
	done := make(chan error, 1)
	go func() { done <- q.run() }()
	q.push(1, submitted("a"), nil)
	q.line(1, "late")
	start := time.Now()
	require.Eventually(t, func() bool { return s.count() == 2 }, 5*time.Second, time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), eventLag/2, "it waited for more")
	assert.Equal(t, []string{"late"}, s.msgs[1].Events[0].GetWatch().GetLines().GetLines())
	q.close()
	require.NoError(t, <-done)
}

// TestEventQueueChunks: at most maxBatchEvents events per message, in
// order; close sends what is left.
func TestEventQueueChunks(t *testing.T) {
	var s sink
	q := newEventQueue(&s)
	q.push(1, submitted("first"), nil)
	n := 2*maxBatchEvents + 10
	for i := range n {
		q.push(uint64(i+2), submitted(strconv.Itoa(i)), nil)
	}
	q.close()
	require.NoError(t, q.run())
	require.Len(t, s.msgs, 4)
	assert.Len(t, s.msgs[1].Events, maxBatchEvents)
	assert.Len(t, s.msgs[3].Events, 10)
	assert.Equal(t, uint64(n+1), s.msgs[3].Events[9].Ref, "in order")
}

// TestEventQueueStop: once Weir stops watching a task, its queued events
// and any it pushes later are dropped; the others' go on.
func TestEventQueueStop(t *testing.T) {
	var s sink
	q := newEventQueue(&s)
	q.push(1, submitted("first"), nil)
	q.push(2, submitted("a"), nil)
	q.line(2, "a1")
	q.push(3, submitted("b"), nil)
	q.stop(2)
	q.line(2, "a2")
	q.push(2, &pb.WatchEvent{Event: &pb.WatchEvent_Result{Result: &pb.Result{}}}, nil)
	q.push(3, &pb.WatchEvent{Event: &pb.WatchEvent_Result{Result: &pb.Result{}}}, nil)
	require.Equal(t, 2, s.count())
	for _, e := range s.msgs[1].Events {
		assert.Equal(t, uint64(3), e.Ref)
	}
	assert.Len(t, s.msgs[1].Events, 2)
	q.forget(2)
	q.close()
	require.NoError(t, q.run())
}
