package host

import (
	"bytes"
	"strings"
	"sync"
)

// tail keeps the last bytes written to it: a plugin's stderr, for the
// messages about a plugin that failed.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// Lines returns the last n non-blank lines.
func (t *tail) Lines(n int) []string {
	t.mu.Lock()
	b := bytes.Clone(t.buf)
	t.mu.Unlock()
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimRight(l, "\r"))
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
