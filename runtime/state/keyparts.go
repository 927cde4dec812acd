package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"
)

// RecordKeyParts stores the parts a succeeded execution's cache key was made
// of (see schema.Step.KeyParts).
func (db *DB) RecordKeyParts(ctx context.Context, execID int64, parts map[string]string) error {
	b, err := json.Marshal(parts)
	if err != nil {
		return err
	}
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(`INSERT OR REPLACE INTO key_parts (execution_id, parts) VALUES (?, ?)`, execID, string(b))
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

// TypicalDuration is the mean duration of the latest (at most five)
// succeeded executions at an address, for cost estimates; ok is false when
// the address never succeeded.
func (db *DB) TypicalDuration(ctx context.Context, address string) (time.Duration, bool) {
	rows, err := db.sql.QueryContext(ctx, `SELECT started, ended FROM executions
		WHERE address = ? AND status = 'succeeded' AND ended IS NOT NULL ORDER BY id DESC LIMIT 5`, address)
	if err != nil {
		return 0, false
	}
	defer rows.Close()
	var total time.Duration
	n := 0
	for rows.Next() {
		var s, e string
		if rows.Scan(&s, &e) != nil {
			continue
		}
		st, err1 := time.Parse(timeFormat, s)
		en, err2 := time.Parse(timeFormat, e)
		if err1 != nil || err2 != nil {
			continue
		}
		total += en.Sub(st)
		n++
	}
	if n == 0 {
		return 0, false
	}
	return total / time.Duration(n), true
}
