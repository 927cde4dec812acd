package state

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ModelStatus is the status of a model version.
type ModelStatus string

// Model version statuses.
const (
	// ModelCandidate: every gate held; the version may be approved and
	// promoted.
	ModelCandidate ModelStatus = "candidate"
	// ModelRejected: a gate failed; the version can be neither approved
	// nor promoted.
	ModelRejected ModelStatus = "rejected"
	// ModelApproved: a candidate someone approved.
	ModelApproved ModelStatus = "approved"
)

// ModelVersion is one registered version of a model.
type ModelVersion struct {
	Model string
	// Version numbers start at 1 and count up per model.
	Version int
	// ExecutionID and RunID say which execution produced the version (0
	// and "" when unknown).
	ExecutionID    int64
	RunID          string
	ArtifactDigest string
	Status         ModelStatus
	// Gates are the gate checks at registration, in metric order.
	Gates   []GateResult
	Metrics map[string]float64
	Lineage Lineage
	Created time.Time
}

// GateResult is the outcome of one quality gate.
type GateResult struct {
	Metric string
	// Rule is the gate as written in the spec (">=0.80").
	Rule string
	// Value is the metric's value; Reported is false when the metric was
	// missing (and Value is then 0).
	Value    float64
	Reported bool
	Passed   bool
	// Message says why a failed gate failed.
	Message string
}

// Lineage is where a model version came from.
type Lineage struct {
	Datasets   []DatasetRef   `json:"datasets,omitempty"`
	CodeDigest string         `json:"code_digest,omitempty"`
	Image      string         `json:"image,omitempty"`
	SpecHash   string         `json:"spec_hash,omitempty"`
	GitCommit  string         `json:"git_commit,omitempty"`
	Params     map[string]any `json:"params,omitempty"`
}

// DatasetRef is a dataset (or feature set) a model was trained on, by
// address and content digest.
type DatasetRef struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// Approval is one approval of a model version.
type Approval struct {
	Model    string
	Version  int
	Approver string
	Comment  string
	Time     time.Time
}

// AliasChange is one move of an alias (a promotion or a rollback).
type AliasChange struct {
	ID      int64
	Model   string
	Alias   string
	Version int
	// Previous is the version the alias pointed at before (0: none).
	Previous int
	// Action is "promote" or "rollback".
	Action string
	Actor  string
	Time   time.Time
}

// JSON cannot hold NaN or ±Inf; metric values are stored as numbers, or as
// the strings "NaN", "+Inf" and "-Inf".
func encodeFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return f
}

func decodeFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err == nil {
			return f
		}
	}
	return math.NaN()
}

// storedGate is a GateResult as stored in model_versions.gates.
type storedGate struct {
	Metric   string `json:"metric"`
	Rule     string `json:"rule"`
	Value    any    `json:"value,omitempty"`
	Reported bool   `json:"reported"`
	Passed   bool   `json:"passed"`
	Message  string `json:"message,omitempty"`
}

func encodeModelJSON(mv *ModelVersion) (gates, metrics, lineage string, err error) {
	sg := make([]storedGate, len(mv.Gates))
	for i, g := range mv.Gates {
		sg[i] = storedGate{Metric: g.Metric, Rule: g.Rule, Reported: g.Reported, Passed: g.Passed, Message: g.Message}
		if g.Reported {
			sg[i].Value = encodeFloat(g.Value)
		}
	}
	m := map[string]any{}
	for k, v := range mv.Metrics {
		m[k] = encodeFloat(v)
	}
	var b [3][]byte
	for i, v := range []any{sg, m, mv.Lineage} {
		if b[i], err = json.Marshal(v); err != nil {
			return "", "", "", fmt.Errorf("state: model %s: %w", mv.Model, err)
		}
	}
	return string(b[0]), string(b[1]), string(b[2]), nil
}

func decodeModelJSON(mv *ModelVersion, gates, metrics, lineage string) error {
	var sg []storedGate
	var m map[string]any
	if err := json.Unmarshal([]byte(gates), &sg); err != nil {
		return fmt.Errorf("gates of model %s version %d: %w", mv.Model, mv.Version, err)
	}
	if err := json.Unmarshal([]byte(metrics), &m); err != nil {
		return fmt.Errorf("metrics of model %s version %d: %w", mv.Model, mv.Version, err)
	}
	if err := json.Unmarshal([]byte(lineage), &mv.Lineage); err != nil {
		return fmt.Errorf("lineage of model %s version %d: %w", mv.Model, mv.Version, err)
	}
	for _, g := range sg {
		r := GateResult{Metric: g.Metric, Rule: g.Rule, Reported: g.Reported, Passed: g.Passed, Message: g.Message}
		if r.Reported {
			r.Value = decodeFloat(g.Value)
		}
		mv.Gates = append(mv.Gates, r)
	}
	mv.Metrics = map[string]float64{}
	for k, v := range m {
		mv.Metrics[k] = decodeFloat(v)
	}
	return nil
}

const modelColumns = `model, version, execution_id, run_id, artifact_digest, status, gates, metrics, lineage, created`

func (t *Tx) scanModels(query string, args ...any) ([]*ModelVersion, error) {
	rows, err := t.tx.QueryContext(t.ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ModelVersion
	for rows.Next() {
		var mv ModelVersion
		var exec sql.NullInt64
		var run sql.NullString
		var gates, metrics, lineage, created string
		if err := rows.Scan(&mv.Model, &mv.Version, &exec, &run, &mv.ArtifactDigest, &mv.Status, &gates, &metrics, &lineage, &created); err != nil {
			return nil, err
		}
		mv.ExecutionID = exec.Int64
		mv.RunID = run.String
		mv.Created = parseTime(created)
		if err := decodeModelJSON(&mv, gates, metrics, lineage); err != nil {
			return nil, fmt.Errorf("state %s: %w", t.db.path, err)
		}
		out = append(out, &mv)
	}
	return out, rows.Err()
}

// ModelVersion returns one version of a model, or an error wrapping
// ErrNotFound.
func (t *Tx) ModelVersion(model string, version int) (*ModelVersion, error) {
	mvs, err := t.scanModels(`SELECT `+modelColumns+` FROM model_versions WHERE model = ? AND version = ?`, model, version)
	if err != nil {
		return nil, err
	}
	if len(mvs) == 0 {
		return nil, notFound("model %s has no version %d", model, version)
	}
	return mvs[0], nil
}

// ModelVersions returns every version of a model, oldest first (none for a
// model never registered).
func (t *Tx) ModelVersions(model string) ([]*ModelVersion, error) {
	return t.scanModels(`SELECT `+modelColumns+` FROM model_versions WHERE model = ? ORDER BY version`, model)
}

// AddModelVersion registers a new version of mv.Model: it numbers it (one
// more than the model's latest), stamps Created and returns the stored
// version. mv.Version and mv.Created are ignored.
func (t *Tx) AddModelVersion(mv ModelVersion) (*ModelVersion, error) {
	if err := t.writable(); err != nil {
		return nil, err
	}
	if mv.Model == "" || mv.ArtifactDigest == "" {
		return nil, errors.New("state: a model version needs a model name and an artifact digest")
	}
	switch mv.Status {
	case ModelCandidate, ModelRejected, ModelApproved:
	default:
		return nil, fmt.Errorf("state: %q is not a model version status", mv.Status)
	}
	if err := t.tx.QueryRowContext(t.ctx, `SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model = ?`, mv.Model).Scan(&mv.Version); err != nil {
		return nil, err
	}
	mv.Created = t.now
	gates, metrics, lineage, err := encodeModelJSON(&mv)
	if err != nil {
		return nil, err
	}
	if _, err := t.tx.ExecContext(t.ctx, `INSERT INTO model_versions (`+modelColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		mv.Model, mv.Version, nullInt(mv.ExecutionID), nullString(mv.RunID), mv.ArtifactDigest, mv.Status, gates, metrics, lineage, fmtTime(mv.Created)); err != nil {
		return nil, err
	}
	t.changed = true
	return &mv, nil
}

// SetModelStatus changes the status of a model version.
func (t *Tx) SetModelStatus(model string, version int, status ModelStatus) error {
	if err := t.writable(); err != nil {
		return err
	}
	res, err := t.tx.ExecContext(t.ctx, `UPDATE model_versions SET status = ? WHERE model = ? AND version = ?`, status, model, version)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("model %s has no version %d", model, version)
	}
	t.changed = true
	return nil
}

// AddApproval records an approval (a.Time is the transaction's time). It
// reports false, and changes nothing, when a.Approver had already approved
// this version.
func (t *Tx) AddApproval(a Approval) (added bool, err error) {
	if err := t.writable(); err != nil {
		return false, err
	}
	res, err := t.tx.ExecContext(t.ctx, `INSERT INTO approvals (model, version, approver, comment, created) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (model, version, approver) DO NOTHING`, a.Model, a.Version, a.Approver, a.Comment, fmtTime(t.now))
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		t.changed = true
	}
	return n > 0, nil
}

// Approvals returns the approvals of a model version, oldest first.
func (t *Tx) Approvals(model string, version int) ([]Approval, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT model, version, approver, comment, created FROM approvals WHERE model = ? AND version = ? ORDER BY id`, model, version)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		var a Approval
		var created string
		if err := rows.Scan(&a.Model, &a.Version, &a.Approver, &a.Comment, &created); err != nil {
			return nil, err
		}
		a.Time = parseTime(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Alias returns the version an alias points at, or an error wrapping
// ErrNotFound.
func (t *Tx) Alias(model, alias string) (int, error) {
	var v int
	err := t.tx.QueryRowContext(t.ctx, `SELECT version FROM aliases WHERE model = ? AND alias = ?`, model, alias).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound("model %s has no alias %q", model, alias)
	}
	return v, err
}

// Aliases returns every alias of a model and the version it points at.
func (t *Tx) Aliases(model string) (map[string]int, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT alias, version FROM aliases WHERE model = ?`, model)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var a string
		var v int
		if err := rows.Scan(&a, &v); err != nil {
			return nil, err
		}
		out[a] = v
	}
	return out, rows.Err()
}

// SetAlias points alias at version and records the move in the alias
// history. It returns nil, and changes nothing, when the alias already
// points there. The version must exist.
func (t *Tx) SetAlias(model, alias string, version int, actor string) (*AliasChange, error) {
	if err := t.writable(); err != nil {
		return nil, err
	}
	if _, err := t.ModelVersion(model, version); err != nil {
		return nil, err
	}
	cur, curID, ok, err := t.aliasRow(model, alias)
	if err != nil {
		return nil, err
	}
	if ok && cur == version {
		return nil, nil
	}
	var prev any
	if ok {
		prev = curID
	}
	return t.moveAlias(model, alias, version, cur, prev, "promote", actor)
}

// RollbackAlias moves alias back to the version it pointed at before its
// current one was set, and records that. Rolling back again goes one further
// step back along the chain of promotions. It fails when the alias does not
// exist or has no earlier version.
func (t *Tx) RollbackAlias(model, alias, actor string) (*AliasChange, error) {
	if err := t.writable(); err != nil {
		return nil, err
	}
	cur, curID, ok, err := t.aliasRow(model, alias)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("model %s has no alias %q", model, alias)
	}
	var prevID sql.NullInt64
	if err := t.tx.QueryRowContext(t.ctx, `SELECT prev_id FROM alias_history WHERE id = ?`, curID).Scan(&prevID); err != nil {
		return nil, err
	}
	if !prevID.Valid {
		return nil, fmt.Errorf("alias %q of model %s has no earlier version to roll back to (it points at version %d, its first)", alias, model, cur)
	}
	var target int
	var targetPrev sql.NullInt64
	if err := t.tx.QueryRowContext(t.ctx, `SELECT version, prev_id FROM alias_history WHERE id = ?`, prevID.Int64).Scan(&target, &targetPrev); err != nil {
		return nil, err
	}
	var p any
	if targetPrev.Valid {
		p = targetPrev.Int64
	}
	return t.moveAlias(model, alias, target, cur, p, "rollback", actor)
}

func (t *Tx) aliasRow(model, alias string) (version int, historyID int64, ok bool, err error) {
	err = t.tx.QueryRowContext(t.ctx, `SELECT version, history_id FROM aliases WHERE model = ? AND alias = ?`, model, alias).Scan(&version, &historyID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	}
	return version, historyID, err == nil, err
}

// moveAlias writes a history entry (whose prev_id is prevID) and points the
// alias at it.
func (t *Tx) moveAlias(model, alias string, version, previous int, prevID any, action, actor string) (*AliasChange, error) {
	res, err := t.tx.ExecContext(t.ctx, `INSERT INTO alias_history (model, alias, version, action, prev_id, actor, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		model, alias, version, action, prevID, actor, fmtTime(t.now))
	if err != nil {
		return nil, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	if _, err := t.tx.ExecContext(t.ctx, `INSERT INTO aliases (model, alias, version, history_id) VALUES (?, ?, ?, ?)
		ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, history_id = excluded.history_id`, model, alias, version, id); err != nil {
		return nil, err
	}
	t.changed = true
	return &AliasChange{ID: id, Model: model, Alias: alias, Version: version, Previous: previous, Action: action, Actor: actor, Time: t.now}, nil
}

// AliasHistory returns every move of an alias, oldest first.
func (t *Tx) AliasHistory(model, alias string) ([]AliasChange, error) {
	// The version before a move is the version of the entry before it.
	rows, err := t.tx.QueryContext(t.ctx, `SELECT id, version, coalesce(lag(version) OVER (ORDER BY id), 0), action, actor, created
		FROM alias_history WHERE model = ? AND alias = ? ORDER BY id`, model, alias)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AliasChange
	for rows.Next() {
		c := AliasChange{Model: model, Alias: alias}
		var created string
		if err := rows.Scan(&c.ID, &c.Version, &c.Previous, &c.Action, &c.Actor, &created); err != nil {
			return nil, err
		}
		c.Time = parseTime(created)
		out = append(out, c)
	}
	return out, rows.Err()
}
