package kubernetes

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"weir.dev/weir/internal/k8stest"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// These tests run against the real API server of internal/k8stest (kwok
// nodes: pods never run containers, kwok moves their status, so a
// Deployment becomes Available). They skip without a cluster; run them
// with make test-k8s.

func clusterClients(t *testing.T) (*k8stest.Cluster, Clients) {
	t.Helper()
	c := k8stest.Get(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := clientset.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, Clients{Kube: cs, Dynamic: dyn}
}

var crdGVR = k8sschema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

const httpRouteCRD = "httproutes.gateway.networking.k8s.io"

// waitFor polls cond every 200ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func gatewayServed(c Clients) (bool, error) {
	s := &Serving{Clients: c}
	mode, _, err := s.TrafficMode(context.Background())
	return mode == TrafficGateway, err
}

// removeHTTPRoutes deletes Gateway API's HTTPRoute CRD if a run left it,
// and waits until discovery no longer serves it.
func removeHTTPRoutes(t *testing.T, c Clients) {
	t.Helper()
	removeCRD(t, c, httpRouteCRD, func() (bool, error) { return gatewayServed(c) })
}

// installHTTPRoutes installs the CRD from the gateway-api module's
// standard channel (testdata/serving) and waits until it is served.
func installHTTPRoutes(t *testing.T, c Clients) {
	t.Helper()
	installCRD(t, c, "testdata/serving/httproutes-crd.yaml.gz", httpRouteCRD, func() (bool, error) { return gatewayServed(c) })
}

// installCRD applies a gzipped CustomResourceDefinition from testdata and
// waits until served says the API serves it.
func installCRD(t *testing.T, c Clients, file, name string, served func() (bool, error)) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	if _, err := c.Dynamic.Resource(crdGVR).Apply(context.Background(), name, u,
		metav1.ApplyOptions{FieldManager: "weir-test", Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, name+" served", served)
}

// removeCRD deletes a CustomResourceDefinition if present and waits until
// served says the API no longer serves it.
func removeCRD(t *testing.T, c Clients, name string, served func() (bool, error)) {
	t.Helper()
	err := c.Dynamic.Resource(crdGVR).Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, name+" gone from discovery", func() (bool, error) {
		ok, err := served()
		return !ok, err
	})
}

func clusterService(rev string) *backend.Service {
	return &backend.Service{
		Name: "serving.classifier", Revision: rev, Image: "ghcr.io/example/tumor-server:1.0",
		Argv: []string{"serve", "--model", "/weir/in/model"}, Port: 8080, MinReplicas: 2, MaxReplicas: 4,
		Env:       map[string]string{"PATH": "/usr/bin", "LOG_LEVEL": "info"},
		Inputs:    map[string]string{"model": "/tmp/in/model"},
		Resources: &schema.Resources{CPU: 0.5, Memory: "256Mi", GPU: 1, GPUType: k8stest.GPUProduct},
	}
}

func deployment(t *testing.T, c Clients, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := c.Kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitAvailable waits until the Deployment runs n available replicas.
func waitAvailable(t *testing.T, c Clients, ns, name string, n int32) {
	t.Helper()
	waitFor(t, 90*time.Second, fmt.Sprintf("%s/%s with %d available replicas", ns, name, n), func() (bool, error) {
		d, err := c.Kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == n && d.Status.Replicas == n, nil
	})
}

func planText(t *testing.T, s *Serving, svc *backend.Service) (*Plan, string) {
	t.Helper()
	p, err := s.PlanDeploy(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	return p, p.String()
}

// leftovers counts the objects of a serving element still in ns.
func leftovers(t *testing.T, c Clients, ns, base string) map[string]int {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: LabelServing + "=" + base}
	n := map[string]int{}
	if l, err := c.Kube.AppsV1().Deployments(ns).List(ctx, sel); err == nil {
		n["Deployment"] = len(l.Items)
	}
	if l, err := c.Kube.CoreV1().Pods(ns).List(ctx, sel); err == nil {
		n["Pod"] = len(l.Items)
	}
	if l, err := c.Kube.CoreV1().Services(ns).List(ctx, sel); err == nil {
		n["Service"] = len(l.Items)
	}
	if l, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, sel); err == nil {
		n["HorizontalPodAutoscaler"] = len(l.Items)
	}
	if l, err := c.Kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, sel); err == nil {
		n["PodDisruptionBudget"] = len(l.Items)
	}
	if l, err := c.Kube.CoreV1().Secrets(ns).List(ctx, sel); err == nil {
		n["Secret"] = len(l.Items)
	}
	for k, v := range n {
		if v == 0 {
			delete(n, k)
		}
	}
	return n
}

func TestServingOnCluster(t *testing.T) {
	cl, c := clusterClients(t)
	ctx := t.Context()

	// Without Gateway API, traffic is split by replica ratio.
	removeHTTPRoutes(t, c)
	t.Run("replica-ratio", func(t *testing.T) {
		ns := cl.Namespace(t)
		s := &Serving{Clients: c, Namespace: ns, Project: "quickstart"}
		p, text := planText(t, s, clusterService("v1"))
		if p.Mode != TrafficReplicas || !strings.Contains(text, "traffic split by replica ratio: Gateway API (gateway.networking.k8s.io/v1) is not installed") {
			t.Errorf("plan before the first Deploy:\n%s", text)
		}
		for _, want := range []string{
			"+ v1 Secret " + ns + "/classifier-v1-env",
			"+ apps/v1 Deployment " + ns + "/classifier-v1",
			"+ policy/v1 PodDisruptionBudget " + ns + "/classifier-v1",
			"+ autoscaling/v2 HorizontalPodAutoscaler " + ns + "/classifier-v1",
			"+ v1 Service " + ns + "/classifier",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("plan lacks %q:\n%s", want, text)
			}
		}

		d, err := s.Deploy(ctx, clusterService("v1"))
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != ns+"/classifier" || len(d.Revisions) != 1 || d.Revisions[0].Weight != 100 {
			t.Fatalf("Deploy = %+v", d)
		}
		waitAvailable(t, c, ns, "classifier-v1", 2)
		got := leftovers(t, c, ns, "classifier")
		for _, kind := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret"} {
			if got[kind] != 1 {
				t.Errorf("%d %s after Deploy, want 1 (%v)", got[kind], kind, got)
			}
		}
		// The GPU replicas landed on the GPU nodes, past their taint.
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelServing + "=classifier"})
		if err != nil {
			t.Fatal(err)
		}
		for _, pod := range pods.Items {
			if !strings.HasPrefix(pod.Spec.NodeName, "kwok-gpu-") {
				t.Errorf("pod %s on node %q, want a GPU node", pod.Name, pod.Spec.NodeName)
			}
		}
		d, err = s.describe(ctx, "classifier", TrafficReplicas, "")
		if err != nil || !d.Revisions[0].Ready {
			t.Errorf("v1 not ready once available: %+v, %v", d, err)
		}

		// Applied again, nothing changes.
		_, text = planText(t, s, clusterService("v1"))
		if strings.Contains(text, "\n~") || strings.Contains(text, "\n+") {
			t.Errorf("plan right after Deploy shows changes:\n%s", text)
		}

		// Someone scales the Deployment by hand: the plan shows the drift.
		sc, err := c.Kube.AppsV1().Deployments(ns).GetScale(ctx, "classifier-v1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc.Spec.Replicas = 3
		if _, err := c.Kube.AppsV1().Deployments(ns).UpdateScale(ctx, "classifier-v1", &autoscalingv1.Scale{
			ObjectMeta: sc.ObjectMeta, Spec: sc.Spec}, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
			t.Fatal(err)
		}
		p, text = planText(t, s, clusterService("v1"))
		want := "~ apps/v1 Deployment " + ns + "/classifier-v1\n    spec.replicas: 3 -> 2"
		if !strings.Contains(text, want) {
			t.Errorf("plan after a hand scale lacks %q:\n%s", want, text)
		}
		for _, ch := range p.Changes {
			if ch.Action != schema.ActionNoop && !strings.Contains(ch.Object, "Deployment") {
				t.Errorf("drift in %s: %+v", ch.Object, ch)
			}
		}
		t.Logf("plan after a hand scale:\n%s", text)
		if _, err := s.Deploy(ctx, clusterService("v1")); err != nil {
			t.Fatal(err)
		}
		if r := *deployment(t, c, ns, "classifier-v1").Spec.Replicas; r != 2 {
			t.Errorf("replicas after Deploy fixed the drift = %d, want 2", r)
		}

		// A second revision starts without traffic, so by replica ratio
		// without replicas; SetTraffic 50/50 runs one replica of each.
		d, err = s.Deploy(ctx, clusterService("v2"))
		if err != nil {
			t.Fatal(err)
		}
		if w := weights(d); w["v1"] != 100 || w["v2"] != 0 {
			t.Errorf("weights after deploying v2 = %v", w)
		}
		if r := *deployment(t, c, ns, "classifier-v2").Spec.Replicas; r != 0 {
			t.Errorf("v2 replicas at weight 0 = %d", r)
		}
		d, err = s.SetTraffic(ctx, d.ID, []backend.Split{{Revision: "v2", Weight: 50}, {Revision: "v1", Weight: 50}})
		if err != nil {
			t.Fatal(err)
		}
		if w := weights(d); w["v1"] != 50 || w["v2"] != 50 {
			t.Errorf("weights = %v", w)
		}
		waitAvailable(t, c, ns, "classifier-v1", 1)
		waitAvailable(t, c, ns, "classifier-v2", 1)
		// Both behind the one Service: its endpoints list a pod of each.
		waitFor(t, time.Minute, "the Service's endpoints to hold both revisions", func() (bool, error) {
			pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelServing + "=classifier"})
			if err != nil {
				return false, err
			}
			revs := map[string]bool{}
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && p.Status.Phase == "Running" {
					revs[p.Labels[LabelRevision]] = true
				}
			}
			return revs["v1"] && revs["v2"] && len(pods.Items) == 2, nil
		})
		hpa, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "classifier-v2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *hpa.Spec.MinReplicas != 1 || hpa.Spec.MaxReplicas != 2 {
			t.Errorf("v2's HPA at 50%% = %d..%d, want 1..2", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
		// SetTraffic kept the rest of the Deployment as weir applied it.
		if img := deployment(t, c, ns, "classifier-v2").Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/example/tumor-server:1.0" {
			t.Errorf("v2 image after SetTraffic = %q", img)
		}

		start := time.Now()
		if err := s.Undeploy(ctx, d.ID, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("Undeploy took %v", time.Since(start).Round(time.Millisecond))
		waitFor(t, time.Minute, "every object gone", func() (bool, error) {
			return len(leftovers(t, c, ns, "classifier")) == 0, nil
		})
	})

	// With Gateway API installed, the split is the HTTPRoute's weights and
	// every revision keeps its replicas.
	installHTTPRoutes(t, c)
	t.Cleanup(func() { removeHTTPRoutes(t, c) })
	t.Run("gateway-api", func(t *testing.T) {
		ns := cl.Namespace(t)
		s := &Serving{Clients: c, Namespace: ns, Project: "quickstart", Gateway: "infra/public"}
		p, text := planText(t, s, clusterService("v1"))
		if p.Mode != TrafficGateway || !strings.Contains(text, "traffic split by HTTPRoute weights") ||
			!strings.Contains(text, "+ gateway.networking.k8s.io/v1 HTTPRoute "+ns+"/classifier") {
			t.Errorf("plan:\n%s", text)
		}
		d, err := s.Deploy(ctx, clusterService("v1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Deploy(ctx, clusterService("v2")); err != nil {
			t.Fatal(err)
		}
		d, err = s.SetTraffic(ctx, d.ID, []backend.Split{{Revision: "v1", Weight: 90}, {Revision: "v2", Weight: 10}})
		if err != nil {
			t.Fatal(err)
		}
		if w := weights(d); w["v1"] != 90 || w["v2"] != 10 {
			t.Errorf("weights = %v", w)
		}
		route, err := c.Dynamic.Resource(HTTPRouteGVR).Namespace(ns).Get(ctx, "classifier", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		refs, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
		got, _ := yaml.Marshal(refs)
		want := `- backendRefs:
  - group: ""
    kind: Service
    name: classifier-v1
    port: 8080
    weight: 90
  - group: ""
    kind: Service
    name: classifier-v2
    port: 8080
    weight: 10
`
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("HTTPRoute rules =\n%s\nwant backendRefs\n%s", got, want)
		}
		parents, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
		if len(parents) != 1 || parents[0].(map[string]any)["namespace"] != "infra" {
			t.Errorf("parentRefs = %v", parents)
		}
		// Each revision runs all its replicas behind its own Service.
		waitAvailable(t, c, ns, "classifier-v1", 2)
		waitAvailable(t, c, ns, "classifier-v2", 2)
		for _, name := range []string{"classifier", "classifier-v1", "classifier-v2"} {
			if _, err := c.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Error(err)
			}
		}

		if err := s.Undeploy(ctx, d.ID, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Dynamic.Resource(HTTPRouteGVR).Namespace(ns).Get(ctx, "classifier", metav1.GetOptions{}); !isNotFound(err) {
			t.Errorf("HTTPRoute after Undeploy: %v", err)
		}
		waitFor(t, time.Minute, "every object gone", func() (bool, error) {
			return len(leftovers(t, c, ns, "classifier")) == 0, nil
		})
	})
}
