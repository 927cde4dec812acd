package sdk

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	pb "weir.dev/weir/plugins/proto"
)

// sink is a Tasks stream that keeps what is sent.
type sink struct {
	grpc.ServerStream
	msgs []*pb.TaskEvents
}

func (s *sink) Send(m *pb.TaskEvents) error    { s.msgs = append(s.msgs, m); return nil }
func (s *sink) Recv() (*pb.TaskRequest, error) { panic("not used") }

// TestEventQueueBatches: what queued up while the sender was busy goes in
// one message, a task's consecutive lines in one event, at most
// maxBatchEvents events per message.
func TestEventQueueBatches(t *testing.T) {
	q := newEventQueue()
	q.push(1, &pb.WatchEvent{Event: &pb.WatchEvent_Submitted{Submitted: &pb.Submitted{Id: "a"}}}, nil)
	q.line(1, "a1")
	q.line(1, "a2")
	q.line(2, "b1")
	q.line(1, "a3")
	q.close()
	var s sink
	require.NoError(t, q.run(&s))
	require.Len(t, s.msgs, 1)
	ev := s.msgs[0].Events
	require.Len(t, ev, 4)
	assert.Equal(t, "a", ev[0].GetWatch().GetSubmitted().GetId())
	assert.Equal(t, []string{"a1", "a2"}, ev[1].GetWatch().GetLines().GetLines())
	assert.Equal(t, uint64(2), ev[2].Ref)
	assert.Equal(t, []string{"a3"}, ev[3].GetWatch().GetLines().GetLines())

	q = newEventQueue()
	n := 2*maxBatchEvents + 10
	for i := range n {
		q.push(uint64(i+1), &pb.WatchEvent{Event: &pb.WatchEvent_Submitted{Submitted: &pb.Submitted{Id: strconv.Itoa(i)}}}, nil)
	}
	q.close()
	s = sink{}
	require.NoError(t, q.run(&s))
	require.Len(t, s.msgs, 3)
	assert.Len(t, s.msgs[0].Events, maxBatchEvents)
	assert.Len(t, s.msgs[2].Events, 10)
	assert.Equal(t, uint64(n), s.msgs[2].Events[9].Ref, "in order")
}
