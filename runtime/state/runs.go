package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"
)

// Status is the status of a run or an execution.
type Status string

// Statuses. A run is never Cached.
const (
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	// StatusCached: apply found a succeeded execution with the same cache
	// key and reused its outputs.
	StatusCached Status = "cached"
	// StatusInterrupted: the process recording it died (see MarkInterrupted).
	StatusInterrupted Status = "interrupted"
)

// Finished reports whether s is a final status.
func (s Status) Finished() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusCached, StatusInterrupted:
		return true
	}
	return false
}

// Run is one `weir apply` (or other command that executes steps).
type Run struct {
	ID           string
	Project      string
	SpecHash     string
	PlanChecksum string
	User         string
	// Host and PID identify the process recording the run; BeginRun fills
	// them in for this process when empty.
	Host string
	PID  int
	// LockID is the ID of the state lock the run holds ("" if none).
	LockID  string
	Command string
	Status  Status
	Started time.Time
	// Ended is zero while the run is running.
	Ended time.Time
}

// BeginRun records the start of a run with status running. r.ID must be new.
// A zero Started is now.
func (db *DB) BeginRun(ctx context.Context, r Run) error {
	if r.ID == "" {
		return errors.New("state: BeginRun needs a run ID")
	}
	if r.Host == "" {
		r.Host = db.host
	}
	if r.PID == 0 {
		r.PID = os.Getpid()
	}
	if r.User == "" {
		r.User = currentUser()
	}
	return db.Update(ctx, func(tx *Tx) error {
		if r.Started.IsZero() {
			r.Started = tx.now
		}
		var n int
		if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE id = ?`, r.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("state: run %s already exists", r.ID)
		}
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO runs (id, project, spec_hash, plan_checksum, user, host, pid, lock_id, command, status, started)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)`,
			r.ID, r.Project, r.SpecHash, r.PlanChecksum, r.User, r.Host, r.PID, r.LockID, r.Command, fmtTime(r.Started))
		return err
	})
}

// FinishRun records the end of a running run: status is succeeded, failed,
// cancelled or interrupted. A zero ended is now. Finishing a run twice is an
// error.
func (db *DB) FinishRun(ctx context.Context, id string, status Status, ended time.Time) error {
	if !status.Finished() || status == StatusCached {
		return fmt.Errorf("state: %q is not a final status of a run", status)
	}
	return db.Update(ctx, func(tx *Tx) error {
		if ended.IsZero() {
			ended = tx.now
		}
		var cur Status
		err := tx.tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("run %s does not exist", id)
		}
		if err != nil {
			return err
		}
		if cur != StatusRunning {
			return fmt.Errorf("state: run %s already ended (%s)", id, cur)
		}
		tx.runsChanged()
		_, err = tx.tx.ExecContext(ctx, `UPDATE runs SET status = ?, ended = ? WHERE id = ?`, status, fmtTime(ended), id)
		return err
	})
}

const runColumns = `id, project, spec_hash, plan_checksum, user, host, pid, lock_id, command, status, started, ended`

func scanRun(s interface{ Scan(...any) error }) (*Run, error) {
	var r Run
	var started string
	var ended sql.NullString
	if err := s.Scan(&r.ID, &r.Project, &r.SpecHash, &r.PlanChecksum, &r.User, &r.Host, &r.PID, &r.LockID, &r.Command, &r.Status, &started, &ended); err != nil {
		return nil, err
	}
	r.Started = parseTime(started)
	r.Ended = parseNullTime(ended)
	return &r, nil
}

// Run returns the run with this ID, or an error wrapping ErrNotFound.
func (db *DB) Run(ctx context.Context, id string) (*Run, error) {
	r, err := scanRun(db.sql.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("run %s does not exist", id)
	}
	return r, db.fail(err)
}

// Runs returns the latest runs, newest first; limit <= 0 means all.
func (db *DB) Runs(ctx context.Context, limit int) ([]*Run, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT `+runColumns+` FROM runs ORDER BY started DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, db.fail(err)
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, db.fail(err)
		}
		out = append(out, r)
	}
	return out, db.fail(rows.Err())
}

// MarkInterrupted finds runs left "running" by a process that is gone and
// marks them, and their running executions, interrupted. A running run is
// gone when
//
//   - it recorded a lock ID and the lock is now free or held by someone
//     else (every apply holds the lock while it runs), or
//   - it ran on this host and its pid no longer exists.
//
// Executions still running in a run that has ended are marked too. It
// returns how many runs and executions it marked. Call it after taking the
// lock, before starting a new run.
func (db *DB) MarkInterrupted(ctx context.Context) (runs, executions int, err error) {
	err = db.Update(ctx, func(tx *Tx) error {
		runs, executions = 0, 0
		held, locked, err := lockHolder(ctx, tx.tx)
		if err != nil {
			return err
		}
		rows, err := tx.tx.QueryContext(ctx, `SELECT id, host, pid, lock_id FROM runs WHERE status = 'running'`)
		if err != nil {
			return err
		}
		var gone []string
		for rows.Next() {
			var id, host, lockID string
			var pid int
			if err := rows.Scan(&id, &host, &pid, &lockID); err != nil {
				rows.Close()
				return err
			}
			lost := lockID != "" && (!locked || held.ID != lockID)
			dead := host == db.host && pid > 0 && !processAlive(pid)
			if lost || dead {
				gone = append(gone, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		now := fmtTime(tx.now)
		tx.runsChanged()
		for _, id := range gone {
			if _, err := tx.tx.ExecContext(ctx, `UPDATE runs SET status = 'interrupted', ended = ? WHERE id = ?`, now, id); err != nil {
				return err
			}
		}
		runs = len(gone)
		res, err := tx.tx.ExecContext(ctx, `UPDATE executions SET status = 'interrupted', ended = ?
			WHERE status = 'running' AND run_id IN (SELECT id FROM runs WHERE status != 'running')`, now)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		executions = int(n)
		return nil
	})
	return runs, executions, err
}
