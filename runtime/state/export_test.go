package state

// Queued reports whether writes are waiting in the group queue (for the
// tests of package state_test).
func (db *DB) Queued() bool {
	db.qmu.Lock()
	defer db.qmu.Unlock()
	return len(db.queue) > 0
}
