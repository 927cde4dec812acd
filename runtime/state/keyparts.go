package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
)

// RecordKeyParts stores the parts a succeeded execution's cache key was made
// of (see schema.Step.KeyParts).
func (db *DB) RecordKeyParts(ctx context.Context, execID int64, parts map[string]string) error {
	b, err := json.Marshal(parts)
	if err != nil {
		return err
	}
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `INSERT OR REPLACE INTO key_parts (execution_id, parts) VALUES (?, ?)`, execID, string(b))
		return err
	})
}

// LastKeyParts returns the key parts of the latest succeeded or reused
// execution at an address, so a plan can say which part changed.
func (db *DB) LastKeyParts(ctx context.Context, address string) (map[string]string, bool) {
	var raw string
	err := db.sql.QueryRowContext(ctx, `SELECT k.parts FROM executions e JOIN key_parts k ON k.execution_id = e.id
		WHERE e.address = ? AND e.status IN ('succeeded', 'cached') ORDER BY e.id DESC LIMIT 1`, address).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) || err != nil {
		return nil, false
	}
	var parts map[string]string
	if json.Unmarshal([]byte(raw), &parts) != nil {
		return nil, false
	}
	return parts, true
}

// Models lists the names of the models that have versions, sorted.
func (t *Tx) Models() ([]string, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT DISTINCT model FROM model_versions ORDER BY model`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
