package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"weir.dev/weir/internal/k8stest"
)

// TestKubernetesApply is the quickstart trained on the local backend and
// served on a real Kubernetes API server (the kwok test cluster of
// internal/k8stest: make test-k8s): weir apply registers and promotes the
// model, then rolls the server out on the cluster through the canary's
// traffic steps, and the Deployment becomes available. kwok runs no
// containers, so the server itself never starts: its pods only change
// status. Run by make test-k8s (go test -run TestKubernetes ./cmd/weir).
func TestKubernetesApply(t *testing.T) {
	c := k8stest.Get(t)
	ns := c.Namespace(t)
	dir, spec := clusterQuickstart(t, c, ns)
	apply := func() string { return weirOn(t, "apply", "--auto-approve", dir) }
	out := apply()
	// Both traffic steps ran on the cluster; the first revision of a
	// service takes all its traffic at once.
	assert.Contains(t, out, "serving.classifier.canary[50]")
	assert.Regexp(t, `serving\.classifier\.canary\[100\].*v1: v1 100%`, out)
	assert.NotContains(t, out, "serving.classifier.canary[50]: deferred")
	assert.Contains(t, out, "monitoring.classifier.monitor: deferred", "the monitor is still not built")

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(t, err)
	kc, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	ctx := context.Background()
	require.Eventually(t, func() bool {
		d, err := kc.AppsV1().Deployments(ns).Get(ctx, "classifier-v1", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas >= 1
	}, 60*time.Second, 500*time.Millisecond, "the served revision's Deployment becomes available")
	d, err := kc.AppsV1().Deployments(ns).Get(ctx, "classifier-v1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"python3", "serve.py"}, append(d.Spec.Template.Spec.Containers[0].Command, d.Spec.Template.Spec.Containers[0].Args...))

	// Again: the training is reused, the rollout re-applied in place.
	out = apply()
	assert.Contains(t, out, "15 cached")
	assert.Regexp(t, `serving\.classifier\.canary\[100\].*v1: v1 100%`, out)
	deps, err := kc.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, deps.Items, 1, "one revision, deployed once")

	// A new model version rolls out through the canary: half the traffic
	// (by replica ratio: the test cluster has no Gateway API), then all.
	spec = []byte(strings.Replace(string(spec), "params: epochs: 200", "params: epochs: 300", 1))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "weir.cue"), spec, 0o644))
	out = apply()
	assert.Contains(t, out, "classifier v2 candidate")
	assert.Regexp(t, `serving\.classifier\.canary\[50\].*v2: (v1 50%, v2 50%|v2 50%, v1 50%)`, out)
	assert.Regexp(t, `serving\.classifier\.canary\[100\].*v2: v2 100%`, out)
	require.Eventually(t, func() bool {
		d, err := kc.AppsV1().Deployments(ns).Get(ctx, "classifier-v2", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas >= 1
	}, 60*time.Second, 500*time.Millisecond, "the new revision's Deployment becomes available")
	old, err := kc.AppsV1().Deployments(ns).Get(ctx, "classifier-v1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(0), *old.Spec.Replicas, "the old revision keeps no traffic, so no replicas")
}

// TestKubernetesPlanDrift: once the quickstart is served on the real API
// server, weir plan compares the rollout with what is live (a server-side
// dry-run apply of the revision's objects): unchanged at first; after
// someone scales the Deployment by hand, the drift shows as "~" with the
// field; apply puts it back.
func TestKubernetesPlanDrift(t *testing.T) {
	c := k8stest.Get(t)
	ns := c.Namespace(t)
	dir, _ := clusterQuickstart(t, c, ns)
	out := weirOn(t, "plan", dir)
	assert.Regexp(t, `\+ +serving\.classifier\.canary\[50\] .*the model version it serves is known only at apply \(this apply registers models\.classifier\)`, out)
	weirOn(t, "apply", "--auto-approve", dir)

	out = weirOn(t, "plan", dir)
	assert.Regexp(t, `= +serving\.classifier\.canary\[50\] .*v1 of models\.classifier@production is live and unchanged, traffic v1 100%`, out)
	assert.Regexp(t, `= +serving\.classifier\.canary\[100\] .*unchanged: traffic v1 100%`, out)
	assert.Contains(t, out, "traffic split by replica ratio")
	assert.NotContains(t, out, "apps/v1 Deployment", "nothing to change: no object listed")

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(t, err)
	kc, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	ctx := context.Background()
	scale, err := kc.AppsV1().Deployments(ns).GetScale(ctx, "classifier-v1", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(1), scale.Spec.Replicas)
	scale.Spec.Replicas = 3
	_, err = kc.AppsV1().Deployments(ns).UpdateScale(ctx, "classifier-v1", scale, metav1.UpdateOptions{})
	require.NoError(t, err)

	out = weirOn(t, "plan", dir)
	assert.Regexp(t, `~ +serving\.classifier\.canary\[50\] .*v1 of models\.classifier@production is live but differs`, out)
	assert.Contains(t, out, "~ apps/v1 Deployment "+ns+"/classifier-v1\n            spec.replicas: 3 -> 1\n")
	d, err := kc.AppsV1().Deployments(ns).Get(ctx, "classifier-v1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(3), *d.Spec.Replicas, "the plan changed nothing")

	weirOn(t, "apply", "--auto-approve", dir)
	d, err = kc.AppsV1().Deployments(ns).Get(ctx, "classifier-v1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(1), *d.Spec.Replicas, "apply put the replicas back")
	out = weirOn(t, "plan", dir)
	assert.Regexp(t, `= +serving\.classifier\.canary\[50\] .*live and unchanged`, out)
}

// clusterQuickstart is the quickstart in a folder of its own, served on
// the cluster c in the namespace ns, with the canary's steps 1 s apart;
// it returns the folder and its weir.cue.
func clusterQuickstart(t *testing.T, c *k8stest.Cluster, ns string) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, "../../examples/quickstart", dir)
	spec, err := os.ReadFile(filepath.Join(dir, "weir.cue"))
	require.NoError(t, err)
	// The canary's steps 30 s apart would make a slow test.
	require.Contains(t, string(spec), `interval: "1m"`)
	spec = []byte(strings.Replace(string(spec), `interval: "1m"`, `interval: "1s"`, 1))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "weir.cue"), spec, 0o644))
	extra := fmt.Sprintf(`backends: cluster: {kind: "kubernetes", kubeconfig: %q, namespace: %q}
serving: classifier: {
	backend: "cluster"
	server: {
		image: "python@sha256:0000000000000000000000000000000000000000000000000000000000000000"
		command: ["python3", "serve.py"]
		resources: {cpu: 1, memory: "1Gi"}
	}
}
`, c.Kubeconfig, ns)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cluster.cue"), []byte(extra), 0o644))
	return dir, spec
}

// weirOn runs weir with args, without KUBECONFIG (the backends name
// theirs), and returns its output; it must succeed.
func weirOn(t *testing.T, args ...string) string {
	t.Helper()
	cmd := weirCmd(args...)
	cmd.Env = append(cmd.Env, "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

// copyDir copies a project folder, leaving out its .weir.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && d.Name() == ".weir" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	require.NoError(t, err)
}
