package wire

import (
	"io"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "weir.dev/weir/plugins/proto"
)

// TestFrames: messages of any size up to MaxFrame come out as they went
// in, in order; io.EOF at a message's boundary is the other side closing;
// a larger message is refused.
func TestFrames(t *testing.T) {
	a, b := net.Pipe()
	w, r := NewFrames(a), NewFrames(b)
	msgs := []*pb.TaskEvents{
		{},
		{Events: []*pb.TaskEvent{{Ref: 1, Event: &pb.TaskEvent_Watch{Watch: &pb.WatchEvent{Event: &pb.WatchEvent_Lines{Lines: &pb.Lines{Lines: []string{strings.Repeat("x", 200<<10)}}}}}}}},
		{Events: []*pb.TaskEvent{{Ref: 2, Event: &pb.TaskEvent_Error{Error: &pb.TaskError{Code: 3, Message: "no"}}}}},
	}
	go func() {
		for _, m := range msgs {
			if !assert.NoError(t, w.Write(m)) {
				break
			}
		}
		a.Close()
	}()
	for _, want := range msgs {
		got := &pb.TaskEvents{}
		require.NoError(t, r.Read(got))
		assert.True(t, proto.Equal(want, got), "%v", got)
	}
	assert.ErrorIs(t, r.Read(&pb.TaskEvents{}), io.EOF)

	a, b = net.Pipe()
	go func() {
		a.Write(protowire.AppendVarint(nil, MaxFrame+1))
		a.Close()
	}()
	assert.Error(t, NewFrames(b).Read(&pb.TaskEvents{}), "a message over MaxFrame")
}
