package state

import (
	"context"
	"encoding/json"
	"time"
)

// LastKeyPartsMany is LastKeyParts for many addresses in one query: the key
// parts of each address's latest succeeded or reused execution. Addresses
// never run are absent.
func (db *DB) LastKeyPartsMany(ctx context.Context, addresses []string) (map[string]map[string]string, error) {
	want := make(map[string]bool, len(addresses))
	for _, a := range addresses {
		want[a] = true
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT e.address, k.parts FROM executions e JOIN key_parts k ON k.execution_id = e.id
		WHERE e.status IN ('succeeded', 'cached') ORDER BY e.id DESC`)
	if err != nil {
		return nil, db.fail(err)
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var addr, raw string
		if err := rows.Scan(&addr, &raw); err != nil {
			return nil, err
		}
		if !want[addr] {
			continue
		}
		if _, seen := out[addr]; seen {
			continue // rows come newest first
		}
		var parts map[string]string
		if json.Unmarshal([]byte(raw), &parts) == nil {
			out[addr] = parts
		}
	}
	return out, rows.Err()
}

// TypicalDurations is TypicalDuration for every address at once: the mean
// of the latest (at most five) succeeded executions of each.
func (db *DB) TypicalDurations(ctx context.Context) (map[string]time.Duration, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT address, started, ended FROM executions
		WHERE status = 'succeeded' AND ended IS NOT NULL ORDER BY id DESC`)
	if err != nil {
		return nil, db.fail(err)
	}
	defer rows.Close()
	total := map[string]time.Duration{}
	n := map[string]int{}
	for rows.Next() {
		var addr, s, e string
		if err := rows.Scan(&addr, &s, &e); err != nil {
			return nil, err
		}
		if n[addr] == 5 {
			continue
		}
		st, err1 := time.Parse(timeFormat, s)
		en, err2 := time.Parse(timeFormat, e)
		if err1 != nil || err2 != nil {
			continue
		}
		total[addr] += en.Sub(st)
		n[addr]++
	}
	out := make(map[string]time.Duration, len(total))
	for a, t := range total {
		out[a] = t / time.Duration(n[a])
	}
	return out, rows.Err()
}
