package kubernetes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// The tests in this file run the backend against client-go's fake
// clientset: each case the real API server cannot be steered into cheaply
// (an OOM kill, an eviction, an image pull failure: kwok runs no
// container) or that needs no cluster. cluster_test.go shows each
// behaviour against the real API server.

type recorder struct {
	mu     sync.Mutex
	events []backend.Event
}

func (r *recorder) add(e backend.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) messages() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.events {
		if e.Message != "" {
			b.WriteString(string(e.State) + ": " + e.Message + "\n")
		}
	}
	return b.String()
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Line != "" {
			out = append(out, e.Line)
		}
	}
	return out
}

func fakeBackend(t *testing.T, b *schema.Backend, objs ...runtime.Object) (*Backend, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	be := NewWithClients(testConfig(t, b), cs, dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()))
	t.Cleanup(func() { be.Close() })
	return be, cs
}

func testTask(t *testing.T, step string) *backend.Task {
	work := t.TempDir()
	return &backend.Task{RunID: "run-1", Step: step, Attempt: 1, Argv: []string{"sh", "-c", "echo hi"}, Image: "busybox",
		WorkDir: work, Dir: work, LogPath: filepath.Join(work, "log.txt"),
		Env: map[string]string{"WEIR_STEP": step, "WEIR_RUN_ID": "run-1", "WEIR_METRICS": filepath.Join(work, "metrics.jsonl"),
			"HOME": work, "TMPDIR": work, "PATH": "/usr/bin", "API_KEY": "s3cret"}}
}

// watchAsync watches a task in the background.
func watchAsync(b *Backend, id string) (*recorder, chan *backend.Result) {
	rec := &recorder{}
	ch := make(chan *backend.Result, 1)
	go func() {
		r, err := b.Watch(context.Background(), id, rec.add)
		if err != nil {
			r = &backend.Result{State: "error", Message: err.Error()}
		}
		ch <- r
	}()
	return rec, ch
}

func wait(t *testing.T, ch chan *backend.Result) *backend.Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Watch did not return")
		return nil
	}
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func setJobCondition(t *testing.T, cs *fake.Clientset, ns, name string, typ batchv1.JobConditionType, reason, msg string) {
	t.Helper()
	ctx := context.Background()
	j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	now := metav1.Now()
	j.Status.StartTime = &now
	if typ == batchv1.JobComplete {
		j.Status.CompletionTime = &now
	}
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg})
	_, err = cs.BatchV1().Jobs(ns).UpdateStatus(ctx, j, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func podOf(ns, job, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels: map[string]string{batchv1.JobNameLabel: job, LabelManagedBy: ManagedBy}}}
}

func TestFakeSubmitSucceedsWithLogs(t *testing.T) {
	b, cs := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Namespace: "ml"})
	task := testTask(t, "tasks.hello")
	id, err := b.Submit(context.Background(), task)
	require.NoError(t, err)
	ns, name, _ := strings.Cut(id, "/")
	assert.Equal(t, "ml", ns)
	ctx := context.Background()

	j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(0), *j.Spec.BackoffLimit, "the executor retries")
	require.Len(t, j.OwnerReferences, 1)
	assert.Equal(t, "ConfigMap", j.OwnerReferences[0].Kind)
	assert.Equal(t, RunParentName("run-1"), j.OwnerReferences[0].Name)
	assert.Equal(t, "run-1", j.Labels[LabelRun])
	c := j.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	assert.Equal(t, "/weir/metrics.jsonl", env["WEIR_METRICS"])
	assert.Equal(t, "/weir", env["HOME"])
	assert.NotContains(t, env, "PATH", "the image's PATH, not this machine's")
	assert.NotContains(t, env, "API_KEY", "variables that may be secret stay out of the Job")
	require.Len(t, c.EnvFrom, 1)
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, c.EnvFrom[0].SecretRef.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "s3cret", string(sec.Data["API_KEY"]))
	assert.Equal(t, RunParentName("run-1"), sec.OwnerReferences[0].Name)

	rec, ch := watchAsync(b, id)
	p := podOf(ns, name, name+"-abcde")
	p.Status.Phase = corev1.PodRunning
	_, err = cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	require.NoError(t, err)
	// The fake clientset answers every log request with "fake logs".
	eventually(t, "the log line", func() bool { return len(rec.lines()) > 0 })
	setJobCondition(t, cs, ns, name, batchv1.JobComplete, "", "")
	r := wait(t, ch)
	assert.Equal(t, backend.StateSucceeded, r.State, r.Message)
	assert.Equal(t, []string{"fake logs"}, rec.lines())
	log, _ := os.ReadFile(task.LogPath)
	assert.Equal(t, "fake logs\n", string(log))

	// A second attempt of the run reuses its parent.
	task2 := testTask(t, "tasks.hello")
	task2.Attempt = 2
	_, err = b.Submit(ctx, task2)
	require.NoError(t, err)
	cms, _ := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	assert.Len(t, cms.Items, 1)
}

func TestFakeFailureReasons(t *testing.T) {
	for _, c := range []struct {
		name string
		pod  func(p *corev1.Pod)
		want []string
	}{
		{"oom", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "step", State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
		}, []string{"OOMKilled: out of memory (exit code 137) (the memory limit is 64Mi)", "log tail:\nfake logs"}},
		{"evicted", func(p *corev1.Pod) {
			p.Status.Phase, p.Status.Reason = corev1.PodFailed, "Evicted"
			p.Status.Message = "The node was low on resource: memory."
		}, []string{"evicted: The node was low on resource: memory."}},
		{"exit", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "step", State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}
		}, []string{"Error (exit code 3)", "BackoffLimitExceeded"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, cs := fakeBackend(t, &schema.Backend{Kind: "kubernetes"})
			task := testTask(t, "tasks.fail")
			task.Resources = &schema.Resources{Memory: "64Mi"}
			id, err := b.Submit(context.Background(), task)
			require.NoError(t, err)
			ns, name, _ := strings.Cut(id, "/")
			_, ch := watchAsync(b, id)
			p := podOf(ns, name, name+"-x")
			c.pod(p)
			_, err = cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
			require.NoError(t, err)
			eventually(t, "the failed pod seen", func() bool {
				w := b.w
				tk := w.get(name)
				tk.mu.Lock()
				defer tk.mu.Unlock()
				return tk.failure.pod != ""
			})
			setJobCondition(t, cs, ns, name, batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
			r := wait(t, ch)
			assert.Equal(t, backend.StateFailed, r.State)
			for _, w := range c.want {
				assert.Contains(t, r.Message, w)
			}
			assert.Contains(t, r.Message, "pod "+name+"-x")
		})
	}
}

func TestFakePendingReasons(t *testing.T) {
	b, cs := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Queue: "team"})
	id, err := b.Submit(context.Background(), testTask(t, "tasks.wait"))
	require.NoError(t, err)
	ns, name, _ := strings.Cut(id, "/")
	rec, ch := watchAsync(b, id)
	ctx := context.Background()
	eventually(t, "the suspended Job reported", func() bool {
		return strings.Contains(rec.messages(), "pending: waiting for Kueue to admit the Job to queue team")
	})
	p := podOf(ns, name, name+"-p")
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "step", Image: "busybox:nope", State: corev1.ContainerState{
		Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "busybox:nope"`}}}}
	_, err = cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	require.NoError(t, err)
	eventually(t, "the pod's troubles reported", func() bool {
		m := rec.messages()
		return strings.Contains(m, "pending: cannot be scheduled yet: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.") &&
			strings.Contains(m, "pending: image busybox:nope cannot be pulled (ImagePullBackOff)")
	})
	// Cancel deletes the Job and returns once it is gone.
	require.NoError(t, b.Cancel(ctx, id, time.Second))
	r := wait(t, ch)
	assert.Equal(t, backend.StateCancelled, r.State)
	_, err = cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	assert.Error(t, err)
	var fg bool
	for _, a := range cs.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "jobs" {
			fg = true
		}
	}
	assert.True(t, fg)
}

func TestFakeDistributedAndVolcano(t *testing.T) {
	b, cs := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Config: map[string]any{"gang": "volcano"}})
	s := &schema.Step{Address: "training.ddp", Kind: "train", Run: &schema.StepRun{Image: "pytorch", Command: []string{"torchrun", "train.py"}, Workers: 3,
		Resources: &schema.Resources{GPU: 1}}}
	_, err := b.Lower(context.Background(), s) // the backend learns the workers
	require.NoError(t, err)
	task := testTask(t, "training.ddp")
	task.Resources = s.Run.Resources
	id, err := b.Submit(context.Background(), task)
	require.NoError(t, err)
	ns, name, _ := strings.Cut(id, "/")
	ctx := context.Background()
	j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(3), *j.Spec.Completions)
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "Job", svc.OwnerReferences[0].Kind, "the Service goes with its Job")
	pg, err := b.dyn.Resource(podGroupResource()).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(3), pg.Object["spec"].(map[string]any)["minMember"])
	assert.Equal(t, "ConfigMap", pg.GetOwnerReferences()[0].Kind)
}

// A task says its step's workers and timeout itself: a backend that was
// never shown the plan (served as a plugin) runs it the same.
func TestFakeTaskCarriesWorkersAndTimeout(t *testing.T) {
	b, cs := fakeBackend(t, nil)
	task := testTask(t, "training.ddp")
	task.Kind, task.Element, task.Workers, task.Timeout = "train", "training.ddp", 4, 90*time.Minute
	id, err := b.Submit(context.Background(), task)
	require.NoError(t, err)
	ns, name, _ := strings.Cut(id, "/")
	j, err := cs.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(4), *j.Spec.Completions)
	assert.Equal(t, int64(5400), *j.Spec.ActiveDeadlineSeconds)
	assert.Equal(t, "train", j.Labels["app.kubernetes.io/component"])
}

func TestFakeWatchUnknown(t *testing.T) {
	b, _ := fakeBackend(t, nil)
	_, err := b.Watch(context.Background(), "default/nope", nil)
	assert.ErrorIs(t, err, backend.ErrNotFound)
	assert.NoError(t, b.Cancel(context.Background(), "default/nope", time.Second))
}

func TestFakeSubmitRefusesLocalFiles(t *testing.T) {
	b, _ := fakeBackend(t, &schema.Backend{Kind: "kubernetes"}) // no bucket
	task := testTask(t, "tasks.io")
	task.Outputs = map[string]string{"model": filepath.Join(task.WorkDir, "out", "model")}
	_, err := b.Submit(context.Background(), task)
	assert.ErrorContains(t, err, "step tasks.io has outputs, which a cluster cannot read from this machine: set config.bucket")
}

func TestFakeBucketLauncher(t *testing.T) {
	bucket := "file://" + t.TempDir()
	// The image carries the launcher already (image_test.go shows the
	// image Submit derives and pushes when it does not).
	b, cs := fakeBackend(t, &schema.Backend{Kind: "kubernetes", Config: map[string]any{"bucket": bucket, "launcher": LauncherInImage}})
	task := testTask(t, "tasks.io")
	in := filepath.Join(task.WorkDir, "in", "data")
	require.NoError(t, os.MkdirAll(filepath.Dir(in), 0o755))
	require.NoError(t, os.WriteFile(in, []byte("a,b\n"), 0o644))
	task.Inputs = map[string]string{"data": in}
	task.Outputs = map[string]string{"model": filepath.Join(task.WorkDir, "out", "model")}
	id, err := b.Submit(context.Background(), task)
	require.NoError(t, err)
	ns, name, _ := strings.Cut(id, "/")
	prefix := taskPrefix(task.Step, task.RunID, task.Attempt)
	_, err = os.Stat(filepath.Join(strings.TrimPrefix(bucket, "file://"), prefix, "manifest.json"))
	require.NoError(t, err, "Stage wrote the attempt's manifest")
	j, err := cs.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	c := j.Spec.Template.Spec.Containers[0]
	assert.Equal(t, []string{"/weir/bin/weir-launcher", "-bucket", bucket, "-prefix", prefix, "-root", "/weir", "--", "sh", "-c", "echo hi"}, c.Command)
	assert.Empty(t, j.Spec.Template.Spec.Volumes, "no volume hides the launcher under /weir")
	// The Job ends without the launcher having written its result (no
	// container ran): collecting says so.
	_, ch := watchAsync(b, id)
	setJobCondition(t, cs, ns, name, batchv1.JobComplete, "", "")
	r := wait(t, ch)
	assert.Equal(t, backend.StateFailed, r.State)
	assert.Contains(t, r.Message, "collecting the outputs from the bucket")
}

// What the backend's settings cannot carry is refused at plan time, before
// any cluster is asked: files without a bucket (per step), a bucket without
// a registry (once for the backend).
func TestCheckRefusesFilesTheSettingsCannotCarry(t *testing.T) {
	step := func(addr string) *schema.Step {
		return &schema.Step{Address: addr, Kind: "train", Outputs: []string{"model"},
			Run: &schema.StepRun{Image: "python", Command: []string{"python3", "train.py"}, Code: "./train"}}
	}
	b, _ := fakeBackend(t, &schema.Backend{Kind: "kubernetes"})
	errs := b.Check(context.Background(), []*schema.Step{step("training.a")})
	require.Len(t, errs, 1)
	assert.Equal(t, "training.a", errs[0].(*CheckError).Step)
	assert.ErrorContains(t, errs[0], "step training.a has outputs and a code folder, which a cluster cannot read from this machine: set config.bucket")

	b, _ = fakeBackend(t, &schema.Backend{Kind: "kubernetes", Config: map[string]any{"bucket": "file:///b"}})
	errs = b.Check(context.Background(), []*schema.Step{step("training.a"), step("training.b")})
	require.Len(t, errs, 1, "the missing registry is the backend's, said once")
	assert.ErrorContains(t, errs[0], "has config.bucket, so each step runs in an image weir derives (its image, code folder and the launcher) and pushes, but the backend names no registry")
}
