package compiler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/schema"
)

// TestLowerPassBatchesByBackend: the lower pass hands each backend all of
// its steps in one call, in the plan's order; each step gets its task, and
// the steps its backend refused get errors at their own lines, in the
// plan's order.
func TestLowerPassBatchesByBackend(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "weir.cue", `project: "lower"
backends: {
	a: kind: "local"
	b: kind: "local"
}
defaults: backend: "a"
tasks: {
	t1: command: ["true", "1"]
	t2: {command: ["true", "2"], backend: "b"}
	t3: command: ["no", "3"]
	t4: {command: ["no", "4"], backend: "b"}
	t5: command: ["true", "5"]
}
`)
	calls := map[string][]string{}
	refuse := true
	lower := func(_ context.Context, name string, cfg *schema.Backend, steps []*schema.Step) ([]json.RawMessage, []error, error) {
		require.NotNil(t, cfg)
		tasks, errs := make([]json.RawMessage, len(steps)), make([]error, len(steps))
		for i, s := range steps {
			calls[name] = append(calls[name], s.Address)
			if refuse && s.Run.Command[0] == "no" {
				errs[i] = errors.New("refused")
				continue
			}
			tasks[i] = json.RawMessage(fmt.Sprintf(`{"on":%q}`, name))
		}
		return tasks, errs, nil
	}
	_, ds := Compile(context.Background(), Options{Dir: dir, Lower: lower})
	assert.Equal(t, map[string][]string{
		"a": {"tasks.t1", "tasks.t3", "tasks.t5"},
		"b": {"tasks.t2", "tasks.t4"},
	}, calls, "one call per backend, its steps in the plan's order")

	var errs []string
	for _, d := range ds {
		if d.Code == "lower" {
			require.NotNil(t, d.Range, d.Summary)
			errs = append(errs, fmt.Sprintf("%s line %d: %s", d.Address, d.Range.Start.Line, d.Summary))
		}
	}
	assert.Equal(t, []string{
		"tasks.t3 line 10: tasks.t3: refused",
		"tasks.t4 line 11: tasks.t4: refused",
	}, errs)

	refuse = false
	res, ds := Compile(context.Background(), Options{Dir: dir, Lower: lower})
	require.False(t, ds.HasErrors(), "%v", ds)
	tasks := map[string]string{}
	for _, s := range res.Plan.Steps {
		tasks[s.Address] = string(s.Task)
	}
	assert.Equal(t, `{"on":"a"}`, tasks["tasks.t1"])
	assert.Equal(t, `{"on":"b"}`, tasks["tasks.t2"])
	assert.Equal(t, `{"on":"b"}`, tasks["tasks.t4"])
	assert.Equal(t, `{"on":"a"}`, tasks["tasks.t5"])
}

// TestLowerPassBackendFails: a backend that cannot lower any of its steps
// (its plugin does not start) is one error, at its kind in the spec, not
// one per step; the other backends' steps are lowered all the same.
func TestLowerPassBackendFails(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "weir.cue", `project: "lower"
backends: {
	a: kind: "local"
	b: kind: "nomad"
}
defaults: backend: "b"
tasks: {
	t1: command: ["true", "1"]
	t2: {command: ["true", "2"], backend: "a"}
	t3: {command: ["no", "3"], backend: "a"}
	t4: command: ["true", "4"]
}
`)
	lower := func(_ context.Context, name string, _ *schema.Backend, steps []*schema.Step) ([]json.RawMessage, []error, error) {
		if name == "b" {
			return nil, nil, errors.New(`backend b is of kind "nomad", which this weir cannot run`)
		}
		tasks, errs := make([]json.RawMessage, len(steps)), make([]error, len(steps))
		for i, s := range steps {
			if s.Run.Command[0] == "no" {
				errs[i] = errors.New("refused")
			}
			tasks[i] = json.RawMessage(`{}`)
		}
		return tasks, errs, nil
	}
	_, ds := Compile(context.Background(), Options{Dir: dir, Lower: lower})
	var got []string
	for _, d := range ds {
		require.NotNil(t, d.Range, d.Summary)
		got = append(got, fmt.Sprintf("%s %d:%d: %s", d.Address, d.Range.Start.Line, d.Range.Start.Column, d.Summary))
	}
	assert.Equal(t, []string{
		`backends.b 4:5: backend b is of kind "nomad", which this weir cannot run`,
		"tasks.t3 10:2: tasks.t3: refused",
	}, got)
}
