package state

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNestedWriteFails: a write inside another's fn (forbidden) fails
// after the queue timeout instead of waiting for ever.
func TestNestedWriteFails(t *testing.T) {
	defer func(d time.Duration) { queueTimeout = d }(queueTimeout)
	queueTimeout = 200 * time.Millisecond
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	defer db.Close()
	var inner error
	require.NoError(t, db.Update(ctx, func(tx *Tx) error {
		inner = db.Update(ctx, func(tx *Tx) error { return nil })
		return nil
	}))
	assert.ErrorContains(t, inner, "busy")
}
