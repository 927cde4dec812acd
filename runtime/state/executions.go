package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Execution is one attempt of one step in one run.
type Execution struct {
	ID       int64
	RunID    string
	Address  string
	Kind     string
	CacheKey string
	Backend  string
	Status   Status
	// Attempt counts from 1.
	Attempt int
	// ExitCode is the step program's exit code, when it ran to an exit.
	ExitCode int
	// Error says why a failed execution failed ("" otherwise).
	Error   string
	Started time.Time
	// Ended is zero while the execution is running.
	Ended   time.Time
	LogPath string
	// Outputs are the outputs of a succeeded or cached execution, sorted
	// by name; nil otherwise.
	Outputs []Output
}

// Output is one named output of an execution: a blob in the artifact store.
type Output struct {
	Name   string
	Digest string
	Size   int64
	IsDir  bool
}

// Metric is one metric value a step reported. Step orders values of the same
// metric (an epoch, an iteration); steps that report one value use 0.
type Metric struct {
	Name  string
	Value float64
	Step  int64
}

// ExecutionResult is how an execution ended.
type ExecutionResult struct {
	// Status is succeeded, failed, cancelled, cached or interrupted.
	Status   Status
	ExitCode int
	Error    string
	// Ended is the end time; zero is now.
	Ended time.Time
	// Outputs are recorded only for succeeded and cached executions.
	Outputs []Output
	// Params are the parameters the step ran with; values must encode as
	// JSON.
	Params map[string]any
	// Metrics may be recorded whatever the status (a failed trial's
	// partial curve is still useful).
	Metrics []Metric
	// KeyParts are the parts the execution's cache key was made of (see
	// RecordKeyParts); they are recorded, in the same transaction, only
	// for a succeeded or cached execution.
	KeyParts map[string]string
}

// Artifact is a blob the state knows about.
type Artifact struct {
	Digest  string
	Size    int64
	IsDir   bool
	Created time.Time
}

// StartExecution records the start of an execution in a running run, with
// status running, and returns its ID. A zero Started is now; a zero Attempt
// is 1. Status, Ended and Outputs of e are ignored.
func (db *DB) StartExecution(ctx context.Context, e Execution) (int64, error) {
	if e.Address == "" {
		return 0, errors.New("state: StartExecution needs a step address")
	}
	if e.Attempt == 0 {
		e.Attempt = 1
	}
	var id int64
	err := db.Update(ctx, func(tx *Tx) error {
		if e.Started.IsZero() {
			e.Started = tx.now
		}
		if err := tx.runIsRunning(e.RunID, e.Address); err != nil {
			return err
		}
		res, err := tx.exec(insertExecution, e.RunID, e.Address, e.Kind, e.CacheKey, e.Backend, StatusRunning, e.Attempt, 0, "", fmtTime(e.Started), nil, e.LogPath)
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	return id, err
}

const insertExecution = `INSERT INTO executions (run_id, address, kind, cache_key, backend, status, attempt, exit_code, error, started, ended, log_path)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// runIsRunning returns an error unless the run exists and is running.
func (t *Tx) runIsRunning(runID, address string) error {
	if t.sh != nil && t.sh.running[runID] {
		return nil
	}
	var st Status
	err := t.queryRow(`SELECT status FROM runs WHERE id = ?`, runID).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("run %q does not exist", runID)
	}
	if err != nil {
		return err
	}
	if st != StatusRunning {
		return fmt.Errorf("state: run %s is %s, not running; it cannot start %s", runID, st, address)
	}
	if t.sh != nil {
		if t.sh.running == nil {
			t.sh.running = map[string]bool{}
		}
		t.sh.running[runID] = true
	}
	return nil
}

// FinishExecution records how a running execution ended. Everything (the
// status, outputs, artifacts, params, metrics and, for a succeeded
// execution, the serial bump) is written in one transaction: a process
// killed meanwhile leaves the execution running, never half-recorded.
func (db *DB) FinishExecution(ctx context.Context, id int64, r ExecutionResult) error {
	params, parts, err := encodeResult(fmt.Sprintf("execution %d", id), r)
	if err != nil {
		return err
	}
	return db.Update(ctx, func(tx *Tx) error {
		ended := r.Ended
		if ended.IsZero() {
			ended = tx.now
		}
		var cur Status
		err := tx.queryRow(`SELECT status FROM executions WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("execution %d does not exist", id)
		}
		if err != nil {
			return err
		}
		if cur != StatusRunning {
			return fmt.Errorf("state: execution %d already ended (%s)", id, cur)
		}
		if _, err := tx.exec(`UPDATE executions SET status = ?, exit_code = ?, error = ?, ended = ? WHERE id = ?`,
			r.Status, r.ExitCode, r.Error, fmtTime(ended), id); err != nil {
			return err
		}
		if err := tx.recordResult(id, r, params, parts); err != nil {
			return err
		}
		if r.Status == StatusSucceeded {
			tx.changed = true
		}
		return nil
	})
}

// encodeResult checks an execution's result and encodes its params and key
// parts; what names the execution in errors.
func encodeResult(what string, r ExecutionResult) (params map[string]string, parts string, err error) {
	if !r.Status.Finished() {
		return nil, "", fmt.Errorf("state: %q is not a final status of an execution", r.Status)
	}
	if len(r.Outputs) > 0 && r.Status != StatusSucceeded && r.Status != StatusCached {
		return nil, "", fmt.Errorf("state: a %s execution has no outputs (only succeeded and cached ones do)", r.Status)
	}
	seen := map[string]bool{}
	for _, o := range r.Outputs {
		if o.Name == "" || o.Digest == "" {
			return nil, "", fmt.Errorf("state: output %q of %s needs a name and a digest", o.Name, what)
		}
		if seen[o.Name] {
			return nil, "", fmt.Errorf("state: %s lists output %q twice", what, o.Name)
		}
		seen[o.Name] = true
	}
	params = map[string]string{}
	for k, v := range r.Params {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, "", fmt.Errorf("state: param %q of %s: %w", k, what, err)
		}
		params[k] = string(b)
	}
	if len(r.KeyParts) > 0 && (r.Status == StatusSucceeded || r.Status == StatusCached) {
		b, err := json.Marshal(r.KeyParts)
		if err != nil {
			return nil, "", err
		}
		parts = string(b)
	}
	return params, parts, nil
}

// RecordExecution records an execution of a running run that has already
// ended, in one transaction: StartExecution and FinishExecution together,
// for a step too short to be worth recording as running first. A zero
// e.Started is now; e.Status, e.Ended and e.Outputs are ignored.
func (db *DB) RecordExecution(ctx context.Context, e Execution, r ExecutionResult) (int64, error) {
	if e.Address == "" {
		return 0, errors.New("state: RecordExecution needs a step address")
	}
	if e.Attempt == 0 {
		e.Attempt = 1
	}
	params, parts, err := encodeResult("execution of "+e.Address, r)
	if err != nil {
		return 0, err
	}
	var id int64
	err = db.Update(ctx, func(tx *Tx) error {
		if e.Started.IsZero() {
			e.Started = tx.now
		}
		ended := r.Ended
		if ended.IsZero() {
			ended = tx.now
		}
		if err := tx.runIsRunning(e.RunID, e.Address); err != nil {
			return err
		}
		res, err := tx.exec(insertExecution, e.RunID, e.Address, e.Kind, e.CacheKey, e.Backend, r.Status, e.Attempt, r.ExitCode, r.Error,
			fmtTime(e.Started), fmtTime(ended), e.LogPath)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		if err := tx.recordResult(id, r, params, parts); err != nil {
			return err
		}
		if r.Status == StatusSucceeded {
			tx.changed = true
		}
		return nil
	})
	return id, err
}

// recordResult writes an ended execution's outputs, params, metrics and key
// parts (JSON, "" for none).
func (t *Tx) recordResult(id int64, r ExecutionResult, params map[string]string, parts string) error {
	for _, o := range r.Outputs {
		if _, err := t.exec(`INSERT INTO artifacts (digest, size, is_dir, created) VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
			o.Digest, o.Size, boolInt(o.IsDir), fmtTime(t.now)); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO outputs (execution_id, name, digest, size, is_dir) VALUES (?, ?, ?, ?, ?)`,
			id, o.Name, o.Digest, o.Size, boolInt(o.IsDir)); err != nil {
			return err
		}
	}
	for k, v := range params {
		if _, err := t.exec(`INSERT INTO params (execution_id, name, value) VALUES (?, ?, ?)`, id, k, v); err != nil {
			return err
		}
	}
	for i, m := range r.Metrics {
		var v any = m.Value
		if math.IsNaN(m.Value) {
			v = nil
		}
		if _, err := t.exec(`INSERT INTO metrics (execution_id, seq, name, step, value) VALUES (?, ?, ?, ?, ?)`,
			id, i, m.Name, m.Step, v); err != nil {
			return err
		}
	}
	if parts != "" {
		if _, err := t.exec(`INSERT OR REPLACE INTO key_parts (execution_id, parts) VALUES (?, ?)`, id, parts); err != nil {
			return err
		}
	}
	return nil
}

// ReuseExecution records, in one transaction, that a running run reused the
// result of the succeeded execution from: a new execution with status
// cached and from's outputs, params and metrics, plus the key parts (nil:
// none). e says where and when (its Status, Ended and Outputs are ignored;
// a zero Started is now). It is StartExecution then FinishExecution with
// status cached, without the window between them in which a killed process
// leaves a running execution, and without reading the result back first.
func (db *DB) ReuseExecution(ctx context.Context, from int64, e Execution, keyParts map[string]string) (int64, error) {
	if e.Address == "" {
		return 0, errors.New("state: ReuseExecution needs a step address")
	}
	if e.Attempt == 0 {
		e.Attempt = 1
	}
	var parts string
	if len(keyParts) > 0 {
		b, err := json.Marshal(keyParts)
		if err != nil {
			return 0, err
		}
		parts = string(b)
	}
	var id int64
	err := db.Update(ctx, func(tx *Tx) error {
		if e.Started.IsZero() {
			e.Started = tx.now
		}
		if err := tx.runIsRunning(e.RunID, e.Address); err != nil {
			return err
		}
		var st Status
		err := tx.queryRow(`SELECT status FROM executions WHERE id = ?`, from).Scan(&st)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("execution %d does not exist", from)
		}
		if err != nil {
			return err
		}
		if st != StatusSucceeded {
			return fmt.Errorf("state: execution %d is %s: only a succeeded execution's result can be reused", from, st)
		}
		res, err := tx.exec(insertExecution, e.RunID, e.Address, e.Kind, e.CacheKey, e.Backend, StatusCached, e.Attempt, 0, "", fmtTime(e.Started), fmtTime(tx.now), e.LogPath)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		if _, err := tx.exec(`INSERT INTO outputs (execution_id, name, digest, size, is_dir) SELECT ?, name, digest, size, is_dir FROM outputs WHERE execution_id = ?`, id, from); err != nil {
			return err
		}
		if _, err := tx.exec(`INSERT INTO params (execution_id, name, value) SELECT ?, name, value FROM params WHERE execution_id = ?`, id, from); err != nil {
			return err
		}
		if _, err := tx.exec(`INSERT INTO metrics (execution_id, seq, name, step, value) SELECT ?, seq, name, step, value FROM metrics WHERE execution_id = ?`, id, from); err != nil {
			return err
		}
		if parts != "" {
			if _, err := tx.exec(`INSERT OR REPLACE INTO key_parts (execution_id, parts) VALUES (?, ?)`, id, parts); err != nil {
				return err
			}
		}
		return nil
	})
	return id, err
}

const execColumns = `e.id, e.run_id, e.address, e.kind, e.cache_key, e.backend, e.status, e.attempt, e.exit_code, e.error, e.started, e.ended, e.log_path`

// queryExecutions runs a query selecting execColumns followed by the output
// columns of a LEFT JOIN on outputs, ordered by execution then output name,
// and assembles the executions.
func queryExecutions(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, query string, args ...any) ([]*Execution, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Execution
	var last *Execution
	for rows.Next() {
		var e Execution
		var started string
		var ended, oname, odigest sql.NullString
		var osize, odir sql.NullInt64
		if err := rows.Scan(&e.ID, &e.RunID, &e.Address, &e.Kind, &e.CacheKey, &e.Backend, &e.Status, &e.Attempt, &e.ExitCode, &e.Error, &started, &ended, &e.LogPath,
			&oname, &odigest, &osize, &odir); err != nil {
			return nil, err
		}
		if last == nil || last.ID != e.ID {
			e.Started = parseTime(started)
			e.Ended = parseNullTime(ended)
			last = &e
			out = append(out, last)
		}
		if oname.Valid {
			last.Outputs = append(last.Outputs, Output{Name: oname.String, Digest: odigest.String, Size: osize.Int64, IsDir: odir.Int64 != 0})
		}
	}
	return out, rows.Err()
}

const execWithOutputs = `SELECT ` + execColumns + `, o.name, o.digest, o.size, o.is_dir FROM executions e LEFT JOIN outputs o ON o.execution_id = e.id `

// Execution returns the execution with this ID and its outputs, or an error
// wrapping ErrNotFound.
func (db *DB) Execution(ctx context.Context, id int64) (*Execution, error) {
	es, err := queryExecutions(ctx, db.sql, execWithOutputs+`WHERE e.id = ? ORDER BY o.name`, id)
	if err != nil {
		return nil, db.fail(err)
	}
	if len(es) == 0 {
		return nil, notFound("execution %d does not exist", id)
	}
	return es[0], nil
}

// Executions returns the executions of a run in the order they started,
// with their outputs.
func (db *DB) Executions(ctx context.Context, runID string) ([]*Execution, error) {
	es, err := queryExecutions(ctx, db.sql, execWithOutputs+`WHERE e.run_id = ? ORDER BY e.id, o.name`, runID)
	return es, db.fail(err)
}

// LookupCache returns the latest succeeded execution with this cache key, at
// any address, with its outputs; ok is false when there is none. It is one
// probe of a partial index with a prepared statement. The caller checks that
// the outputs are still in the artifact store.
func (db *DB) LookupCache(ctx context.Context, cacheKey string) (e *Execution, ok bool, err error) {
	es, err := queryExecutions(ctx, stmtQuerier{db.lookup}, "", cacheKey)
	if err != nil {
		return nil, false, db.fail(err)
	}
	if len(es) == 0 {
		return nil, false, nil
	}
	return es[0], true, nil
}

// lookupQuery is LookupCache's statement. status = 'succeeded' must stay a
// literal: it is what lets SQLite use the partial index executions_cache.
const lookupQuery = execWithOutputs + `WHERE e.id = (
	SELECT id FROM executions WHERE cache_key = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1)
	ORDER BY o.name`

// stmtQuerier runs a prepared statement through queryExecutions (which then
// ignores its query text).
type stmtQuerier struct{ s *sql.Stmt }

func (q stmtQuerier) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return q.s.QueryContext(ctx, args...)
}

// LookupCacheMany is LookupCache for many keys at once: the result maps each
// key that has a succeeded execution to the latest one.
func (db *DB) LookupCacheMany(ctx context.Context, keys []string) (map[string]*Execution, error) {
	out := map[string]*Execution{}
	const chunk = 500
	for len(keys) > 0 {
		n := min(chunk, len(keys))
		part := keys[:n]
		keys = keys[n:]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		marks := strings.Repeat(",?", len(part))[1:]
		es, err := queryExecutions(ctx, db.sql, execWithOutputs+`WHERE e.id IN (
			SELECT max(id) FROM executions WHERE status = 'succeeded' AND cache_key IN (`+marks+`) GROUP BY cache_key)
			ORDER BY e.id, o.name`, args...)
		if err != nil {
			return nil, db.fail(err)
		}
		for _, e := range es {
			out[e.CacheKey] = e
		}
	}
	return out, nil
}

// Params returns the params an execution ran with, decoded from JSON
// (numbers are float64).
func (db *DB) Params(ctx context.Context, execID int64) (map[string]any, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, value FROM params WHERE execution_id = ?`, execID)
	if err != nil {
		return nil, db.fail(err)
	}
	defer rows.Close()
	out := map[string]any{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, db.fail(err)
		}
		var v any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			return nil, fmt.Errorf("state %s: param %q of execution %d is not JSON: %w", db.path, name, execID, err)
		}
		out[name] = v
	}
	return out, db.fail(rows.Err())
}

// Metrics returns the metrics an execution reported, in the order reported.
// A NaN value round-trips as NaN.
func (db *DB) Metrics(ctx context.Context, execID int64) ([]Metric, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, step, value FROM metrics WHERE execution_id = ? ORDER BY seq`, execID)
	if err != nil {
		return nil, db.fail(err)
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		var m Metric
		var v sql.NullFloat64
		if err := rows.Scan(&m.Name, &m.Step, &v); err != nil {
			return nil, db.fail(err)
		}
		m.Value = math.NaN()
		if v.Valid {
			m.Value = v.Float64
		}
		out = append(out, m)
	}
	return out, db.fail(rows.Err())
}

// Artifact returns what the state knows about a blob, or an error wrapping
// ErrNotFound.
func (db *DB) Artifact(ctx context.Context, digest string) (*Artifact, error) {
	var a Artifact
	var isDir int
	var created string
	err := db.sql.QueryRowContext(ctx, `SELECT digest, size, is_dir, created FROM artifacts WHERE digest = ?`, digest).Scan(&a.Digest, &a.Size, &isDir, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("artifact %s is not recorded in the state", digest)
	}
	if err != nil {
		return nil, db.fail(err)
	}
	a.IsDir = isDir != 0
	a.Created = parseTime(created)
	return &a, nil
}

// ReferencedDigests returns every digest the state still refers to (outputs
// of executions and artifacts of model versions): what artifact GC must
// keep.
func (db *DB) ReferencedDigests(ctx context.Context) (map[string]bool, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT digest FROM outputs UNION SELECT artifact_digest FROM model_versions`)
	if err != nil {
		return nil, db.fail(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, db.fail(err)
		}
		out[d] = true
	}
	return out, db.fail(rows.Err())
}
