package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrCorrupt is wrapped by every error caused by a state file that is
// damaged or is not a SQLite database.
var ErrCorrupt = errors.New("state database is damaged")

// ErrNotFound is wrapped by errors about a run, execution, model version,
// alias or artifact that the state does not hold.
var ErrNotFound = errors.New("not found")

// busyTimeout is how long a writer waits for another writer's transaction
// (every transaction is short; a long wait means a stuck process).
const busyTimeout = 10 * time.Second

// DB is an open state database. It is safe for concurrent use by several
// goroutines; several processes may open the same file.
type DB struct {
	sql    *sql.DB
	path   string
	host   string
	lookup *sql.Stmt // LookupCache's prepared statement

	// writer is held by the goroutine writing a transaction of this
	// process; queue holds the writes waiting for it (see commit.go).
	writer chan struct{}
	qmu    sync.Mutex
	queue  []*write
	kick   chan struct{} // a write that must not wait was queued
	noWait bool          // HoldGroups(false): writes do not wait for company

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // prepared statements by query text
}

// Open opens the state database at path (normally <project>/.weir/state.db),
// creating it and its folder if needed and migrating its schema to the one
// this Weir knows.
//
// Every connection runs with journal_mode=WAL, synchronous=NORMAL,
// foreign_keys=ON and busy_timeout. synchronous=NORMAL in WAL mode syncs the
// WAL at each checkpoint rather than at each commit: a power loss may lose
// the last transactions, but never corrupts the database and never keeps half
// of a transaction, which is the guarantee the runtime relies on. A killed
// process (the common case) loses nothing that was committed, since
// committed data is in the OS's page cache.
//
// Open does not run PRAGMA quick_check: it reads every page, so its cost
// grows with the state, and every command opens the state. A file that is not
// a SQLite database is caught by the first statement Open runs; damage inside
// the file is caught when SQLite reads the damaged page, and every method
// maps that to the same clear ErrCorrupt error. Check runs the full check on
// demand.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("state: no database path given")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("state database path %s contains '?', which SQLite cannot open; move the project to a path without it", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	dsn := path + "?_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")" +
		"&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state: opening %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(8)
	sdb.SetMaxIdleConns(8)
	host, _ := os.Hostname()
	db := &DB{sql: sdb, path: path, host: host, writer: make(chan struct{}, 1), kick: make(chan struct{}, 1), stmts: map[string]*sql.Stmt{}}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, db.fail(err)
	}
	if db.lookup, err = sdb.PrepareContext(ctx, lookupQuery); err != nil {
		sdb.Close()
		return nil, db.fail(err)
	}
	return db, nil
}

// Close closes the database. Unreleased locks stay in the file (see Lock).
func (db *DB) Close() error {
	db.lookup.Close()
	db.stmtMu.Lock()
	for _, s := range db.stmts {
		s.Close()
	}
	db.stmts = map[string]*sql.Stmt{}
	db.stmtMu.Unlock()
	return db.sql.Close()
}

// prepared returns the statement for query, preparing it the first time.
// SQLite compiles a statement's text anew each time it is run unprepared,
// which costs more than running it: the statements of the per-step writes
// are prepared once per connection.
func (db *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	s := db.stmts[query]
	db.stmtMu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if prev := db.stmts[query]; prev != nil {
		s.Close()
		return prev, nil
	}
	db.stmts[query] = s
	return s, nil
}

// txShared is what the writes of one SQL transaction (a group, see
// commit.go) share.
type txShared struct {
	// stmts are the prepared statements bound to the transaction.
	stmts map[string]*sql.Stmt
	// running caches the runs found running in the transaction; a write
	// that changes runs clears it.
	running map[string]bool
}

// stmt returns the prepared statement for query bound to the transaction.
func (t *Tx) stmt(query string) (*sql.Stmt, error) {
	if t.sh != nil {
		if s := t.sh.stmts[query]; s != nil {
			return s, nil
		}
	}
	s, err := t.db.prepared(t.ctx, query)
	if err != nil {
		return nil, err
	}
	ts := t.tx.StmtContext(t.ctx, s)
	if t.sh != nil {
		if t.sh.stmts == nil {
			t.sh.stmts = map[string]*sql.Stmt{}
		}
		t.sh.stmts[query] = ts
	}
	return ts, nil
}

// exec runs a prepared statement in the transaction.
func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	s, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(t.ctx, args...)
}

// queryRow runs a prepared query in the transaction.
func (t *Tx) queryRow(query string, args ...any) *sql.Row {
	s, err := t.stmt(query)
	if err != nil {
		// A Row cannot be built with an error: let the transaction run the
		// text, which reports the same error.
		return t.tx.QueryRowContext(t.ctx, query, args...)
	}
	return s.QueryRowContext(t.ctx, args...)
}

// runsChanged forgets which runs were found running.
func (t *Tx) runsChanged() {
	if t.sh != nil {
		t.sh.running = nil
	}
}

// Path returns the path the database was opened with.
func (db *DB) Path() string { return db.path }

// fail maps SQLite errors a user can cause or must act on to clear messages
// naming the file.
func (db *DB) fail(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return &corruptError{path: db.path, cause: se}
	case sqlite3.SQLITE_BUSY:
		return fmt.Errorf("state database %s is busy: another weir process has held a write transaction for more than %s (%v)", db.path, busyTimeout, se)
	case sqlite3.SQLITE_READONLY:
		return fmt.Errorf("state database %s is read-only: weir needs to write to it and to its folder (%v)", db.path, se)
	case sqlite3.SQLITE_CANTOPEN:
		return fmt.Errorf("state database %s cannot be opened: check that the folder exists and is writable (%v)", db.path, se)
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("state database %s: the disk is full (%v)", db.path, se)
	}
	return err
}

// notFound returns an error with this message that wraps ErrNotFound.
func notFound(format string, args ...any) error {
	return &notFoundError{msg: fmt.Sprintf(format, args...)}
}

type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Unwrap() error { return ErrNotFound }

type corruptError struct {
	path  string
	cause error
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("state database %s is damaged or is not a SQLite database (%v): move it away (for example to %s.broken) to start with an empty state, or restore it from a backup",
		e.path, e.cause, filepath.Base(e.path))
}

func (e *corruptError) Unwrap() []error { return []error{ErrCorrupt, e.cause} }

// Check runs SQLite's full PRAGMA integrity_check. It returns nil when the
// database is sound and otherwise an error wrapping ErrCorrupt listing the
// first problems found. It reads the whole file.
func (db *DB) Check(ctx context.Context) error {
	rows, err := db.sql.QueryContext(ctx, `PRAGMA integrity_check(10)`)
	if err != nil {
		return db.fail(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return db.fail(err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return db.fail(err)
	}
	if len(problems) > 0 {
		return &corruptError{path: db.path, cause: errors.New(strings.Join(problems, "; "))}
	}
	return nil
}

func (db *DB) migrate(ctx context.Context) error {
	version := func(q querier) (int, error) {
		var n int
		// The first statement on a file that is not a database fails here
		// with SQLITE_NOTADB.
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).Scan(&n); err != nil {
			return 0, err
		}
		if n == 0 {
			var tables int
			if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&tables); err != nil {
				return 0, err
			}
			if tables > 0 {
				return 0, fmt.Errorf("%s is a SQLite database but not a Weir state (it has no schema_version table); move it away or point weir at another file", db.path)
			}
			return 0, nil
		}
		var v int
		err := q.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
		return v, err
	}
	v, err := version(db.sql)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("state database %s has schema version %d, newer than this weir knows (%d): upgrade weir", db.path, v, len(migrations))
	}
	for v < len(migrations) {
		err := db.update(ctx, func(tx *Tx) error {
			// Another process may have migrated meanwhile.
			cur, err := version(tx.tx)
			if err != nil {
				return err
			}
			v = cur
			if v >= len(migrations) {
				return nil
			}
			if v == 0 {
				if _, err := tx.tx.ExecContext(ctx, `CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT; INSERT INTO schema_version VALUES (0)`); err != nil {
					return err
				}
			}
			if _, err := tx.tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("state database %s: migration %d: %w", db.path, v+1, err)
			}
			v++
			_, err = tx.tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is one transaction, handed to the function given to Update or View. Its
// methods run inside the transaction; they must not be used after the
// function returns. A Tx from View refuses writes.
type Tx struct {
	ctx      context.Context
	tx       *sql.Tx
	sh       *txShared // nil in View
	db       *DB
	write    bool
	changed  bool
	now      time.Time
	finished bool
}

// Update runs fn in a write transaction and commits it if fn returns nil;
// otherwise (or if fn panics) nothing fn wrote is kept. When fn changed
// results (see the package documentation), the serial is bumped once, in the
// same transaction. Writers from all processes are serialized; a writer waits
// for the others' transactions (which are short) but never for a Lock. fn
// must use only tx: a write through db inside fn would wait for fn's own
// transaction and fail after busy_timeout.
func (db *DB) Update(ctx context.Context, fn func(tx *Tx) error) error {
	return db.fail(db.update(ctx, fn))
}

// View runs fn in a read-only transaction: everything fn reads comes from one
// consistent snapshot.
func (db *DB) View(ctx context.Context, fn func(tx *Tx) error) error {
	stx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return db.fail(err)
	}
	defer stx.Rollback()
	t := &Tx{ctx: ctx, tx: stx, db: db, now: time.Now()}
	defer func() { t.finished = true }()
	return db.fail(fn(t))
}

// writable returns an error unless t may write.
func (t *Tx) writable() error {
	if t.finished {
		return errors.New("state: transaction used after it ended")
	}
	if !t.write {
		return errors.New("state: write in a read-only transaction (use Update, not View)")
	}
	return nil
}

// Now returns the time the transaction began; every row it writes carries it.
func (t *Tx) Now() time.Time { return t.now }

// Serial returns the state serial (see the package documentation).
func (db *DB) Serial(ctx context.Context) (int64, error) {
	var v int64
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM serial WHERE id = 1`).Scan(&v)
	return v, db.fail(err)
}

// timeFormat is fixed width so stored times sort as strings.
const timeFormat = "2006-01-02T15:04:05.000000000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func fmtNullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return fmtTime(t)
}

func parseTime(s string) time.Time {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func parseNullTime(s sql.NullString) time.Time {
	if !s.Valid {
		return time.Time{}
	}
	return parseTime(s.String)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(i int64) any {
	if i == 0 {
		return nil
	}
	return i
}
