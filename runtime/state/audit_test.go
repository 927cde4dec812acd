package state_test

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/state"
)

func appendEvents(t *testing.T, db *state.DB, n int) []state.Event {
	t.Helper()
	var out []state.Event
	for i := 1; i <= n; i++ {
		e, err := db.AppendAudit(ctx, state.Event{Actor: "alice", Action: "model.promote", Subject: fmt.Sprintf("churn v%d", i),
			Details: map[string]any{"alias": "prod", "version": i, "note": "<ok> & fine"}})
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

func TestAuditChain(t *testing.T) {
	db, _ := openDB(t)
	require.NoError(t, db.VerifyAudit(ctx), "an empty log verifies")
	es := appendEvents(t, db, 5)
	assert.Equal(t, int64(1), es[0].Seq)
	assert.Empty(t, es[0].PrevHash)
	for i := 1; i < len(es); i++ {
		assert.Equal(t, es[i-1].Hash, es[i].PrevHash)
		assert.Equal(t, int64(i+1), es[i].Seq)
	}
	require.NoError(t, db.VerifyAudit(ctx))

	got, err := db.Audit(ctx, 2, 2)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, int64(3), got[0].Seq)
	assert.Equal(t, map[string]any{"alias": "prod", "version": 3.0, "note": "<ok> & fine"}, got[0].Details)
	assert.Equal(t, es[2].Hash, got[0].Hash)

	_, err = db.AppendAudit(ctx, state.Event{Action: "x"})
	assert.Error(t, err, "an actor is required")
}

func TestAuditInTheChangesTransaction(t *testing.T) {
	db, _ := openDB(t)
	boom := errors.New("refused")
	err := db.Update(ctx, func(tx *state.Tx) error {
		if _, err := tx.AppendAudit(state.Event{Actor: "alice", Action: "model.promote"}); err != nil {
			return err
		}
		return boom // the change fails after its event was written
	})
	require.ErrorIs(t, err, boom)
	es, err := db.Audit(ctx, 0, 0)
	require.NoError(t, err)
	assert.Empty(t, es, "the event went with the change")
}

func TestAuditTamperDetection(t *testing.T) {
	cases := []struct {
		name    string
		tamper  string
		seq     int64
		problem string
	}{
		{"edit actor", `UPDATE audit SET actor = 'mallory' WHERE seq = 3`, 3, "does not match its hash"},
		{"edit details", `UPDATE audit SET details = '{"alias":"prod","note":"<ok> & fine","version":99}' WHERE seq = 2`, 2, "does not match its hash"},
		{"edit time", `UPDATE audit SET time = '2020-01-01T00:00:00.000000000Z' WHERE seq = 4`, 4, "does not match its hash"},
		{"delete middle", `DELETE FROM audit WHERE seq = 3`, 4, "events between were removed"},
		{"delete first", `DELETE FROM audit WHERE seq = 1`, 2, "starts at event 2"},
		// Editing an event and recomputing its hash moves the break to the
		// next event, whose previous-hash no longer matches.
		{"edit and rehash", "rehash", 3, "event 2 was edited"},
		{"renumber", `UPDATE audit SET seq = 10 WHERE seq = 5`, 10, "events between were removed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, path := openDB(t)
			appendEvents(t, db, 5)
			r := raw(t, path)
			if c.tamper == "rehash" {
				rehash(t, r, 2, "mallory")
			} else {
				_, err := r.Exec(c.tamper)
				require.NoError(t, err)
			}
			err := db.VerifyAudit(ctx)
			var ae *state.AuditError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, c.seq, ae.Seq)
			assert.Contains(t, err.Error(), fmt.Sprintf("broken at event %d", c.seq))
			assert.Contains(t, err.Error(), c.problem)
			assert.Contains(t, err.Error(), path)
		})
	}
}

// rehash changes the actor of event seq and recomputes its hash the way
// Event documents it, as a forger who read the code would.
func rehash(t *testing.T, r *sql.DB, seq int64, actor string) {
	t.Helper()
	var tm, action, subject, details, prev string
	require.NoError(t, r.QueryRow(`SELECT time, action, subject, details, prev_hash FROM audit WHERE seq = ?`, seq).Scan(&tm, &action, &subject, &details, &prev))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(struct {
		Seq     int64           `json:"seq"`
		Time    string          `json:"time"`
		Actor   string          `json:"actor"`
		Action  string          `json:"action"`
		Subject string          `json:"subject"`
		Details json.RawMessage `json:"details"`
	}{seq, tm, actor, action, subject, json.RawMessage(details)}))
	sum := sha256.Sum256(append([]byte(prev), bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...))
	_, err := r.Exec(`UPDATE audit SET actor = ?, hash = ? WHERE seq = ?`, actor, hex.EncodeToString(sum[:]), seq)
	require.NoError(t, err)
}
