package kubernetes

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// The fine-grained cases run on client-go's fake clientset (NewClientset:
// it tracks field managers, so server-side apply and ExtractDeployment
// work); serving_k8s_test.go shows the same behaviours on a real API
// server. The fake ignores dry-run (it stores what a dry-run apply
// returns), so Diff is tested there, and its comparison here.

func testService(rev string) *backend.Service {
	return &backend.Service{
		Name: "serving.churn_api", Revision: rev, Image: "ghcr.io/example/server:1", Argv: []string{"serve"},
		Port: 9000, MinReplicas: 2, MaxReplicas: 4,
		Env:       map[string]string{"PATH": "/usr/bin", "WEIR_STEP": "x", "API_TOKEN": "s3cret"},
		Inputs:    map[string]string{"model": "/tmp/run/in/model"},
		Resources: &schema.Resources{CPU: 0.5, Memory: "1Gi", GPU: 1, GPUType: "a100"},
	}
}

func toJSON(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func byKind(objs []Object) map[string]Object {
	m := map[string]Object{}
	for _, o := range objs {
		m[o.Kind+"/"+o.Name] = o
	}
	return m
}

func TestServingObjects(t *testing.T) {
	s := &Serving{Namespace: "ml", Project: "churn", GPUTaint: "gpu-node"}
	sp, env, err := s.Spec(testService("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(env) != 1 || env["API_TOKEN"] != "s3cret" {
		t.Errorf("env for the Secret = %v, want API_TOKEN alone (host and WEIR_ variables dropped)", env)
	}
	objs := byKind(sp.RevisionObjects(TrafficGateway, 100))
	for _, want := range []string{"Deployment/churn-api-v1", "PodDisruptionBudget/churn-api-v1", "HorizontalPodAutoscaler/churn-api-v1", "Service/churn-api-v1"} {
		if _, ok := objs[want]; !ok {
			t.Errorf("missing %s in %v", want, objs)
		}
	}
	dep := toJSON(t, objs["Deployment/churn-api-v1"].Config)
	text, _ := json.Marshal(dep)
	for _, want := range []string{
		`"limits":{"memory":"1Gi","nvidia.com/gpu":"1"}`,
		`"requests":{"cpu":"500m","memory":"1Gi"}`,
		`"nodeSelector":{"nvidia.com/gpu.product":"a100"}`,
		`"tolerations":[{"effect":"NoSchedule","key":"gpu-node","operator":"Exists"}]`,
		`{"name":"WEIR_INPUT_MODEL","value":"/weir/in/model"}`,
		`"envFrom":[{"secretRef":{"name":"churn-api-v1-env"}}]`,
		`"matchLabels":{"weir.dev/revision":"v1","weir.dev/serving":"churn-api"}`,
		`"app.kubernetes.io/part-of":"churn"`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("Deployment lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "s3cret") {
		t.Errorf("the Deployment holds a secret value:\n%s", text)
	}
	if _, ok := dep["spec"].(map[string]any)["replicas"]; ok {
		t.Errorf("an autoscaled revision under Gateway API sets replicas (its HPA owns them)")
	}
	hpa, _ := json.Marshal(objs["HorizontalPodAutoscaler/churn-api-v1"].Config)
	if !strings.Contains(string(hpa), `"minReplicas":2,"maxReplicas":4`) || !strings.Contains(string(hpa), `"averageUtilization":80`) {
		t.Errorf("HPA = %s", hpa)
	}

	// By replica ratio, a revision at 50% runs half its replicas, its HPA
	// bounds halved, and has no Service of its own.
	objs = byKind(sp.RevisionObjects(TrafficReplicas, 50))
	if _, ok := objs["Service/churn-api-v1"]; ok {
		t.Error("a revision has its own Service by replica ratio")
	}
	dep = toJSON(t, objs["Deployment/churn-api-v1"].Config)
	if r := dep["spec"].(map[string]any)["replicas"]; r != float64(1) {
		t.Errorf("replicas at 50%% of 2 = %v, want 1", r)
	}
	hpa, _ = json.Marshal(objs["HorizontalPodAutoscaler/churn-api-v1"].Config)
	if !strings.Contains(string(hpa), `"minReplicas":1,"maxReplicas":2`) {
		t.Errorf("HPA at 50%% = %s", hpa)
	}
	dep = toJSON(t, sp.RevisionObjects(TrafficReplicas, 0)[0].Config)
	if r := dep["spec"].(map[string]any)["replicas"]; r != float64(0) {
		t.Errorf("replicas at 0%% = %v, want 0", r)
	}

	route, _ := json.Marshal(sp.SharedObjects(TrafficGateway, map[string]int{"v1": 90, "v2": 10})[1].Config)
	if !strings.Contains(string(route), `"backendRefs":[{"name":"churn-api-v1","port":9000,"weight":90},{"name":"churn-api-v2","port":9000,"weight":10}]`) {
		t.Errorf("HTTPRoute = %s", route)
	}
}

func TestServingSpecErrors(t *testing.T) {
	s := &Serving{}
	for _, tc := range []struct {
		edit func(*backend.Service)
		want string
	}{
		{func(v *backend.Service) { v.Image = "" }, "serving.churn_api: the kubernetes backend runs the model server in an image"},
		{func(v *backend.Service) { v.Argv = nil }, "serving.churn_api: no model server command"},
		{func(v *backend.Service) { v.Resources.Memory = "lots" }, `serving.churn_api: resources.memory "lots"`},
		{func(v *backend.Service) { v.Revision = "" }, "needs a name and a revision"},
	} {
		v := testService("v1")
		tc.edit(v)
		if _, _, err := s.Spec(v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error = %v, want %q", err, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"serving.churn_api":                  "churn-api",
		"serving.Churn__API":                 "churn-api",
		"serving.9lives":                     "s-9lives",
		"serving." + strings.Repeat("a", 80): strings.Repeat("a", 54) + "-",
	} {
		if got := BaseName(in); !strings.HasPrefix(got, want) || len(got) > 63 {
			t.Errorf("BaseName(%q) = %q, want %q...", in, got, want)
		}
	}
	if RevisionName("serving.churn_api", "v1.2") != "churn-api-v1-2" {
		t.Errorf("RevisionName = %q", RevisionName("serving.churn_api", "v1.2"))
	}
}

func fakeServing() (*Serving, *fake.Clientset) {
	cs := fake.NewClientset()
	return &Serving{Clients: Clients{Kube: cs}, Namespace: "ml", Project: "churn"}, cs
}

func weights(d *backend.Deployment) map[string]int {
	m := map[string]int{}
	for _, r := range d.Revisions {
		m[r.Name] = r.Weight
	}
	return m
}

func replicas(t *testing.T, cs *fake.Clientset, name string) int32 {
	t.Helper()
	d, err := cs.AppsV1().Deployments("ml").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Replicas == nil {
		return -1
	}
	return *d.Spec.Replicas
}

func TestDeploySetTrafficUndeployFake(t *testing.T) {
	ctx := context.Background()
	s, cs := fakeServing()
	d, err := s.Deploy(ctx, testService("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "ml/churn-api" || d.Endpoint != "http://churn-api.ml.svc:9000" || !strings.Contains(d.Message, "replica ratio") {
		t.Errorf("deployment = %+v", d)
	}
	if w := weights(d); w["v1"] != 100 {
		t.Errorf("the first revision's weight = %v, want 100", w)
	}
	for _, get := range []func() error{
		func() error {
			_, err := cs.CoreV1().Services("ml").Get(ctx, "churn-api", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().Secrets("ml").Get(ctx, "churn-api-v1-env", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := cs.AutoscalingV2().HorizontalPodAutoscalers("ml").Get(ctx, "churn-api-v1", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := cs.PolicyV1().PodDisruptionBudgets("ml").Get(ctx, "churn-api-v1", metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); err != nil {
			t.Error(err)
		}
	}
	if r := replicas(t, cs, "churn-api-v1"); r != 2 {
		t.Errorf("v1 replicas = %d, want 2", r)
	}

	// A second revision starts without traffic, so without replicas.
	d, err = s.Deploy(ctx, testService("v2"))
	if err != nil {
		t.Fatal(err)
	}
	if w := weights(d); w["v1"] != 100 || w["v2"] != 0 {
		t.Errorf("weights after the second Deploy = %v", w)
	}
	if r := replicas(t, cs, "churn-api-v2"); r != 0 {
		t.Errorf("v2 replicas = %d, want 0", r)
	}

	d, err = s.SetTraffic(ctx, d.ID, []backend.Split{{Revision: "v1", Weight: 50}, {Revision: "v2", Weight: 50}})
	if err != nil {
		t.Fatal(err)
	}
	if w := weights(d); w["v1"] != 50 || w["v2"] != 50 {
		t.Errorf("weights = %v", w)
	}
	if r1, r2 := replicas(t, cs, "churn-api-v1"), replicas(t, cs, "churn-api-v2"); r1 != 1 || r2 != 1 {
		t.Errorf("replicas at 50/50 = %d/%d, want 1/1", r1, r2)
	}
	// SetTraffic re-applies only weir's own fields: the image stays.
	dep, _ := cs.AppsV1().Deployments("ml").Get(ctx, "churn-api-v2", metav1.GetOptions{})
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/example/server:1" {
		t.Errorf("image after SetTraffic = %q", img)
	}
	hpa, _ := cs.AutoscalingV2().HorizontalPodAutoscalers("ml").Get(ctx, "churn-api-v2", metav1.GetOptions{})
	if *hpa.Spec.MinReplicas != 1 || hpa.Spec.MaxReplicas != 2 {
		t.Errorf("v2 HPA at 50%% = %d..%d, want 1..2", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}

	for _, tc := range []struct {
		split []backend.Split
		want  string
	}{
		{[]backend.Split{{Revision: "v1", Weight: 50}}, "the weights sum to 50, not 100"},
		{[]backend.Split{{Revision: "v3", Weight: 100}}, `deployment ml/churn-api has no revision "v3" (it has v1, v2)`},
		{[]backend.Split{{Revision: "v1", Weight: 150}, {Revision: "v2", Weight: -50}}, "weight 150 is not a percentage"},
	} {
		if _, err := s.SetTraffic(ctx, d.ID, tc.split); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetTraffic(%v) = %v, want %q", tc.split, err, tc.want)
		}
	}
	if _, err := s.SetTraffic(ctx, "other/churn-api", []backend.Split{{Revision: "v1", Weight: 100}}); err == nil || !strings.Contains(err.Error(), "not in this backend's namespace ml") {
		t.Errorf("SetTraffic in another namespace: %v", err)
	}

	if err := s.Undeploy(ctx, d.ID, 0); err != nil {
		t.Fatal(err)
	}
	deps, _ := cs.AppsV1().Deployments("ml").List(ctx, metav1.ListOptions{})
	svcs, _ := cs.CoreV1().Services("ml").List(ctx, metav1.ListOptions{})
	secs, _ := cs.CoreV1().Secrets("ml").List(ctx, metav1.ListOptions{})
	hpas, _ := cs.AutoscalingV2().HorizontalPodAutoscalers("ml").List(ctx, metav1.ListOptions{})
	pdbs, _ := cs.PolicyV1().PodDisruptionBudgets("ml").List(ctx, metav1.ListOptions{})
	if n := len(deps.Items) + len(svcs.Items) + len(secs.Items) + len(hpas.Items) + len(pdbs.Items); n != 0 {
		t.Errorf("%d objects left after Undeploy", n)
	}
	if _, err := s.SetTraffic(ctx, d.ID, []backend.Split{{Revision: "v1", Weight: 100}}); err == nil || !strings.Contains(err.Error(), "no revisions") {
		t.Errorf("SetTraffic after Undeploy: %v", err)
	}
}

func TestCompare(t *testing.T) {
	live := map[string]any{
		"metadata": map[string]any{"name": "x", "resourceVersion": "7", "annotations": map[string]any{"weir.dev/weight": "50"}},
		"spec":     map[string]any{"replicas": int64(5), "template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"image": "a:1"}}}}},
		"status":   map[string]any{"replicas": int64(5)},
	}
	after := map[string]any{
		"metadata": map[string]any{"name": "x", "resourceVersion": "8", "annotations": map[string]any{"weir.dev/weight": "100"}},
		"spec":     map[string]any{"replicas": int64(2), "template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"image": "a:2"}}}}},
		"status":   map[string]any{"replicas": int64(2)},
	}
	var got []FieldChange
	compare("", comparable(live), comparable(after), &got)
	want := []FieldChange{
		{Path: `metadata.annotations["weir.dev/weight"]`, Before: `"50"`, After: `"100"`},
		{Path: "spec.replicas", Before: "5", After: "2"},
		{Path: "spec.template.spec.containers[0].image", Before: `"a:1"`, After: `"a:2"`},
	}
	if len(got) != len(want) {
		t.Fatalf("changes = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	c := Change{Object: "apps/v1 Deployment ml/x", Action: schema.ActionUpdate, Fields: got[1:2]}
	if s := c.String(); s != "~ apps/v1 Deployment ml/x\n    spec.replicas: 5 -> 2" {
		t.Errorf("String() = %q", s)
	}
}

func TestNewServing(t *testing.T) {
	cfg, err := ParseConfig("k8s", &schema.Backend{Kind: "kubernetes", Namespace: "ml", GPUType: "amd.com/gpu"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServing(cfg, &schema.Backend{Config: map[string]any{"gateway": "infra/public", "traffic": "replica-ratio"}}, Clients{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespace != "ml" || s.GPUResource != "amd.com/gpu" || s.Gateway != "infra/public" || s.Mode != TrafficReplicas {
		t.Errorf("NewServing = %+v", s)
	}
	for cfgMap, want := range map[string]map[string]any{
		`config.traffic is "weights"`:     {"traffic": "weights"},
		"config.gateway must be a string": {"gateway": 3},
	} {
		if _, err := NewServing(cfg, &schema.Backend{Config: want}, Clients{}); err == nil || !strings.Contains(err.Error(), cfgMap) {
			t.Errorf("NewServing(%v) = %v, want %q", want, err, cfgMap)
		}
	}
}
