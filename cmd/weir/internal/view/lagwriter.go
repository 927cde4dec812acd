package view

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// lagWriter buffers what is written to w and writes it out at most lag
// later, in one system call: a run of 10,000 steps prints 20,000 lines,
// and a write per line costs a good part of what weir spends per step.
// Nothing waits in the buffer longer than lag, and Flush empties it.
type lagWriter struct {
	lag time.Duration

	mu    sync.Mutex
	bw    *bufio.Writer
	armed bool // a flush is due within lag
}

func newLagWriter(w io.Writer, lag time.Duration) *lagWriter {
	return &lagWriter{lag: lag, bw: bufio.NewWriterSize(w, 64*1024)}
}

func (l *lagWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.bw.Write(p)
	if !l.armed && l.bw.Buffered() > 0 {
		l.armed = true
		time.AfterFunc(l.lag, func() { l.Flush() })
	}
	return n, err
}

// Flush writes out what is buffered.
func (l *lagWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = false
	return l.bw.Flush()
}
