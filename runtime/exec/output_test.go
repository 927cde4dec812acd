package exec_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/exec"
)

// An output whose name escapes its folder is refused before the step runs
// (the spec's names cannot, but a plan file can be written by hand).
func TestOutputNameEscapingIsRefused(t *testing.T) {
	e := newEnv(t)
	s := sh("tasks.escape", `echo x > "$WEIR_OUTPUT___X"`)
	s.Outputs = []string{"../x"}
	rep, err := e.apply(plan(s), nil)
	require.ErrorIs(t, err, exec.ErrFailed)
	assert.Contains(t, status(rep, "tasks.escape").Message, `output "../x"`)
}
