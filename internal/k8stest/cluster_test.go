package k8stest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"weir.dev/weir/internal/k8stest"
)

func clientset(t *testing.T, c *k8stest.Cluster) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestNodes(t *testing.T) {
	c := k8stest.Get(t)
	cs := clientset(t, c)
	ctx := t.Context()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: k8stest.LabelType + "=" + k8stest.LabelTypeKwok})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]corev1.Node{}
	for _, n := range nodes.Items {
		byName[n.Name] = n
	}
	for _, want := range k8stest.Nodes {
		n, ok := byName[want.Name]
		if !ok {
			t.Errorf("node %s missing", want.Name)
			continue
		}
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			t.Errorf("%s not Ready: %v", n.Name, n.Status.Conditions)
		}
		if n.Labels[k8stest.LabelPool] != want.Pool {
			t.Errorf("%s: pool %q, want %q", n.Name, n.Labels[k8stest.LabelPool], want.Pool)
		}
		gpu := resource.NewQuantity(int64(want.GPUs), resource.DecimalSI)
		for what, list := range map[string]corev1.ResourceList{"capacity": n.Status.Capacity, "allocatable": n.Status.Allocatable} {
			got := list[corev1.ResourceName(k8stest.GPUResource)]
			if got.Cmp(*gpu) != 0 {
				t.Errorf("%s: %s %s = %s, want %d", n.Name, what, k8stest.GPUResource, got.String(), want.GPUs)
			}
			if cpu := list[corev1.ResourceCPU]; cpu.String() != want.CPU {
				t.Errorf("%s: %s cpu = %s, want %s", n.Name, what, cpu.String(), want.CPU)
			}
		}
		if want.GPUs > 0 {
			if n.Labels[k8stest.GPUProductLabel] != k8stest.GPUProduct {
				t.Errorf("%s: product label %q", n.Name, n.Labels[k8stest.GPUProductLabel])
			}
			if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != k8stest.GPUTaintKey || string(n.Spec.Taints[0].Effect) != k8stest.GPUTaintEffect {
				t.Errorf("%s: taints %v", n.Name, n.Spec.Taints)
			}
		}
	}
}

// gpuJob asks for gpus nvidia.com/gpu on the GPU pool.
func gpuJob(name string, gpus int64) *batchv1.Job {
	q := *resource.NewQuantity(gpus, resource.DecimalSI)
	backoff := int32(0)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				NodeSelector:  map[string]string{k8stest.LabelPool: k8stest.PoolGPU},
				Tolerations: []corev1.Toleration{{
					Key: k8stest.GPUTaintKey, Operator: corev1.TolerationOpEqual,
					Value: k8stest.GPUTaintValue, Effect: corev1.TaintEffect(k8stest.GPUTaintEffect),
				}},
				Containers: []corev1.Container{{
					Name: "main", Image: "busybox",
					Resources: corev1.ResourceRequirements{
						Limits: corev1.ResourceList{corev1.ResourceName(k8stest.GPUResource): q},
					},
				}},
			}},
		},
	}
}

func waitJobComplete(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range j.Status.Conditions {
				if cond.Status != corev1.ConditionTrue {
					continue
				}
				switch cond.Type {
				case batchv1.JobComplete:
					return
				case batchv1.JobFailed:
					t.Fatalf("job %s failed: %s", name, cond.Message)
				}
			}
		}
		select {
		case <-ctx.Done():
			pods, _ := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
			t.Fatalf("job %s not Complete in a minute (err %v); pods: %+v", name, err, pods)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestGPUJobCompletesAndCounts(t *testing.T) {
	c := k8stest.Get(t)
	cs := clientset(t, c)
	ctx := t.Context()
	ns := c.Namespace(t)
	before, err := c.RequestCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, gpuJob("train", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitJobComplete(ctx, t, cs, ns, "train")
	t.Logf("a 1-GPU Job reached Complete in %.1fs", time.Since(start).Seconds())
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=train"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of the job: %v, %v", pods, err)
	}
	if node := pods.Items[0].Spec.NodeName; !strings.HasPrefix(node, "kwok-gpu-") {
		t.Errorf("the GPU pod ran on %q", node)
	}
	after, err := c.RequestCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after["POST jobs"] < before["POST jobs"]+1 {
		t.Errorf("POST jobs went from %v to %v", before["POST jobs"], after["POST jobs"])
	}
	if after["GET jobs"] <= before["GET jobs"] {
		t.Errorf("GET jobs went from %v to %v", before["GET jobs"], after["GET jobs"])
	}
	if after["POST pods"] < before["POST pods"]+1 {
		t.Errorf("POST pods (the Job controller's) went from %v to %v", before["POST pods"], after["POST pods"])
	}
}

func TestTooManyGPUsUnschedulable(t *testing.T) {
	c := k8stest.Get(t)
	cs := clientset(t, c)
	ctx := t.Context()
	ns := c.Namespace(t)
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, gpuJob("huge", k8stest.GPUPerNode+1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=huge"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
					if !strings.Contains(cond.Message, "Insufficient "+k8stest.GPUResource) {
						t.Errorf("unschedulable for another reason: %s", cond.Message)
					}
					return
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("a Job asking for more GPUs than a node has was not marked Unschedulable in a minute")
}

func TestPodLogs(t *testing.T) {
	c := k8stest.Get(t)
	cs := clientset(t, c)
	ctx := t.Context()
	ns := c.Namespace(t)
	if err := c.SetPodLogs(ctx, ns, "", "epoch 1 loss 0.5\nepoch 2 loss 0.25\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, gpuJob("logs", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitJobComplete(ctx, t, cs, ns, "logs")
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=logs"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods: %v %v", pods, err)
	}
	rc, err := cs.CoreV1().Pods(ns).GetLogs(pods.Items[0].Name, &corev1.PodLogOptions{Container: "main"}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if want := "epoch 1 loss 0.5\nepoch 2 loss 0.25\n"; string(b) != want {
		t.Errorf("logs = %q, want %q", b, want)
	}
	// Following: the text, then what is appended; the client ends it.
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fr, err := cs.CoreV1().Pods(ns).GetLogs(pods.Items[0].Name, &corev1.PodLogOptions{Container: "main", Follow: true}).Stream(fctx)
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(fr)
	for _, want := range []string{"epoch 1 loss 0.5\n", "epoch 2 loss 0.25\n", "epoch 3 loss 0.125\n"} {
		if want == "epoch 3 loss 0.125\n" {
			if err := c.AppendPodLogs(ns, "", want); err != nil {
				t.Fatal(err)
			}
		}
		got, err := lines.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("following: got %q, %v; want %q", got, err, want)
		}
	}
	fr.Close()
	cancel()

	// One pod by name, replacing the namespace's text.
	if err := c.SetPodLogs(ctx, ns, pods.Items[0].Name, "only this pod\n"); err != nil {
		t.Fatal(err)
	}
	b, err = cs.CoreV1().Pods(ns).GetLogs(pods.Items[0].Name, &corev1.PodLogOptions{Container: "main"}).DoRaw(ctx)
	if err != nil || string(b) != "only this pod\n" {
		t.Errorf("logs = %q, %v", b, err)
	}
}

// TestPrivateLifecycle starts a cluster of its own: Up on a fresh folder,
// RestartAPIServer keeps data and breaks watches, Down leaves no process.
func TestPrivateLifecycle(t *testing.T) {
	shared := k8stest.Get(t)
	ctx := t.Context()
	start := time.Now()
	c := k8stest.Private(t)
	t.Logf("Up: usable API (nodes Ready, default ServiceAccount) after %.1fs", time.Since(start).Seconds())
	dir := c.Dir
	if rss, err := c.RSS(); err == nil {
		var total int64
		for n, v := range rss {
			total += v
			t.Logf("RSS %-24s %4d MiB", n, v>>20)
		}
		t.Logf("RSS of the control plane: %d MiB", total>>20)
	}
	if _, err := k8stest.Up(ctx, shared.BinDir, dir); err == nil || !strings.Contains(err.Error(), "still runs") {
		t.Errorf("a second Up in the same folder: %v", err)
	}
	a, err := k8stest.Attach(dir)
	if err != nil || a.Server != c.Server || a.Kubeconfig != c.Kubeconfig {
		t.Fatalf("Attach: %+v, %v", a, err)
	}
	cs := clientset(t, c)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldPID := c.PIDs()["kube-apiserver"]
	start = time.Now()
	if err := c.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("RestartAPIServer: ready again after %.1fs", time.Since(start).Seconds())
	if pid := c.PIDs()["kube-apiserver"]; pid == oldPID {
		t.Errorf("kube-apiserver kept pid %d", pid)
	}
	// The watch opened before the restart ends.
	select {
	case _, ok := <-w.ResultChan():
		for ok {
			_, ok = <-w.ResultChan()
		}
	case <-time.After(30 * time.Second):
		t.Error("a watch survived the API server's restart")
	}
	got, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Errorf("after the restart: %v, %v", got, err)
	}
	// The controllers and kwok reconnected: a Job still completes.
	if _, err := cs.BatchV1().Jobs("default").Create(ctx, gpuJob("after-restart", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitJobComplete(ctx, t, cs, "default", "after-restart")
	counts, err := c.RequestCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts["GET configmaps"] < 1 {
		t.Errorf("GET configmaps after the restart = %v", counts["GET configmaps"])
	}

	pids := c.PIDs()
	if len(pids) != 5 {
		t.Errorf("pids: %v", pids)
	}
	start = time.Now()
	if err := a.Down(); err != nil { // Down through Attach, as hack/k8s/cluster does
		t.Fatal(err)
	}
	t.Logf("Down: %.1fs", time.Since(start).Seconds())
	if err := c.Down(); err != nil { // a second Down does nothing
		t.Fatal(err)
	}
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(b), ") Z") {
				t.Errorf("%s (pid %d) still runs after Down", name, pid)
			}
		}
		if _, err := os.Stat(fmt.Sprintf("%s/%s.pid", dir, name)); err == nil {
			t.Errorf("%s.pid left after Down", name)
		}
	}
	if leftover := processesUnder(dir); len(leftover) > 0 {
		t.Errorf("processes still use %s: %v", dir, leftover)
	}
}

// processesUnder lists the PIDs whose command line mentions dir.
func processesUnder(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if strings.Contains(string(stat), ") Z") {
			continue
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}
