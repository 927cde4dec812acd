package state

import (
	"context"
	"fmt"
	"time"
)

// Writes of one process are committed in groups. SQLite serializes writers
// anyway, and a connection that finds the write lock taken sleeps in its
// busy handler (1 ms, then 2, 5, 10 ...), far longer than the transaction
// it waits for; so writers of this process queue here instead, and only
// writers of other processes meet busy_timeout. The writer that takes the
// lock runs every write queued at that moment in one transaction, each in
// a savepoint of its own: a write that fails or panics leaves nothing, the
// others commit together. A commit costs a few system calls per page
// written, and the writes of concurrent steps share pages (the executions
// table and its indexes, the serial), so a group costs little more than
// one of its writes. Every write returns once its group has committed.
//
// A write may also wait a little for others to join its group (see
// WithGroupWait): when writes come one at a time, a little apart, that is
// what makes groups.
//
// A write started inside another's fn (which the Update documentation
// forbids) waits for the lock its caller holds and fails after
// busyTimeout, as it did in SQLite.

// queueTimeout is how long a write waits for the writes of this process
// ahead of it (a variable for tests).
var queueTimeout = busyTimeout

// maxGroup caps the writes committed together.
const maxGroup = 64

// write is one call of update waiting for its group.
type write struct {
	ctx      context.Context
	fn       func(tx *Tx) error
	err      error
	panicked any
	done     chan struct{}
	// until is when the write stops waiting for others to join its group
	// (zero: it does not wait).
	until time.Time
}

type groupWaitKey struct{}

// WithGroupWait returns a context under which a write (Update and every
// method that writes) may wait up to d for other writes of this process,
// so that they commit together: fewer transactions when many small writes
// come a little apart, such as the results of steps running side by side.
// The write still returns only once it is committed; a write without the
// wait, or a full group, ends the wait at once.
func WithGroupWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, groupWaitKey{}, d)
}

// HoldGroups turns the waits of WithGroupWait on (the default) or off for
// this DB. Turning them off also ends the wait of the writes queued now:
// they commit at once, together. A caller whose work would otherwise sit
// idle until waiting writes are committed (a scheduler with a free slot
// and nothing ready to launch) turns them off, so that waiting for
// company never delays the work, and on again when it is busy.
func (db *DB) HoldGroups(on bool) {
	db.qmu.Lock()
	db.noWait = !on
	flushed := false
	if !on {
		for _, w := range db.queue {
			if !w.until.IsZero() {
				w.until, flushed = time.Time{}, true
			}
		}
	}
	db.qmu.Unlock()
	if flushed {
		select {
		case db.kick <- struct{}{}:
		default:
		}
	}
}

func (db *DB) update(ctx context.Context, fn func(tx *Tx) error) error {
	w := &write{ctx: ctx, fn: fn, done: make(chan struct{})}
	d, _ := ctx.Value(groupWaitKey{}).(time.Duration)
	db.qmu.Lock()
	if d > 0 && !db.noWait {
		w.until = time.Now().Add(d)
	}
	db.queue = append(db.queue, w)
	kick := w.until.IsZero() || len(db.queue) >= maxGroup
	db.qmu.Unlock()
	if kick {
		select {
		case db.kick <- struct{}{}:
		default:
		}
	}
	var timer *time.Timer
	for !w.finished() {
		select {
		case db.writer <- struct{}{}:
			db.commitGroup()
			<-db.writer
			continue // w was in the group, or queued after it was taken
		case <-w.done:
			continue
		default:
		}
		if timer == nil {
			timer = time.NewTimer(queueTimeout)
			defer timer.Stop()
		}
		select {
		case db.writer <- struct{}{}:
			db.commitGroup()
			<-db.writer
		case <-w.done:
		case <-timer.C:
			if db.dequeue(w) {
				return fmt.Errorf("state database %s is busy: another write of this process has held it for more than %s", db.path, queueTimeout)
			}
			<-w.done // its group is running
		case <-ctx.Done():
			if db.dequeue(w) {
				return ctx.Err()
			}
			<-w.done
		}
	}
	if w.panicked != nil {
		panic(w.panicked)
	}
	return w.err
}

func (w *write) finished() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// dequeue takes a write that has not started out of the queue.
func (db *DB) dequeue(w *write) bool {
	db.qmu.Lock()
	defer db.qmu.Unlock()
	for i, q := range db.queue {
		if q == w {
			db.queue = append(db.queue[:i], db.queue[i+1:]...)
			return true
		}
	}
	return false
}

// commitGroup runs the queued writes in one transaction; the caller holds
// db.writer.
func (db *DB) commitGroup() {
	select {
	case <-db.kick: // the queue below says it all
	default:
	}
	for {
		db.qmu.Lock()
		var until time.Time
		if len(db.queue) < maxGroup {
			for _, w := range db.queue {
				if w.until.IsZero() {
					until = time.Time{}
					break
				}
				if until.IsZero() || w.until.Before(until) {
					until = w.until
				}
			}
		}
		db.qmu.Unlock()
		wait := time.Until(until)
		if until.IsZero() || wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-db.kick:
		}
		t.Stop()
	}
	db.qmu.Lock()
	n := min(len(db.queue), maxGroup)
	group := make([]*write, n)
	copy(group, db.queue)
	db.queue = append(db.queue[:0], db.queue[n:]...)
	db.qmu.Unlock()
	defer func() {
		for _, w := range group {
			close(w.done)
		}
	}()
	switch len(group) {
	case 0:
		return
	case 1:
		db.commitOne(group[0])
		return
	}
	stx, err := db.sql.BeginTx(context.Background(), nil)
	if err != nil {
		for _, w := range group {
			w.err = err
		}
		return
	}
	committed := false
	defer func() {
		if !committed {
			stx.Rollback()
		}
	}()
	sh := &txShared{}
	bg := &Tx{ctx: context.Background(), tx: stx, sh: sh, db: db, write: true}
	changed := 0 // writes that change results: the serial counts them
	for _, w := range group {
		if err := w.ctx.Err(); err != nil {
			w.err = err
			continue
		}
		if _, err := bg.exec(`SAVEPOINT w`); err != nil {
			w.err = err
			continue
		}
		t := &Tx{ctx: w.ctx, tx: stx, sh: sh, db: db, write: true, now: time.Now()}
		w.panicked, w.err = run(t, w.fn)
		if w.err != nil || w.panicked != nil {
			sh.running = nil // what it read may be undone
			if _, err := bg.exec(`ROLLBACK TO w`); err != nil {
				// The transaction cannot be trusted any more: nothing of
				// the group is kept.
				for _, w := range group {
					if w.err == nil && w.panicked == nil {
						w.err = err
					}
				}
				return
			}
		} else if t.changed {
			changed++
		}
		if _, err := bg.exec(`RELEASE w`); err != nil {
			for _, w := range group {
				if w.err == nil && w.panicked == nil {
					w.err = err
				}
			}
			return
		}
	}
	if changed > 0 {
		if _, err := bg.exec(`UPDATE serial SET value = value + ? WHERE id = 1`, changed); err != nil {
			for _, w := range group {
				if w.err == nil && w.panicked == nil {
					w.err = err
				}
			}
			return
		}
	}
	if err := stx.Commit(); err != nil {
		for _, w := range group {
			if w.err == nil && w.panicked == nil {
				w.err = err
			}
		}
		return
	}
	committed = true
}

// commitOne runs a write alone in its own transaction, which its context
// may cancel.
func (db *DB) commitOne(w *write) {
	stx, err := db.sql.BeginTx(w.ctx, nil)
	if err != nil {
		w.err = err
		return
	}
	committed := false
	defer func() {
		if !committed {
			stx.Rollback()
		}
	}()
	t := &Tx{ctx: w.ctx, tx: stx, sh: &txShared{}, db: db, write: true, now: time.Now()}
	if w.panicked, w.err = run(t, w.fn); w.err != nil || w.panicked != nil {
		return
	}
	if t.changed {
		if _, w.err = t.exec(`UPDATE serial SET value = value + 1 WHERE id = 1`); w.err != nil {
			return
		}
	}
	if w.err = stx.Commit(); w.err == nil {
		committed = true
	}
}

// run calls fn, recovering a panic to raise it again in the goroutine that
// asked for the write.
func run(t *Tx, fn func(tx *Tx) error) (panicked any, err error) {
	defer func() {
		t.finished = true
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	return nil, fn(t)
}
