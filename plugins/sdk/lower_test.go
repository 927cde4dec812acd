package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/plugins/sdk"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// batchLowerer lowers in batches (backend.StepsLowerer) and records what
// each batch held.
type batchLowerer struct {
	*gated
	batches [][]string
	fail    error
}

func (b *batchLowerer) LowerSteps(_ context.Context, steps []*schema.Step) ([]json.RawMessage, []error, error) {
	if b.fail != nil {
		return nil, nil, b.fail
	}
	var addrs []string
	tasks, errs := make([]json.RawMessage, len(steps)), make([]error, len(steps))
	for i, s := range steps {
		addrs = append(addrs, s.Address)
		if s.Address == "tasks.refused" {
			errs[i] = errors.New("not here")
			continue
		}
		tasks[i] = json.RawMessage(fmt.Sprintf(`{"batch":%q}`, s.Address))
	}
	b.batches = append(b.batches, addrs)
	return tasks, errs, nil
}

func stepJSON(t *testing.T, addr string) []byte {
	b, err := json.Marshal(&schema.Step{Address: addr, Run: &schema.StepRun{Command: []string{"true"}}})
	require.NoError(t, err)
	return b
}

// TestLowerStepsBatch: a backend with its own LowerSteps gets the steps
// that decode in one call; each answer lands at its step's place, a step
// that does not decode and one the backend refuses get their own errors.
func TestLowerStepsBatch(t *testing.T) {
	b := &batchLowerer{gated: newGated(0)}
	srv := sdk.NewServer(b)
	req := &pb.LowerStepsRequest{StepsJson: [][]byte{stepJSON(t, "tasks.a"), []byte("{not json"), stepJSON(t, "tasks.refused"), stepJSON(t, "tasks.b")}}
	res, err := srv.LowerSteps(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, res.Lowered, 4)
	assert.Equal(t, [][]string{{"tasks.a", "tasks.refused", "tasks.b"}}, b.batches)
	assert.JSONEq(t, `{"batch":"tasks.a"}`, string(res.Lowered[0].TaskJson))
	assert.Equal(t, int32(codes.InvalidArgument), res.Lowered[1].GetError().GetCode())
	assert.Contains(t, res.Lowered[1].GetError().GetMessage(), "decoding the step")
	assert.Equal(t, int32(codes.InvalidArgument), res.Lowered[2].GetError().GetCode())
	assert.Equal(t, "not here", res.Lowered[2].GetError().GetMessage())
	assert.JSONEq(t, `{"batch":"tasks.b"}`, string(res.Lowered[3].TaskJson))

	// A batch that fails as a whole fails the call; one the backend does
	// not support says UNIMPLEMENTED, so that Weir lowers step by step.
	b.fail = errors.New("the cluster is out of reach")
	_, err = srv.LowerSteps(context.Background(), req)
	assert.Equal(t, codes.Unknown, status.Code(err))
	assert.Contains(t, err.Error(), "the cluster is out of reach")
	b.fail = fmt.Errorf("no batches: %w", backend.ErrUnsupported)
	_, err = srv.LowerSteps(context.Background(), req)
	assert.Equal(t, codes.Unimplemented, status.Code(err))
}

// addrLowerer lowers a step to its address.
type addrLowerer struct{ *gated }

func (addrLowerer) Lower(_ context.Context, s *schema.Step) (json.RawMessage, error) {
	return json.Marshal(map[string]string{"step": s.Address})
}

// TestLowerStepsOneByOne: a backend without its own LowerSteps is asked
// step by step, on every processor, and each answer lands at its place.
func TestLowerStepsOneByOne(t *testing.T) {
	srv := sdk.NewServer(addrLowerer{newGated(0)})
	var req pb.LowerStepsRequest
	for i := range 300 {
		req.StepsJson = append(req.StepsJson, stepJSON(t, fmt.Sprintf("tasks.t%d", i)))
	}
	res, err := srv.LowerSteps(context.Background(), &req)
	require.NoError(t, err)
	require.Len(t, res.Lowered, 300)
	for i, l := range res.Lowered {
		assert.JSONEq(t, fmt.Sprintf(`{"step":"tasks.t%d"}`, i), string(l.TaskJson), "step %d", i)
		assert.Nil(t, l.GetError(), "step %d", i)
	}
}
