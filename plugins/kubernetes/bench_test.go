package kubernetes

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"weir.dev/weir/internal/k8stest"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Speed (issue 8): N short Jobs (WEIR_K8S_SPEED_JOBS, default 500)
// submitted and watched to completion on the kwok cluster, by weir's
// backend and by a minimal client-go program that creates the same Jobs
// and waits for them through one watch, in the same run, each in a
// namespace of its own. Both clients have QPS 50 and burst 100 (the
// backend's defaults; client-go's own, 5 and 10, would make either take
// minutes) and submit from 32 goroutines at most. The API requests weir
// makes are counted from the API server's apiserver_request_total: the
// verbs and resources only weir's client uses (the controllers create the
// pods and write the statuses, kwok and the scheduler move the pods); a
// log read is counted as CONNECT pods/log, and a WATCH (the informers'
// initial lists are watches too) once it has ended, which Close makes.
//
// It runs only with WEIR_K8S_SPEED=1 (testdata/bench/run-k8s.sh), and
// prints one line: "k8s speed: N jobs weir Xs reference Ys ratio R
// requests/step Q".

const speedQPS, speedBurst, speedSubmitters = 50, 100, 32

// weirKeys are the requests of weir's client, as RequestCounts keys them.
var weirKeys = []string{"POST jobs", "GET jobs", "DELETE jobs", "LIST jobs", "WATCH jobs", "LIST pods", "WATCH pods",
	"GET pods/log", "CONNECT pods/log", "POST configmaps", "GET configmaps", "POST secrets", "POST services"}

func TestSpeed(t *testing.T) {
	if os.Getenv("WEIR_K8S_SPEED") == "" {
		t.Skip("the 500-Job speed measurement runs with WEIR_K8S_SPEED=1 (testdata/bench/run-k8s.sh)")
	}
	c := k8stest.Get(t)
	n := 500
	if s := os.Getenv("WEIR_K8S_SPEED_JOBS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	refNS := c.Namespace(t)
	ref := referenceRun(ctx, t, c, refNS, n)
	t.Logf("reference: %d Jobs in %v", n, ref.Round(time.Millisecond))

	weirNS := c.Namespace(t)
	before, err := c.RequestCounts(ctx)
	require.NoError(t, err)
	wall := weirRun(ctx, t, c, weirNS, n)
	time.Sleep(2 * time.Second) // a watch is counted once it has ended
	after, err := c.RequestCounts(ctx)
	require.NoError(t, err)
	total := 0.0
	var parts []string
	for _, k := range weirKeys {
		if d := after[k] - before[k]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%.0f", k, d))
		}
	}
	sort.Strings(parts)
	t.Logf("weir: %d Jobs in %v; requests %v", n, wall.Round(time.Millisecond), parts)
	ratio := wall.Seconds() / ref.Seconds()
	perStep := total / float64(n)
	fmt.Printf("k8s speed: %d jobs weir %.2fs reference %.2fs ratio %.2f requests/step %.2f\n", n, wall.Seconds(), ref.Seconds(), ratio, perStep)
	if ratio > 1.2 {
		t.Errorf("weir took %.2fx the reference's time (at most 1.2x)", ratio)
	}
	if perStep > 4 {
		t.Errorf("weir made %.2f API requests per step (at most 4)", perStep)
	}
}

func speedTask(i int) *backend.Task {
	step := fmt.Sprintf("tasks.s%04d", i)
	return &backend.Task{RunID: "speed", Step: step, Attempt: 1, Argv: []string{"true"}, Image: "busybox",
		WorkDir: "/nonexistent/work", Env: map[string]string{"WEIR_STEP": step, "WEIR_RUN_ID": "speed"}}
}

// weirRun submits and watches n tasks through the backend.
func weirRun(ctx context.Context, t *testing.T, c *k8stest.Cluster, ns string, n int) time.Duration {
	cfg, err := ParseConfig("k8s", &schema.Backend{Kind: "kubernetes", Kubeconfig: c.Kubeconfig, Namespace: ns,
		Config: map[string]any{"qps": float64(speedQPS), "burst": float64(speedBurst)}})
	require.NoError(t, err)
	start := time.Now()
	b, err := New(ctx, cfg)
	require.NoError(t, err)
	defer b.Close()
	sem := make(chan struct{}, speedSubmitters)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			id, err := b.Submit(ctx, speedTask(i))
			<-sem
			if err != nil {
				errs <- err
				return
			}
			r, err := b.Watch(ctx, id, nil)
			if err == nil && r.State != backend.StateSucceeded {
				err = fmt.Errorf("%s: %s %s", id, r.State, r.Message)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return time.Since(start)
}

// referenceRun is the minimal client-go program: it creates the same Jobs
// (as StepWorkload builds them) and waits for them through one watch.
func referenceRun(ctx context.Context, t *testing.T, c *k8stest.Cluster, ns string, n int) time.Duration {
	cfg, err := ParseConfig("ref", &schema.Backend{Kind: "kubernetes", Namespace: ns})
	require.NoError(t, err)
	jobs := make([]*batchv1.Job, n)
	for i := range n {
		tk := speedTask(i)
		in, _, err := taskInput(cfg, tk, stepInfo{})
		require.NoError(t, err)
		w, err := build(cfg, in)
		require.NoError(t, err)
		w.Job.Spec.BackoffLimit = ptrTo(int32(0))
		jobs[i] = w.Job
	}
	start := time.Now()
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(t, err)
	rc.QPS, rc.Burst = speedQPS, speedBurst
	cs, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	wi, err := cs.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy})
	require.NoError(t, err)
	defer func() { wi.Stop() }()
	sem := make(chan struct{}, speedSubmitters)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := cs.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	done := map[string]bool{}
	for len(done) < n {
		select {
		case e, ok := <-wi.ResultChan():
			if !ok {
				// The server ended the watch: list what is done, watch again.
				l, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy})
				require.NoError(t, err)
				for _, j := range l.Items {
					for _, cd := range j.Status.Conditions {
						if cd.Type == batchv1.JobComplete && cd.Status == corev1.ConditionTrue {
							done[j.Name] = true
						}
					}
				}
				wi, err = cs.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy, ResourceVersion: l.ResourceVersion})
				require.NoError(t, err)
				continue
			}
			if e.Type != watch.Modified && e.Type != watch.Added {
				continue
			}
			j := e.Object.(*batchv1.Job)
			for _, cd := range j.Status.Conditions {
				if cd.Type == batchv1.JobComplete && cd.Status == corev1.ConditionTrue {
					done[j.Name] = true
				}
			}
		case <-ctx.Done():
			t.Fatalf("the reference waited too long: %d of %d done", len(done), n)
		}
	}
	wg.Wait()
	return time.Since(start)
}
