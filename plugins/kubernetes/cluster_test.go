package kubernetes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"weir.dev/weir/internal/k8stest"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// The tests in this file run against the real API server of
// internal/k8stest (etcd, kube-apiserver, controller manager, scheduler,
// kwok nodes: kwok-cpu-0/1 with 16 CPUs and 64Gi, kwok-gpu-0/1 with 4
// nvidia.com/gpu, labelled nvidia.com/gpu.product=a100 and tainted
// nvidia.com/gpu). kwok runs no container: its pods go Running, then
// Succeeded by themselves, and serve the logs SetPodLogs gives them. A
// failing pod is made by patching the status of a pod no node took (kwok
// would overwrite it otherwise); OOM kills, evictions and image pull
// failures cannot be made at all, and are covered with the fake clientset
// (fake_test.go).

// realBackend returns a backend on the test cluster in a namespace of the
// test's own, with its clientset.
func realBackend(t *testing.T, c *k8stest.Cluster, b *schema.Backend) (*Backend, kubernetes.Interface, string) {
	t.Helper()
	ns := c.Namespace(t)
	if b == nil {
		b = &schema.Backend{Kind: "kubernetes"}
	}
	if b.Kubeconfig == "" {
		b.Kubeconfig = c.Kubeconfig
	}
	if b.Namespace == "" {
		b.Namespace = ns
	}
	cfg, err := ParseConfig("k8s", b)
	require.NoError(t, err)
	cfg.Project = "weir-test"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	be, err := New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { be.Close() })
	return be, admin(t, c), ns
}

func admin(t *testing.T, c *k8stest.Cluster) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(t, err)
	rc.QPS, rc.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	return cs
}

func gpuTask(t *testing.T, step string, gpus int) *backend.Task {
	task := testTask(t, step)
	task.Resources = &schema.Resources{GPU: gpus, GPUType: "a100", CPU: 1, Memory: "1Gi"}
	return task
}

func run(t *testing.T, b *Backend, task *backend.Task) (*backend.Result, *recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := b.Submit(ctx, task)
	require.NoError(t, err)
	rec := &recorder{}
	r, err := b.Watch(ctx, id, rec.add)
	require.NoError(t, err)
	return r, rec
}

// TestClusterGPUJob: a step asking for a GPU of a model becomes a Job that
// the scheduler places on a GPU node (the limit, node selector and
// toleration right), that completes, whose labels are valid and whose
// owner is the run's ConfigMap; its pod's log is streamed.
func TestClusterGPUJob(t *testing.T) {
	c := k8stest.Get(t)
	b, cs, ns := realBackend(t, c, nil)
	ctx := context.Background()
	require.NoError(t, c.SetPodLogs(ctx, ns, "", "epoch 1 loss 0.5\nepoch 2 loss 0.25"))
	task := gpuTask(t, "training.churn.trial[lr=0.1]", 1)
	r, rec := run(t, b, task)
	require.Equal(t, backend.StateSucceeded, r.State, r.Message)
	assert.Equal(t, []string{"epoch 1 loss 0.5", "epoch 2 loss 0.25"}, rec.lines())
	log, _ := os.ReadFile(task.LogPath)
	assert.Contains(t, string(log), "epoch 2 loss 0.25")

	name := JobName(task.Step, task.RunID, task.Attempt)
	j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, RunParentName("run-1"), j.OwnerReferences[0].Name)
	assert.Equal(t, LabelValue("training.churn.trial[lr=0.1]"), j.Labels[LabelStep])
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
	require.NoError(t, err)
	require.Len(t, pods.Items, 1)
	assert.True(t, strings.HasPrefix(pods.Items[0].Spec.NodeName, "kwok-gpu-"), "scheduled on %q", pods.Items[0].Spec.NodeName)

	// Deleting the run's parent deletes its Jobs (the garbage collector).
	bg := metav1.DeletePropagationBackground
	require.NoError(t, cs.CoreV1().ConfigMaps(ns).Delete(ctx, RunParentName("run-1"), metav1.DeleteOptions{PropagationPolicy: &bg}))
	eventually30(t, "the run's Job deleted with its parent", func() bool {
		_, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		return err != nil
	})
}

func eventually30(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterUnschedulableThenCancel: a GPU request that fits a node but
// not now (all GPUs taken... here: more than free on any node of the a100
// pool while another step holds them) is reported while it waits with
// the scheduler's message; Cancel deletes the Job and returns once gone.
func TestClusterUnschedulableThenCancel(t *testing.T) {
	c := k8stest.Get(t)
	b, cs, ns := realBackend(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// 5 GPUs: more than a node has. Check refuses it at plan time (see
	// TestClusterPlanChecks); submitted anyway, it waits, reported.
	id, err := b.Submit(ctx, gpuTask(t, "tasks.big", 5))
	require.NoError(t, err)
	rec := &recorder{}
	done := make(chan *backend.Result, 1)
	go func() {
		r, err := b.Watch(context.Background(), id, rec.add)
		if err != nil {
			r = &backend.Result{Message: err.Error()}
		}
		done <- r
	}()
	eventually30(t, "the scheduler's message", func() bool {
		return strings.Contains(rec.messages(), "pending: cannot be scheduled yet: 0/4 nodes are available")
	})
	assert.Contains(t, rec.messages(), "Insufficient nvidia.com/gpu")
	t.Log(rec.messages())
	start := time.Now()
	require.NoError(t, b.Cancel(ctx, id, time.Second))
	t.Logf("Cancel took %v", time.Since(start))
	_, name, _ := strings.Cut(id, "/")
	_, err = cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	assert.Error(t, err, "the Job is gone when Cancel returns")
	r := <-done
	assert.Equal(t, backend.StateCancelled, r.State, r.Message)
}

// TestClusterFailingJob: a Job whose pod fails ends failed, with the pod's
// reason, exit code and log tail. The pod is one no node took (it asks
// for more GPUs than any node has), failed by patching its status as a
// kubelet would.
func TestClusterFailingJob(t *testing.T) {
	c := k8stest.Get(t)
	b, cs, ns := realBackend(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, c.SetPodLogs(ctx, ns, "", "loading data\nTraceback (most recent call last):\nValueError: bad row 17"))
	id, err := b.Submit(ctx, gpuTask(t, "tasks.fails", 5))
	require.NoError(t, err)
	_, name, _ := strings.Cut(id, "/")
	var pod *corev1.Pod
	eventually30(t, "the Job's pod", func() bool {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		if err == nil && len(l.Items) == 1 {
			pod = &l.Items[0]
		}
		return pod != nil
	})
	// Bound to a node kwok does not manage (so that nothing moves the pod
	// on) whose kubelet endpoint is kwok's, which serves its log.
	node := unmanagedNode(t, cs, "weir-unmanaged-"+ns)
	require.NoError(t, cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name},
		Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{}))
	// The pod ends as a kubelet would end it; the controllers may touch
	// it meanwhile (a conflict): then again on the newer pod.
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "step", Image: "busybox", ImageID: "busybox", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", StartedAt: metav1.Now(), FinishedAt: metav1.Now()}}}}
		_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	}))
	r, err := b.Watch(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, backend.StateFailed, r.State)
	assert.Equal(t, 3, r.ExitCode)
	assert.Contains(t, r.Message, "the Job failed (BackoffLimitExceeded")
	assert.Contains(t, r.Message, "pod "+pod.Name+": Error (exit code 3)")
	assert.Contains(t, r.Message, "log tail:\nloading data\nTraceback (most recent call last):\nValueError: bad row 17")
	t.Log(r.Message)
}

// TestClusterDistributed: three workers become an Indexed Job with a
// headless Service; every pod gets its rank from its completion index and
// pod 0's stable name as MASTER_ADDR.
func TestClusterDistributed(t *testing.T) {
	c := k8stest.Get(t)
	b, cs, ns := realBackend(t, c, nil)
	ctx := context.Background()
	b.Prepare([]*schema.Step{{Address: "training.ddp", Kind: "train", Run: &schema.StepRun{Image: "pytorch", Command: []string{"torchrun"}, Workers: 3}}})
	task := gpuTask(t, "training.ddp", 1)
	r, _ := run(t, b, task)
	require.Equal(t, backend.StateSucceeded, r.State, r.Message)
	name := JobName(task.Step, task.RunID, task.Attempt)
	j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(3), j.Status.Succeeded)
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP)
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
	require.NoError(t, err)
	require.Len(t, pods.Items, 3)
	idx := map[string]bool{}
	for _, p := range pods.Items {
		i := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		idx[i] = true
		assert.Equal(t, name+"-"+i, p.Spec.Hostname, "a stable host name per rank")
		assert.Equal(t, name, p.Spec.Subdomain)
	}
	assert.Equal(t, map[string]bool{"0": true, "1": true, "2": true}, idx)
}

// TestClusterKueueQueue: with a queue, the Job is created suspended with
// Kueue's label and reported waiting; once admitted (unsuspended, as
// Kueue does), it runs. Kueue itself is not installed on the test cluster.
func TestClusterKueueQueue(t *testing.T) {
	c := k8stest.Get(t)
	b, cs, ns := realBackend(t, c, &schema.Backend{Kind: "kubernetes", Queue: "team-a"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := b.Submit(ctx, gpuTask(t, "tasks.queued", 1))
	require.NoError(t, err)
	rec := &recorder{}
	done := make(chan *backend.Result, 1)
	go func() {
		r, _ := b.Watch(ctx, id, rec.add)
		done <- r
	}()
	eventually30(t, "the wait for Kueue reported", func() bool {
		return strings.Contains(rec.messages(), "waiting for Kueue to admit the Job to queue team-a")
	})
	_, name, _ := strings.Cut(id, "/")
	j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "team-a", j.Labels[LabelQueue])
	_, err = cs.BatchV1().Jobs(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	r := <-done
	require.NotNil(t, r)
	assert.Equal(t, backend.StateSucceeded, r.State, r.Message)
}

// TestClusterPlanChecks: Check finds at plan time a GPU request no node can
// ever give (naming the step and the largest node), a missing namespace, a
// queue without Kueue, and what RBAC forbids (verb and resource named).
func TestClusterPlanChecks(t *testing.T) {
	c := k8stest.Get(t)
	b, cs, ns := realBackend(t, c, nil)
	ctx := context.Background()
	step := func(addr string, r *schema.Resources) *schema.Step {
		return &schema.Step{Address: addr, Run: &schema.StepRun{Image: "x", Command: []string{"x"}, Resources: r}}
	}
	ok := step("tasks.fits", &schema.Resources{GPU: 4, GPUType: "a100"})
	errs := b.Check(ctx, []*schema.Step{ok, step("tasks.cpu", &schema.Resources{CPU: 8, Memory: "32Gi"})})
	assert.Empty(t, errs)

	errs = b.Check(ctx, []*schema.Step{ok, step("tasks.huge", &schema.Resources{GPU: 8, GPUType: "a100"}),
		step("tasks.h100", &schema.Resources{GPU: 1, GPUType: "h100"})})
	require.Len(t, errs, 2)
	assert.Equal(t, "tasks.h100", errs[0].(*CheckError).Address())
	assert.Equal(t, "step tasks.h100 asks for 1 nvidia.com/gpu of type h100, which no node of the cluster of backend k8s can ever give: the largest, kwok-gpu-0, has 4 nvidia.com/gpu (a100), 32 CPU, 256Gi of memory", errs[0].Error())
	assert.Equal(t, "tasks.huge", errs[1].(*CheckError).Address())
	assert.Contains(t, errs[1].Error(), "step tasks.huge asks for 8 nvidia.com/gpu of type a100, which no node")
	assert.Contains(t, errs[1].Error(), "the largest, kwok-gpu-0, has 4 nvidia.com/gpu (a100)")

	// A namespace that does not exist; a queue on a cluster without Kueue.
	missing, _, _ := realBackend(t, c, &schema.Backend{Kind: "kubernetes", Namespace: "no-such-ns", Queue: "team-a"})
	errs = missing.Check(ctx, []*schema.Step{ok})
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	assert.Contains(t, msgs, "backend k8s: namespace no-such-ns does not exist in the cluster at "+missing.host+" (create it, or set namespace in the backend)")
	assert.Contains(t, strings.Join(msgs, "\n"), "names queue team-a, but Kueue is not installed")
	// Submit says so too.
	_, err := missing.Submit(ctx, testTask(t, "tasks.nons"))
	assert.ErrorContains(t, err, "step tasks.nons: namespace no-such-ns does not exist in the cluster of backend k8s")

	// RBAC: a service account allowed to read pods only.
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "pods/log", "configmaps", "secrets"}, Verbs: []string{"get", "list", "watch", "create"}},
			{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"list", "watch"}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	kc := impersonating(t, c.Kubeconfig, "system:serviceaccount:"+ns+":reader")
	limited, _, _ := realBackend(t, c, &schema.Backend{Kind: "kubernetes", Namespace: ns, Kubeconfig: kc})
	errs = limited.Check(ctx, []*schema.Step{ok})
	msgs = nil
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	assert.Equal(t, []string{
		"backend k8s: RBAC does not allow create jobs.batch in namespace " + ns + ", which apply needs",
		"backend k8s: RBAC does not allow delete jobs.batch in namespace " + ns + ", which apply needs",
	}, msgs)
	// Apply says so too, with the verb and resource.
	_, err = limited.Submit(ctx, testTask(t, "tasks.denied"))
	assert.ErrorContains(t, err, "step tasks.denied: backend k8s is not allowed to create jobs.batch in namespace "+ns+" (RBAC)")
}

// unmanagedNode creates a node kwok does not manage, tainted so that the
// scheduler puts nothing on it, whose kubelet endpoint is kwok-cpu-0's
// (kwok's server, which serves pod logs); it is deleted when the test ends.
func unmanagedNode(t *testing.T, cs kubernetes.Interface, name string) string {
	t.Helper()
	ctx := context.Background()
	model, err := cs.CoreV1().Nodes().Get(ctx, "kwok-cpu-0", metav1.GetOptions{})
	require.NoError(t, err)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "weir.dev/unmanaged", Effect: corev1.TaintEffectNoSchedule}}}}
	_, err = cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	// The node controllers change a new node at once (taints): read it
	// again when they got there first.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status = *model.Status.DeepCopy()
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	require.NoError(t, err)
	return name
}

// impersonating writes a copy of a kubeconfig whose user acts as another.
func impersonating(t *testing.T, kubeconfig, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	require.NoError(t, err)
	for _, a := range cfg.AuthInfos {
		a.Impersonate = user
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, p))
	return p
}

// TestClusterUnreachable: a cluster that does not answer and a context the
// kubeconfig lacks give clear errors at once, never a hang.
func TestClusterUnreachable(t *testing.T) {
	c := k8stest.Get(t)
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	require.NoError(t, err)
	for _, cl := range cfg.Clusters {
		cl.Server = "https://127.0.0.1:1"
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, p))
	start := time.Now()
	_, err = New(context.Background(), testConfig(t, &schema.Backend{Kind: "kubernetes", Kubeconfig: p}))
	assert.ErrorContains(t, err, "backend k8s: cannot reach the Kubernetes cluster at https://127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused")
	assert.Less(t, time.Since(start), 10*time.Second)

	// At plan time: a warning, the checks skipped.
	b := Unconnected()
	require.NoError(t, b.Configure(context.Background(), &schema.Backend{Kind: "kubernetes", Kubeconfig: p}))
	errs := b.Check(context.Background(), []*schema.Step{{Address: "tasks.a", Run: &schema.StepRun{Command: []string{"x"}}}})
	require.Len(t, errs, 1)
	assert.True(t, errs[0].(*CheckError).IsWarning())
	assert.Contains(t, errs[0].Error(), "the plan-time checks of the cluster were skipped")

	_, err = New(context.Background(), testConfig(t, &schema.Backend{Kind: "kubernetes", Kubeconfig: c.Kubeconfig, Context: "prod"}))
	assert.ErrorContains(t, err, `context "prod" is not in `+c.Kubeconfig)
	b = Unconnected()
	require.NoError(t, b.Configure(context.Background(), &schema.Backend{Kind: "kubernetes", Kubeconfig: c.Kubeconfig, Context: "prod"}))
	errs = b.Check(context.Background(), []*schema.Step{{Address: "tasks.a", Run: &schema.StepRun{Command: []string{"x"}}}})
	require.Len(t, errs, 1)
	assert.False(t, errs[0].(*CheckError).IsWarning(), "a wrong context is an error")
}

// TestClusterAPIServerRestart: the API server restarts while steps are
// watched; the informers relist and rewatch, and no step's end is lost.
// The steps wait (suspended, as Kueue would hold them) across the restart
// and are let go after it, so their ends happen on the new watches.
func TestClusterAPIServerRestart(t *testing.T) {
	c := k8stest.Private(t)
	b, cs, ns := realBackend(t, c, &schema.Backend{Kind: "kubernetes", Queue: "held"})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var ids []string
	for _, s := range []string{"tasks.a", "tasks.b", "tasks.c"} {
		id, err := b.Submit(ctx, testTask(t, s))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	results := make(chan *backend.Result, len(ids))
	for _, id := range ids {
		go func() {
			r, err := b.Watch(ctx, id, nil)
			if err != nil {
				r = &backend.Result{Message: err.Error()}
			}
			results <- r
		}()
	}
	require.NoError(t, c.RestartAPIServer(ctx))
	for _, id := range ids {
		_, name, _ := strings.Cut(id, "/")
		_, err := cs.BatchV1().Jobs(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{})
		require.NoError(t, err)
	}
	for range ids {
		select {
		case r := <-results:
			assert.Equal(t, backend.StateSucceeded, r.State, r.Message)
		case <-ctx.Done():
			t.Fatal("a step's end was lost across the restart")
		}
	}
	// A step submitted after the restart goes through the same informers:
	// its end can only reach Watch through their new watches. (The API
	// server's request counters start again at its restart and count a
	// watch once it ends, so they cannot show the open ones.)
	id, err := b.Submit(ctx, testTask(t, "tasks.after"))
	require.NoError(t, err)
	_, name, _ := strings.Cut(id, "/")
	_, err = cs.BatchV1().Jobs(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	r, err := b.Watch(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, backend.StateSucceeded, r.State, r.Message)
}

// TestClusterKueueLocalQueue: with Kueue's LocalQueue API installed (its
// CRD from the kueue module, testdata/kueue), Check says at plan time that
// the backend's queue does not exist in its namespace, and is satisfied
// once it does. Kueue's controller is not installed: admission itself is
// not shown (TestClusterKueueQueue shows the suspended Job waiting).
func TestClusterKueueLocalQueue(t *testing.T) {
	c, cl := clusterClients(t)
	const crd = "localqueues.kueue.x-k8s.io"
	served := func() (bool, error) {
		_, err := cl.Kube.Discovery().ServerResourcesForGroupVersion(KueueGroup + "/v1beta2")
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
	installCRD(t, cl, "testdata/kueue/localqueues-crd.yaml.gz", crd, served)
	t.Cleanup(func() { removeCRD(t, cl, crd, served) })

	b, _, ns := realBackend(t, c, &schema.Backend{Kind: "kubernetes", Queue: "team-a"})
	ctx := context.Background()
	steps := []*schema.Step{{Address: "tasks.queued", Run: &schema.StepRun{Image: "x", Command: []string{"x"}}}}
	errs := b.Check(ctx, steps)
	require.Len(t, errs, 1)
	assert.Equal(t, "backend k8s: Kueue LocalQueue team-a does not exist in namespace "+ns, errs[0].Error())
	assert.False(t, errs[0].(*CheckError).IsWarning(), "a missing queue is an error: the Jobs would wait forever")

	lq := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": KueueGroup + "/v1beta2", "kind": "LocalQueue",
		"metadata": map[string]any{"name": "team-a", "namespace": ns},
		"spec":     map[string]any{"clusterQueue": "cluster-queue"},
	}}
	gvr := k8sschema.GroupVersionResource{Group: KueueGroup, Version: "v1beta2", Resource: "localqueues"}
	_, err := cl.Dynamic.Resource(gvr).Namespace(ns).Create(ctx, lq, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.Empty(t, b.Check(ctx, steps))
}
