package kubernetes

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"weir.dev/weir/runtime/backend"
)

// watcher follows the backend's Jobs and their pods through one shared
// informer factory (namespace and managed-by label filtered): one LIST and
// one WATCH per kind for all tasks, whatever their number. The reflectors
// relist and rewatch after the API server restarts, and the handlers then
// see every object's current state: nothing is lost.
type watcher struct {
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
	jobs    cache.SharedIndexInformer
	pods    cache.SharedIndexInformer
	stopCh  chan struct{}
	once    sync.Once

	mu    sync.Mutex
	tasks map[string]*task // by Job name
}

// watcherFor returns the backend's watcher, started and synced.
func (b *Backend) watcherFor(ctx context.Context) (*watcher, error) {
	cs, err := b.clients(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	w := b.w
	if w == nil {
		w = newWatcher(cs, b.cfg.Namespace)
		b.w = w
	}
	b.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), w.jobs.HasSynced, w.pods.HasSynced) {
		cfg := b.config()
		return nil, &ClusterError{Backend: cfg.Name, Where: b.host,
			Err: fmt.Errorf("listing Jobs and pods in namespace %s did not finish within 30s (RBAC must allow list and watch on jobs.batch and pods)", cfg.Namespace)}
	}
	return w, nil
}

func newWatcher(cs kubernetes.Interface, ns string) *watcher {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelManagedBy + "=" + ManagedBy }))
	w := &watcher{client: cs, factory: f, stopCh: make(chan struct{}), tasks: map[string]*task{},
		jobs: f.Batch().V1().Jobs().Informer(), pods: f.Core().V1().Pods().Informer()}
	w.jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.onJob(o, false) },
		UpdateFunc: func(_, o any) { w.onJob(o, false) },
		DeleteFunc: func(o any) { w.onJob(o, true) },
	})
	w.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.onPod(o) },
		UpdateFunc: func(_, o any) { w.onPod(o) },
	})
	f.Start(w.stopCh)
	return w
}

func (w *watcher) stop() { w.once.Do(func() { close(w.stopCh) }) }

func (w *watcher) add(t *task) {
	w.mu.Lock()
	w.tasks[t.name] = t
	w.mu.Unlock()
	// The Job may already be in the cache (a task watched again).
	if o, ok, _ := w.jobs.GetStore().GetByKey(t.ns + "/" + t.name); ok {
		w.onJob(o, false)
	}
}

func (w *watcher) get(name string) *task {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tasks[name]
}

func (w *watcher) forget(name string) {
	w.mu.Lock()
	delete(w.tasks, name)
	w.mu.Unlock()
}

// task is one submitted Job, as its watcher knows it.
type task struct {
	id, ns, name, step string
	workers            int
	queue              string
	memory             string
	start              time.Time
	client             kubernetes.Interface
	logPath            string

	mu      sync.Mutex
	events  []backend.Event
	wake    chan struct{} // signalled when events or done change
	said    map[string]bool
	running bool
	// failure is the last failed pod's story: its reason, exit code and
	// name (for its log tail).
	failure   podFailure
	logs      map[string]bool // pods whose log is followed
	logsWG    sync.WaitGroup
	tail      []string // the last lines seen, for a failure's message
	logf      *os.File
	logCancel context.CancelFunc
	// collect brings the outputs back from the bucket (nil without one).
	collect   func(context.Context) error
	cancelled bool
	ending    bool
	done      chan struct{}
	result    backend.Result
}

type podFailure struct {
	pod, reason, message string
	exitCode             int
}

func (t *task) push(e backend.Event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// once pushes an event the first time its message is seen.
func (t *task) once(key string, e backend.Event) {
	t.mu.Lock()
	if t.said[key] {
		t.mu.Unlock()
		return
	}
	t.said[key] = true
	t.mu.Unlock()
	t.push(e)
}

func (w *watcher) onJob(o any, deleted bool) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	j, ok := o.(*batchv1.Job)
	if !ok {
		return
	}
	t := w.get(j.Name)
	if t == nil || t.ns != j.Namespace {
		return
	}
	if deleted {
		if t.isCancelled() {
			t.finish(backend.Result{State: backend.StateCancelled, ExitCode: -1, Message: "cancelled"})
		} else if st, msg := jobState(j); st.Terminal() {
			w.end(t, j, st, msg)
		} else {
			t.finish(backend.Result{State: backend.StateFailed, ExitCode: -1, Message: "the Job " + j.Name + " was deleted before it ended"})
		}
		return
	}
	if j.DeletionTimestamp != nil && t.isCancelled() {
		return // foreground deletion under way: the pods go first
	}
	st, msg := jobState(j)
	switch {
	case st.Terminal():
		w.end(t, j, st, msg)
	case st == backend.StatePending && msg != "":
		t.once("job:"+msg, backend.Event{State: backend.StatePending, Message: msg})
	}
}

// jobState reads a Job's state from its conditions.
func jobState(j *batchv1.Job) (backend.State, string) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return backend.StateSucceeded, ""
		case batchv1.JobFailed:
			return backend.StateFailed, strings.TrimSpace(c.Reason + ": " + c.Message)
		case batchv1.JobSuspended:
			msg := "the Job is suspended"
			if q := j.Labels[LabelQueue]; q != "" {
				msg = "waiting for Kueue to admit the Job to queue " + q
			}
			return backend.StatePending, msg
		}
	}
	if j.Spec.Suspend != nil && *j.Spec.Suspend {
		msg := "the Job is suspended"
		if q := j.Labels[LabelQueue]; q != "" {
			msg = "waiting for Kueue to admit the Job to queue " + q
		}
		return backend.StatePending, msg
	}
	return backend.StatePending, ""
}

// end finishes a task whose Job ended, with the failing pod's reason and
// log tail when it failed. The log is read off the informer's goroutine.
func (w *watcher) end(t *task, j *batchv1.Job, st backend.State, msg string) {
	t.mu.Lock()
	if t.ending {
		t.mu.Unlock()
		return
	}
	t.ending = true
	t.mu.Unlock()
	res := backend.Result{State: st}
	if j.Status.StartTime != nil && j.Status.CompletionTime != nil {
		res.Duration = j.Status.CompletionTime.Sub(j.Status.StartTime.Time)
	}
	go func() {
		t.waitLogs(2 * time.Second)
		if st == backend.StateFailed {
			res.ExitCode = 1
			t.mu.Lock()
			f := t.failure
			tail := append([]string(nil), t.tail...)
			t.mu.Unlock()
			var b strings.Builder
			b.WriteString("the Job failed")
			if msg != "" {
				b.WriteString(" (" + msg + ")")
			}
			if f.pod != "" {
				fmt.Fprintf(&b, "; pod %s: %s", f.pod, f.reason)
				if f.exitCode != 0 {
					res.ExitCode = f.exitCode
					fmt.Fprintf(&b, " (exit code %d)", f.exitCode)
				}
				if strings.HasPrefix(f.reason, "OOMKilled") && t.memory != "" {
					b.WriteString(" (the memory limit is " + t.memory + ")")
				}
				if f.message != "" {
					b.WriteString(": " + f.message)
				}
				if len(tail) == 0 {
					tail = t.readTail(f.pod, 20)
				}
			}
			if len(tail) > 0 {
				b.WriteString("\nlog tail:\n" + strings.Join(tail, "\n"))
			}
			res.Message = b.String()
		}
		if t.collect != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			err := t.collect(ctx)
			cancel()
			if err != nil && res.State == backend.StateSucceeded {
				res.State, res.ExitCode = backend.StateFailed, 1
				res.Message = "collecting the outputs from the bucket: " + err.Error()
			}
		}
		t.finish(res)
	}()
}

func (t *task) isCancelled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cancelled
}

// finish records the task's end, once.
func (t *task) finish(r backend.Result) {
	t.mu.Lock()
	select {
	case <-t.done:
		t.mu.Unlock()
		return
	default:
	}
	if r.Duration == 0 {
		r.Duration = time.Since(t.start)
	}
	t.result = r
	close(t.done)
	t.mu.Unlock()
	t.logCancel()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// onPod reports what a Job's pod is going through: unschedulable (with the
// scheduler's message), image pull failures, running (its log followed),
// OOM kills, evictions, failures.
func (w *watcher) onPod(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	job := p.Labels[batchv1.JobNameLabel]
	if job == "" {
		job = p.Labels["job-name"]
	}
	t := w.get(job)
	if t == nil || t.ns != p.Namespace {
		return
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			t.once("sched:"+c.Message, backend.Event{State: backend.StatePending, Message: "cannot be scheduled yet: " + c.Message})
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if wt := cs.State.Waiting; wt != nil {
			switch wt.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				t.once("pull:"+wt.Reason, backend.Event{State: backend.StatePending,
					Message: fmt.Sprintf("image %s cannot be pulled (%s): %s", cs.Image, wt.Reason, wt.Message)})
			case "CreateContainerConfigError", "CreateContainerError":
				t.once("create:"+wt.Message, backend.Event{State: backend.StatePending,
					Message: fmt.Sprintf("the container cannot be created (%s): %s", wt.Reason, wt.Message)})
			}
		}
		if tm := cs.State.Terminated; tm != nil && tm.ExitCode != 0 {
			t.failed(p.Name, tm.Reason, tm.Message, int(tm.ExitCode))
		}
	}
	if p.Status.Phase == corev1.PodFailed {
		reason, msg := p.Status.Reason, p.Status.Message
		switch {
		case reason == "Evicted":
			t.failed(p.Name, "evicted", msg, 0)
		case reason != "":
			t.failed(p.Name, reason, msg, 0)
		default:
			t.failed(p.Name, "failed", msg, 0)
		}
	}
	switch p.Status.Phase {
	case corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed:
		if p.Status.Phase == corev1.PodRunning || p.Spec.NodeName != "" {
			t.mu.Lock()
			first := !t.running
			t.running = true
			t.mu.Unlock()
			if first {
				t.push(backend.Event{State: backend.StateRunning})
			}
		}
		// A pod seen only once it ended (a short step) has its log read
		// whole: following a finished container returns it and ends.
		if p.Status.Phase == corev1.PodRunning || p.Spec.NodeName != "" {
			t.follow(p)
		}
	}
}

// failed records a failed pod, keeping the most telling reason seen for it.
func (t *task) failed(pod, reason, msg string, code int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if reason == "" {
		reason = "Error"
	}
	if t.failure.pod == pod && (reason == "failed" || reason == "Error") && t.failure.reason != "" {
		return
	}
	if code == 0 && t.failure.pod == pod {
		code = t.failure.exitCode
	}
	if reason == "OOMKilled" {
		reason = "OOMKilled: out of memory"
	}
	t.failure = podFailure{pod: pod, reason: reason, message: msg, exitCode: code}
}

// follow streams a pod's log to the log file and the watcher, once per pod.
// A cluster that cannot serve logs (kwok's nodes without log files) gets one
// line in the log file saying so.
func (t *task) follow(p *corev1.Pod) {
	t.mu.Lock()
	if t.logs[p.Name] || t.ending {
		t.mu.Unlock()
		return
	}
	t.logs[p.Name] = true
	t.logsWG.Add(1)
	t.mu.Unlock()
	prefix := ""
	if t.workers > 1 {
		prefix = "[" + p.Annotations[batchv1.JobCompletionIndexAnnotation] + "] "
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.mu.Lock()
	prev := t.logCancel
	t.logCancel = func() { prev(); cancel() }
	t.mu.Unlock()
	go func() {
		defer t.logsWG.Done()
		defer cancel()
		rc, err := t.client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "step", Follow: true}).Stream(ctx)
		if err != nil {
			if ctx.Err() == nil {
				t.writeLog(fmt.Sprintf("weir: the log of pod %s cannot be read: %v", p.Name, err))
			}
			return
		}
		defer rc.Close()
		t.copyLog(rc, prefix)
	}()
}

func (t *task) copyLog(r io.Reader, prefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := prefix + sc.Text()
		t.writeLog(line)
		t.mu.Lock()
		t.tail = append(t.tail, line)
		if len(t.tail) > 20 {
			t.tail = t.tail[len(t.tail)-20:]
		}
		t.mu.Unlock()
		t.push(backend.Event{Line: line})
	}
}

func (t *task) writeLog(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.logf != nil {
		t.logf.WriteString(line + "\n")
	}
}

// waitLogs waits for the logs being followed to end, for at most d.
func (t *task) waitLogs(d time.Duration) {
	done := make(chan struct{})
	go func() { t.logsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.logCancel()
		<-done
	}
}

// readTail reads the last n lines of a pod's log (nil when it cannot).
func (t *task) readTail(pod string, n int64) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := t.client.CoreV1().Pods(t.ns).GetLogs(pod, &corev1.PodLogOptions{Container: "step", TailLines: &n}).DoRaw(ctx)
	if err != nil {
		return []string{fmt.Sprintf("(the log of pod %s cannot be read: %v)", pod, statusMessage(err))}
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Watch reports a task's state changes and log lines to fn until its Job
// ends, and returns how it ended.
func (b *Backend) Watch(ctx context.Context, id string, fn func(backend.Event)) (*backend.Result, error) {
	w, err := b.watcherFor(ctx)
	if err != nil {
		return nil, err
	}
	t, err := b.taskOf(ctx, w, id)
	if err != nil {
		return nil, err
	}
	for {
		t.mu.Lock()
		evs := t.events
		t.events = nil
		t.mu.Unlock()
		for _, e := range evs {
			if fn != nil {
				fn(e)
			}
		}
		select {
		case <-t.done:
			t.mu.Lock()
			evs := t.events
			t.events = nil
			t.mu.Unlock()
			if fn != nil {
				for _, e := range evs {
					fn(e)
				}
			}
			w.forget(t.name)
			t.closeLog()
			r := t.result
			if fn != nil {
				fn(backend.Event{State: r.State, Message: r.Message})
			}
			return &r, nil
		default:
		}
		select {
		case <-t.wake:
		case <-t.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (t *task) closeLog() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.logf != nil {
		t.logf.Close()
		t.logf = nil
	}
}

// taskOf finds the task of an ID (NAMESPACE/JOB): one this backend
// submitted, or a Job of Weir's it finds in the cluster (a task watched
// again after it was collected is not found).
func (b *Backend) taskOf(ctx context.Context, w *watcher, id string) (*task, error) {
	ns, name, ok := strings.Cut(id, "/")
	if !ok {
		return nil, fmt.Errorf("task %s: %w", id, backend.ErrNotFound)
	}
	if t := w.get(name); t != nil && t.ns == ns {
		return t, nil
	}
	o, exists, _ := w.jobs.GetStore().GetByKey(id)
	if !exists {
		return nil, fmt.Errorf("task %s: %w", id, backend.ErrNotFound)
	}
	j := o.(*batchv1.Job)
	t := newTask(id, ns, name, j.Annotations[AnnotationStep], w.client)
	if j.Spec.Completions != nil {
		t.workers = int(*j.Spec.Completions)
	}
	w.add(t)
	// Its pods' state, as the cache has it.
	for _, p := range w.pods.GetStore().List() {
		w.onPod(p)
	}
	return t, nil
}

func newTask(id, ns, name, step string, cs kubernetes.Interface) *task {
	return &task{id: id, ns: ns, name: name, step: step, client: cs, start: time.Now(), wake: make(chan struct{}, 1),
		said: map[string]bool{}, logs: map[string]bool{}, done: make(chan struct{}), logCancel: func() {}}
}
