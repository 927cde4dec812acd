package state

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnectionPragmas checks the per-connection settings on every
// connection of the pool, not just the first.
func TestConnectionPragmas(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	defer db.Close()
	var conns []interface{ Close() error }
	for range 3 {
		c, err := db.sql.Conn(ctx)
		require.NoError(t, err)
		conns = append(conns, c)
		var fk, sync, timeout int
		var mode string
		require.NoError(t, c.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk))
		require.NoError(t, c.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync))
		require.NoError(t, c.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&timeout))
		require.NoError(t, c.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
		assert.Equal(t, 1, fk, "foreign_keys")
		assert.Equal(t, 1, sync, "synchronous=NORMAL")
		assert.Equal(t, int(busyTimeout.Milliseconds()), timeout)
		assert.Equal(t, "wal", mode)
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestMigrationsApplied: a new database is at the latest schema version, and
// reopening an up-to-date one changes nothing.
func TestMigrationsApplied(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	for range 2 {
		db, err := Open(ctx, path)
		require.NoError(t, err)
		var v, rows int
		require.NoError(t, db.sql.QueryRowContext(ctx, `SELECT version, (SELECT count(*) FROM schema_version) FROM schema_version`).Scan(&v, &rows))
		assert.Equal(t, len(migrations), v)
		assert.Equal(t, 1, rows)
		db.Close()
	}
}
