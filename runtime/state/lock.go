package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sync"
	"time"
)

// ErrNotLocked is returned by ForceUnlock when nobody holds the lock.
var ErrNotLocked = errors.New("state is not locked")

// LockInfo describes who holds the state lock.
type LockInfo struct {
	// ID identifies one acquisition; Lock fills it in when empty.
	ID string
	// Operation is what the holder is doing, e.g. "weir apply".
	Operation string
	User      string
	Host      string
	PID       int
	Created   time.Time
}

// NewLockInfo describes this process doing operation: a fresh ID, the
// current user, host name, pid and time.
func NewLockInfo(operation string) LockInfo {
	host, _ := os.Hostname()
	return LockInfo{
		ID:        newID(),
		Operation: operation,
		User:      currentUser(),
		Host:      host,
		PID:       os.Getpid(),
		Created:   time.Now().UTC(),
	}
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// LockedError is returned by Lock when another holder has the lock.
type LockedError struct {
	// Path is the state database's path.
	Path   string
	Holder LockInfo
	// Stale reports that the holder ran on this host and its process is no
	// longer running: the lock was left behind by a killed process.
	Stale bool
}

func (e *LockedError) Error() string {
	h := e.Holder
	msg := fmt.Sprintf("state %s is locked by %s@%s (pid %d, %s) since %s", e.Path, h.User, h.Host, h.PID, h.Operation, h.Created.UTC().Format(time.RFC3339))
	if e.Stale {
		return msg + "; that process is no longer running, so the lock is stale: run `weir state unlock` to release it"
	}
	return msg + "; run `weir state unlock` if that process is gone"
}

// Lock takes the state lock for info's holder, or fails at once with a
// *LockedError naming the current holder; it never waits. Empty fields of
// info are filled in as NewLockInfo would (an Operation must be given).
//
// The lock is a row in the database, so it holds across processes and hosts.
// unlock releases it; it is safe to call more than once and does not depend
// on ctx (it must work after Ctrl-C). A holder that dies keeps the lock until
// ForceUnlock; Lock reports such a lock as stale when the holder's host is
// this one and its pid is gone.
func (db *DB) Lock(ctx context.Context, info LockInfo) (unlock func() error, err error) {
	if info.Operation == "" {
		return nil, errors.New("state: Lock needs an operation (e.g. \"weir apply\")")
	}
	def := NewLockInfo(info.Operation)
	if info.ID == "" {
		info.ID = def.ID
	}
	if info.User == "" {
		info.User = def.User
	}
	if info.Host == "" {
		info.Host = def.Host
	}
	if info.PID == 0 {
		info.PID = def.PID
	}
	if info.Created.IsZero() {
		info.Created = def.Created
	}
	err = db.Update(ctx, func(tx *Tx) error {
		held, ok, err := lockHolder(ctx, tx.tx)
		if err != nil {
			return err
		}
		if ok {
			return &LockedError{Path: db.path, Holder: held, Stale: db.isStale(held)}
		}
		_, err = tx.tx.ExecContext(ctx, `INSERT INTO lock (id, lock_id, operation, user, host, pid, created) VALUES (1, ?, ?, ?, ?, ?, ?)`,
			info.ID, info.Operation, info.User, info.Host, info.PID, fmtTime(info.Created))
		return err
	})
	if err != nil {
		return nil, err
	}
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() { uerr = db.unlock(info.ID) })
		return uerr
	}, nil
}

func (db *DB) unlock(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*busyTimeout)
	defer cancel()
	res, err := db.sql.ExecContext(ctx, `DELETE FROM lock WHERE id = 1 AND lock_id = ?`, id)
	if err != nil {
		return db.fail(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("state %s: our lock was already released by someone else (weir state unlock?); other weir processes may have changed the state meanwhile", db.path)
	}
	return nil
}

func (db *DB) isStale(h LockInfo) bool {
	return h.Host != "" && h.Host == db.host && h.PID > 0 && !processAlive(h.PID)
}

// LockHolder returns who holds the lock, or nil when nobody does.
func (db *DB) LockHolder(ctx context.Context) (*LockInfo, error) {
	h, ok, err := lockHolder(ctx, db.sql)
	if err != nil || !ok {
		return nil, db.fail(err)
	}
	return &h, nil
}

// ForceUnlock releases the lock whoever holds it and returns who did; it
// returns ErrNotLocked when nobody did. It is `weir state unlock`: the
// caller is responsible for making sure the holder is gone.
func (db *DB) ForceUnlock(ctx context.Context) (LockInfo, error) {
	var held LockInfo
	err := db.Update(ctx, func(tx *Tx) error {
		h, ok, err := lockHolder(ctx, tx.tx)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotLocked
		}
		held = h
		_, err = tx.tx.ExecContext(ctx, `DELETE FROM lock WHERE id = 1`)
		return err
	})
	return held, err
}

func lockHolder(ctx context.Context, q querier) (LockInfo, bool, error) {
	var h LockInfo
	var created string
	err := q.QueryRowContext(ctx, `SELECT lock_id, operation, user, host, pid, created FROM lock WHERE id = 1`).
		Scan(&h.ID, &h.Operation, &h.User, &h.Host, &h.PID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return LockInfo{}, false, nil
	}
	if err != nil {
		return LockInfo{}, false, err
	}
	h.Created = parseTime(created)
	return h, true, nil
}
