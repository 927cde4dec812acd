package exec

import (
	"context"
	"fmt"
	"sort"

	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// The scheduler hands out slots: a step holds one (in all, on its backend,
// and its GPUs) only while its program runs. A launched step prepares its
// work folder and inputs first, then asks for a slot; once its program has
// ended it gives the slot back and only then stores its outputs and records
// the result. So the next step's program starts as soon as one ends, and
// Weir's own work per step overlaps the programs instead of adding to
// them. At most Parallelism launched steps wait or prepare besides the
// running ones; steps launch, and waiting steps get slots, in plan order.
//
// Everything below runs on the scheduler's goroutine, except acquire and
// release, which steps call.

// phase is where a node is in the scheduler's eyes.
type phase uint8

const (
	phaseIdle      phase = iota // not launched
	phasePreparing              // launched, has not asked for a slot yet
	phaseWaiting                // asked for a slot
	phaseHolding                // holds a slot
	phaseReleased               // gave its slot back, or never needed one
)

// slotRequest is a step asking for a slot for one attempt.
type slotRequest struct {
	n       *node
	attempt int
}

// notStarted is the scheduler's refusal to start an attempt: the step ends
// with this status and message, and nothing about the attempt is recorded.
type notStarted struct {
	status state.Status
	msg    string
}

func (e *notStarted) Error() string { return e.msg }

// acquire waits for a slot to run n's attempt; a *notStarted error means
// the attempt must not start. Every acquire that succeeds is followed by
// one release.
func (r *Run) acquire(n *node, attempt int) error {
	r.wants <- slotRequest{n: n, attempt: attempt}
	if ns := <-n.grant; ns != nil {
		return ns
	}
	return nil
}

// release gives n's slot back; failed says the step fails for good.
func (r *Run) release(n *node, failed bool) { r.frees <- slotRelease{n: n, failed: failed} }

// slotRelease is a step giving its slot back.
type slotRelease struct {
	n      *node
	failed bool
}

// nodeHeap orders nodes by their place in the plan.
type nodeHeap []*node

func (h *nodeHeap) push(n *node) {
	*h = append(*h, n)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].index <= s[i].index {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *nodeHeap) pop() *node {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = nil
	s = s[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(s) && s[l].index < s[m].index {
			m = l
		}
		if l+1 < len(s) && s[l+1].index < s[m].index {
			m = l + 1
		}
		if m == i {
			break
		}
		s[m], s[i] = s[i], s[m]
		i = m
	}
	*h = s
	return top
}

// scheduler is the state of one schedule call.
type scheduler struct {
	r        *Run
	ctx      context.Context
	results  chan *node
	work     chan *node    // hands a node to an idle worker
	quit     chan struct{} // closed when the schedule ends: idle workers return
	ready    nodeHeap      // needs done, not launched
	waiting  []*node       // asked for a slot, by plan order
	attempts map[*node]int

	active     int // launched steps that have not reported
	preparing  int // launched steps that take slots, not yet granted one
	running    int // slots held
	perBackend map[string]int
	gpusFree   map[string]int
	remaining  int

	stopLaunching, failed, cancelled bool
	// starved: a slot is free and nothing is ready to launch (the state's
	// group waits are off meanwhile).
	starved bool
}

// schedule runs nodes as their needs finish, within the limits.
func (r *Run) schedule(ctx context.Context, order []*node) error {
	sc := &scheduler{r: r, ctx: ctx, results: make(chan *node), work: make(chan *node), quit: make(chan struct{}), attempts: map[*node]int{},
		perBackend: map[string]int{}, gpusFree: map[string]int{}, remaining: len(order)}
	for b, g := range r.opts.GPUs {
		sc.gpusFree[b] = g
	}
	for _, n := range order {
		if n.pending == 0 {
			sc.ready.push(n)
		}
	}
	defer close(sc.quit)
	defer func() {
		if sc.starved {
			r.opts.State.HoldGroups(true)
		}
	}()
	done := ctx.Done()
	for sc.remaining > 0 {
		if ctx.Err() != nil && !sc.stopLaunching {
			sc.stop(true)
		}
		sc.launch()
		sc.grant()
		if sc.remaining == 0 || sc.active == 0 {
			break // all finished (active is never 0 while steps remain)
		}
		// A free slot and nothing to launch: what comes next may wait for
		// results waiting to be committed with others'; they commit now.
		if starved := len(sc.ready) == 0 && sc.running+sc.preparing < r.opts.Parallelism; starved != sc.starved && r.opts.State != nil {
			sc.starved = starved
			r.opts.State.HoldGroups(!starved)
		}
		if sc.stopLaunching {
			done = nil
		}
		select {
		case req := <-r.wants:
			sc.want(req)
		case rel := <-r.frees:
			sc.free(rel.n)
			if rel.failed && !r.opts.KeepGoing {
				sc.stop(false) // the step's result follows
			}
		case n := <-sc.results:
			sc.active--
			r.active.Add(-1)
			switch n.phase {
			case phasePreparing, phaseWaiting:
				sc.preparing--
			case phaseHolding:
				sc.free(n)
			}
			n.phase = phaseReleased
			switch n.report.Status {
			case state.StatusFailed:
				sc.failed = true
				if !r.opts.KeepGoing {
					sc.stop(false)
				}
			case state.StatusCancelled:
				sc.stop(true)
			}
			sc.finish(n, n.report)
		case <-done:
			sc.stop(true)
		}
	}
	switch {
	case sc.cancelled:
		return ErrCancelled
	case sc.failed:
		return ErrFailed
	}
	return nil
}

// takesSlot reports whether n runs a program or builtin (a cached step
// takes a slot only if it cannot be reused after all, when it asks).
func takesSlot(n *node) bool { return n.step.Action != schema.ActionCached }

func gpusOf(n *node) int {
	if n.step.Run != nil && n.step.Run.Resources != nil {
		return n.step.Run.Resources.GPU
	}
	return 0
}

// fits reports whether n's attempt can start now.
func (sc *scheduler) fits(n *node) bool {
	if sc.running >= sc.r.opts.Parallelism {
		return false
	}
	if n.step.Builtin {
		return true
	}
	b := n.step.Backend
	if lim := sc.r.opts.Limits[b]; lim > 0 && sc.perBackend[b] >= lim {
		return false
	}
	return gpusOf(n) == 0 || sc.gpusFree[b] >= gpusOf(n)
}

// stop launches nothing more: ready steps are skipped, waiting ones are
// refused. A cancelled run also refuses retries.
func (sc *scheduler) stop(cancelled bool) {
	sc.stopLaunching = true
	if cancelled {
		sc.cancelled = true
	}
	for len(sc.ready) > 0 {
		n := sc.ready.pop()
		why := sc.whyNotStarted()
		sc.r.event(Event{Type: EventSkipped, Step: n.step.Address, Message: why})
		sc.finish(n, &StepReport{Address: n.step.Address, Status: StatusSkipped, Message: why})
	}
	var keep []*node
	for _, n := range sc.waiting {
		if ns := sc.refusal(n); ns != nil {
			sc.deny(n, ns)
		} else {
			keep = append(keep, n)
		}
	}
	sc.waiting = keep
}

func (sc *scheduler) whyNotStarted() string {
	if sc.cancelled {
		return "not started: apply was cancelled"
	}
	return "not started: an earlier step failed"
}

// refusal says why n's attempt may not start, or nil: nothing starts after
// a cancel, no step starts after a failure (without --keep-going) but
// retries of steps already running go on, and a step that wants more GPUs
// than its backend has fails.
func (sc *scheduler) refusal(n *node) *notStarted {
	attempt := sc.attempts[n]
	switch {
	case sc.cancelled && attempt > 1:
		return &notStarted{status: state.StatusCancelled, msg: "cancelled while waiting to retry"}
	case sc.stopLaunching && attempt <= 1:
		return &notStarted{status: StatusSkipped, msg: sc.whyNotStarted()}
	case sc.cancelled:
		return &notStarted{status: state.StatusCancelled, msg: "cancelled"}
	}
	if !n.step.Builtin {
		b := n.step.Backend
		if g := gpusOf(n); g > 0 && g > sc.r.opts.GPUs[b] {
			return &notStarted{status: state.StatusFailed, msg: fmt.Sprintf("needs %d GPUs but backend %s has %d", g, b, sc.r.opts.GPUs[b])}
		}
	}
	return nil
}

func (sc *scheduler) deny(n *node, ns *notStarted) {
	sc.preparing--
	n.phase = phaseReleased
	n.grant <- ns
}

// launch starts ready steps: cached ones at once, the others while fewer
// than Parallelism launched steps are short of a slot.
func (sc *scheduler) launch() {
	for len(sc.ready) > 0 && !sc.stopLaunching {
		n := sc.ready[0]
		slot := takesSlot(n)
		if slot && sc.preparing >= sc.r.opts.Parallelism {
			return
		}
		sc.ready.pop()
		sc.active++
		sc.r.active.Add(1)
		n.phase = phaseReleased
		if slot {
			sc.preparing++
			n.phase = phasePreparing
		}
		select {
		case sc.work <- n: // an idle worker takes it
		default:
			go sc.worker(n)
		}
	}
}

// worker runs n, then the nodes launch hands it, until the schedule ends.
// Workers are reused because a new goroutine's stack grows (and is
// copied) while running a step, a good part of a short step's cost.
func (sc *scheduler) worker(n *node) {
	for {
		rep := sc.r.runNode(sc.ctx, n)
		sc.r.mu.Lock()
		n.report = rep
		sc.r.mu.Unlock()
		sc.results <- n
		select {
		case n = <-sc.work:
		case <-sc.quit:
			return
		}
	}
}

// want queues a slot request, or refuses it at once.
func (sc *scheduler) want(req slotRequest) {
	n := req.n
	sc.attempts[n] = req.attempt
	if n.phase != phasePreparing {
		sc.preparing++ // a cached step that runs after all, or a retry
	}
	if ns := sc.refusal(n); ns != nil {
		sc.deny(n, ns)
		return
	}
	n.phase = phaseWaiting
	i := sort.Search(len(sc.waiting), func(i int) bool { return sc.waiting[i].index > n.index })
	sc.waiting = append(sc.waiting, nil)
	copy(sc.waiting[i+1:], sc.waiting[i:])
	sc.waiting[i] = n
}

// grant gives slots to waiting steps that fit, in plan order.
func (sc *scheduler) grant() {
	for i := 0; i < len(sc.waiting) && sc.running < sc.r.opts.Parallelism; {
		n := sc.waiting[i]
		if !sc.fits(n) {
			i++
			continue
		}
		sc.waiting = append(sc.waiting[:i], sc.waiting[i+1:]...)
		sc.preparing--
		sc.running++
		if !n.step.Builtin {
			sc.perBackend[n.step.Backend]++
			sc.gpusFree[n.step.Backend] -= gpusOf(n)
		}
		n.phase = phaseHolding
		n.grant <- nil
	}
}

// free takes a slot back.
func (sc *scheduler) free(n *node) {
	if n.phase != phaseHolding {
		return
	}
	n.phase = phaseReleased
	sc.running--
	if !n.step.Builtin {
		sc.perBackend[n.step.Backend]--
		sc.gpusFree[n.step.Backend] += gpusOf(n)
	}
}

// finish records how n ended and readies (or skips) the steps that need it.
func (sc *scheduler) finish(n *node, rep *StepReport) {
	r := sc.r
	r.mu.Lock()
	n.report, n.done = rep, true
	r.mu.Unlock()
	sc.remaining--
	ok := rep.Status == state.StatusSucceeded || rep.Status == state.StatusCached || rep.Deferred
	if ok {
		// Changes that waited for this step (an alias for a new model
		// version) apply before any step that reads through them.
		r.applyReadyChanges(sc.ctx)
	}
	for _, d := range n.down {
		d.pending--
		if !ok && d.blocked == "" {
			d.blocked = n.step.Address
		}
		if d.pending > 0 || d.done {
			continue
		}
		if d.blocked != "" {
			why := "skipped: " + d.blocked + " did not succeed"
			r.event(Event{Type: EventSkipped, Step: d.step.Address, Message: why})
			sc.finish(d, &StepReport{Address: d.step.Address, Status: StatusSkipped, Message: why})
			continue
		}
		if sc.stopLaunching {
			why := sc.whyNotStarted()
			r.event(Event{Type: EventSkipped, Step: d.step.Address, Message: why})
			sc.finish(d, &StepReport{Address: d.step.Address, Status: StatusSkipped, Message: why})
			continue
		}
		sc.ready.push(d)
	}
}
