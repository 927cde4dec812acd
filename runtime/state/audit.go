package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is one entry of the audit log. The log is a hash chain: each event
// stores Hash = hex(sha256(PrevHash || canonical JSON of the event)), where
// PrevHash is the previous event's Hash ("" for the first) and the canonical
// JSON is {"seq","time","actor","action","subject","details"} in that order,
// with details as stored (compact JSON, object keys sorted). Editing,
// removing or reordering any event breaks the chain from that event on;
// VerifyAudit finds it. Removing the newest events cannot be detected from
// the log alone: anchor the last hash elsewhere (a commit, a ticket) for that.
type Event struct {
	// Seq numbers events from 1, with no gaps.
	Seq  int64
	Time time.Time
	// Actor is who did it ("alice", "weir" for automatic actions).
	Actor string
	// Action is what happened, e.g. "model.promote".
	Action string
	// Subject is what it happened to, e.g. "churn v3".
	Subject string
	// Details must encode as JSON (no NaN).
	Details  map[string]any
	PrevHash string
	Hash     string
}

// AuditError reports the first event at which the audit chain is broken.
type AuditError struct {
	Path string
	// Seq is the first event that does not verify.
	Seq int64
	// Event is that event as stored (it may be the tampered one).
	Event Event
	// Problem says what is wrong.
	Problem string
}

func (e *AuditError) Error() string {
	return fmt.Sprintf("audit log of %s is broken at event %d (%s %s by %s at %s): %s",
		e.Path, e.Seq, e.Event.Action, e.Event.Subject, e.Event.Actor, e.Event.Time.UTC().Format(time.RFC3339), e.Problem)
}

// canonical is the JSON that an event's hash covers.
func canonical(seq int64, tm, actor, action, subject, details string) ([]byte, error) {
	if !json.Valid([]byte(details)) {
		return nil, errors.New("details are not JSON")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		Seq     int64           `json:"seq"`
		Time    string          `json:"time"`
		Actor   string          `json:"actor"`
		Action  string          `json:"action"`
		Subject string          `json:"subject"`
		Details json.RawMessage `json:"details"`
	}{seq, tm, actor, action, subject, json.RawMessage(details)})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

func chainHash(prev string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// AppendAudit appends e to the audit log in this transaction, so the event
// is kept exactly when the change it records is. Seq, Time, PrevHash and
// Hash are set here; the stored event is returned.
func (t *Tx) AppendAudit(e Event) (Event, error) {
	if err := t.writable(); err != nil {
		return Event{}, err
	}
	if e.Actor == "" || e.Action == "" {
		return Event{}, errors.New("state: an audit event needs an actor and an action")
	}
	details := e.Details
	if details == nil {
		details = map[string]any{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(details); err != nil {
		return Event{}, fmt.Errorf("state: audit event %s: details: %w", e.Action, err)
	}
	detailsJSON := string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	var prev sql.NullString
	var last sql.NullInt64
	err := t.tx.QueryRowContext(t.ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Event{}, err
	}
	e.Seq = last.Int64 + 1
	e.Time = t.now
	e.PrevHash = prev.String
	tm := fmtTime(e.Time)
	body, err := canonical(e.Seq, tm, e.Actor, e.Action, e.Subject, detailsJSON)
	if err != nil {
		return Event{}, err
	}
	e.Hash = chainHash(e.PrevHash, body)
	_, err = t.tx.ExecContext(t.ctx, `INSERT INTO audit (seq, time, actor, action, subject, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, tm, e.Actor, e.Action, e.Subject, detailsJSON, e.PrevHash, e.Hash)
	if err != nil {
		return Event{}, err
	}
	e.Details = details
	return e, nil
}

// AppendAudit appends one event in its own transaction. To record an event
// together with the change it describes, use Update and Tx.AppendAudit.
func (db *DB) AppendAudit(ctx context.Context, e Event) (Event, error) {
	var out Event
	err := db.Update(ctx, func(tx *Tx) error {
		var err error
		out, err = tx.AppendAudit(e)
		return err
	})
	return out, err
}

type auditRow struct {
	e       Event
	tm      string
	details string
}

func (db *DB) scanAudit(ctx context.Context, query string, args []any, fn func(r auditRow) error) error {
	rows, err := db.sql.QueryContext(ctx, query, args...)
	if err != nil {
		return db.fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.e.Seq, &r.tm, &r.e.Actor, &r.e.Action, &r.e.Subject, &r.details, &r.e.PrevHash, &r.e.Hash); err != nil {
			return db.fail(err)
		}
		r.e.Time = parseTime(r.tm)
		if err := fn(r); err != nil {
			return err
		}
	}
	return db.fail(rows.Err())
}

const auditColumns = `seq, time, actor, action, subject, details, prev_hash, hash`

// Audit returns the audit events with Seq > after, oldest first, at most
// limit of them (limit <= 0: all).
func (db *DB) Audit(ctx context.Context, after int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = -1
	}
	var out []Event
	err := db.scanAudit(ctx, `SELECT `+auditColumns+` FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, []any{after, limit}, func(r auditRow) error {
		if err := json.Unmarshal([]byte(r.details), &r.e.Details); err != nil {
			return fmt.Errorf("state %s: audit event %d: details are not JSON: %w", db.path, r.e.Seq, err)
		}
		out = append(out, r.e)
		return nil
	})
	return out, err
}

// VerifyAudit walks the whole audit chain and returns nil when it is intact,
// or an *AuditError naming the first event that does not verify.
func (db *DB) VerifyAudit(ctx context.Context) error {
	var prevSeq int64
	var prevHash string
	return db.scanAudit(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY seq`, nil, func(r auditRow) error {
		fail := func(problem string) error {
			return &AuditError{Path: db.path, Seq: r.e.Seq, Event: r.e, Problem: problem}
		}
		if r.e.Seq != prevSeq+1 {
			if prevSeq == 0 {
				return fail(fmt.Sprintf("the log starts at event %d: the events before it were removed", r.e.Seq))
			}
			return fail(fmt.Sprintf("it follows event %d: the events between were removed", prevSeq))
		}
		if r.e.PrevHash != prevHash {
			return fail(fmt.Sprintf("its previous-hash does not match the hash of event %d: event %d was edited (and its hash recomputed) or replaced", prevSeq, prevSeq))
		}
		body, err := canonical(r.e.Seq, r.tm, r.e.Actor, r.e.Action, r.e.Subject, r.details)
		if err != nil {
			return fail("its content was edited (" + err.Error() + ")")
		}
		if chainHash(r.e.PrevHash, body) != r.e.Hash {
			return fail("its content does not match its hash: the event was edited after it was written")
		}
		prevSeq, prevHash = r.e.Seq, r.e.Hash
		return nil
	})
}
