package view

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/state"
)

// Progress shows a run as it goes: a line per finished step and, on a
// terminal, a status line (done/total, running steps with their elapsed
// time, cached count) redrawn in place. Verbose adds every log line,
// prefixed with the step's address.
type Progress struct {
	w       *lagWriter
	st      Style
	tty     bool
	verbose bool
	total   int

	mu      sync.Mutex
	done    int
	cached  int
	running map[string]time.Time
	status  bool // a status line is on screen
}

// NewProgress returns a progress view of total steps on w.
func NewProgress(w io.Writer, total int, verbose bool) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) && os.Getenv("TERM") != "dumb" {
		tty = true
	}
	return &Progress{w: newLagWriter(w, outputLag), st: StyleFor(w), tty: tty, verbose: verbose, total: total, running: map[string]time.Time{}}
}

// outputLag is how long a line of progress may wait to be written with
// the next ones.
const outputLag = 50 * time.Millisecond

// Event handles one executor event.
func (p *Progress) Event(e exec.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearStatus()
	switch e.Type {
	case exec.EventStart:
		p.running[e.Step] = e.Time
		if !p.tty {
			fmt.Fprintf(p.w, "  %s %s: started\n", p.st.Cyan("↻"), e.Step)
		}
	case exec.EventLog:
		if p.verbose {
			fmt.Fprintf(p.w, "  %s %s\n", p.st.Dim("["+e.Step+"]"), e.Line)
		}
	case exec.EventRetry:
		fmt.Fprintf(p.w, "  %s %s: %s\n", p.st.Yellow("↻"), e.Step, e.Message)
	case exec.EventCached:
		p.done++
		p.cached++
		fmt.Fprintf(p.w, "  %s %s: %s\n", p.st.Dim("="), e.Step, p.st.Dim("cached, "+e.Message))
	case exec.EventDone:
		delete(p.running, e.Step)
		p.done++
		switch e.Status {
		case state.StatusSucceeded:
			msg := "done in " + e.Elapsed.Round(time.Millisecond).String()
			if e.Message != "" {
				msg += ": " + e.Message
			}
			fmt.Fprintf(p.w, "  %s %s: %s\n", p.st.Green("✓"), e.Step, msg)
		case state.StatusCancelled:
			fmt.Fprintf(p.w, "  %s %s: cancelled\n", p.st.Yellow("✗"), e.Step)
		default:
			lines := strings.Split(e.Message, "\n")
			fmt.Fprintf(p.w, "  %s %s: %s\n", p.st.Red("✗"), e.Step, p.st.Red("failed: "+lines[0]))
			for _, l := range lines[1:] {
				fmt.Fprintf(p.w, "      %s\n", l)
			}
		}
	case exec.EventSkipped:
		p.done++
		fmt.Fprintf(p.w, "  %s %s: %s\n", p.st.Dim("-"), e.Step, e.Message)
	case exec.EventDeferred:
		p.done++
		fmt.Fprintf(p.w, "  %s %s: deferred: %s\n", p.st.Yellow("…"), e.Step, e.Message)
	case exec.EventChange:
		fmt.Fprintf(p.w, "  %s %s\n", p.st.Green("~"), e.Message)
	}
	p.drawStatus()
}

func (p *Progress) clearStatus() {
	if p.tty && p.status {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.status = false
	}
}

func (p *Progress) drawStatus() {
	if !p.tty || p.done >= p.total {
		return
	}
	names := make([]string, 0, len(p.running))
	for n := range p.running {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %ds", n, int(time.Since(p.running[n]).Seconds())))
	}
	line := fmt.Sprintf("[%d/%d done, %d cached] running: %s", p.done, p.total, p.cached, strings.Join(parts, ", "))
	if len(line) > 160 {
		line = line[:157] + "..."
	}
	fmt.Fprint(p.w, p.st.Dim(line))
	p.status = true
}

// Tick redraws the status line (call it periodically on a terminal).
func (p *Progress) Tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearStatus()
	p.drawStatus()
}

// Finish clears the status line and writes out every line.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearStatus()
	p.w.Flush()
}

// JSONEvents writes each event as one JSON line, for tools; flush writes
// out the last ones (a line waits at most outputLag otherwise).
func JSONEvents(w io.Writer) (events func(exec.Event), flush func()) {
	var mu sync.Mutex
	lw := newLagWriter(w, outputLag)
	enc := json.NewEncoder(lw)
	return func(e exec.Event) {
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(e)
		}, func() {
			lw.Flush()
		}
}

// ApplySummary prints how a run ended.
func ApplySummary(w io.Writer, rep *exec.Report, elapsed time.Duration) {
	st := StyleFor(w)
	c := rep.Counts
	line := fmt.Sprintf("%d ran, %d cached, %d failed, %d skipped", c[state.StatusSucceeded], c[state.StatusCached], c[state.StatusFailed]+c[state.StatusCancelled], c[exec.StatusSkipped])
	deferred := 0
	for _, s := range rep.Steps {
		if s.Deferred {
			deferred++
		}
	}
	if deferred > 0 {
		line = fmt.Sprintf("%s (%d deferred)", line, deferred)
	}
	switch rep.Status {
	case state.StatusSucceeded:
		fmt.Fprintf(w, "\n%s %s in %v. Run %s.\n", st.Green("Apply complete:"), line, elapsed.Round(time.Millisecond), rep.RunID)
	case state.StatusCancelled:
		fmt.Fprintf(w, "\n%s %s. Run %s. Finished steps are kept: apply again to resume.\n", st.Yellow("Apply cancelled:"), line, rep.RunID)
	default:
		fmt.Fprintf(w, "\n%s %s. Run %s. Finished steps are kept: fix the failure and apply again.\n", st.Red("Apply failed:"), line, rep.RunID)
	}
}
