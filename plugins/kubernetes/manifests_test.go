package kubernetes

import (
	"encoding/json"
	"strings"
	"testing"

	"weir.dev/weir/schema"
)

// A plan with a GPU server and a pinned image: BuildManifests pins the
// image, asks for the GPU as a limit on the GPU nodes, leaves built-in
// steps out, and Files gives the same bytes twice.
func TestBuildManifests(t *testing.T) {
	min := 2
	spec := &schema.Serving{Model: "models.m", Backend: "k8s", Port: 9000,
		Server:    &schema.Run{Image: "srv:1", Command: []string{"serve"}, Resources: &schema.Resources{GPU: 2, GPUType: "a100"}},
		Autoscale: &schema.Autoscale{Min: &min, Max: 6, TargetCPU: 70}}
	cfg, _ := json.Marshal(schema.DeployConfig{Serving: "api", Model: "models.m", Weight: 100, Spec: spec})
	p := &schema.Plan{Project: "p", Images: map[string]string{"srv:1": "sha256:abc"},
		Backends: map[string]*schema.Backend{"k8s": {Kind: "kubernetes", Namespace: "ml"}},
		Steps: []*schema.Step{
			{Address: "models.m.register", Kind: "register", Builtin: true},
			{Address: "serving.api.deploy", Kind: "deploy", Element: "serving.api", Backend: "k8s", Config: cfg},
		}}
	m, ds := BuildManifests(p, nil)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	if len(m.Skipped) != 1 || m.Skipped[0].Address != "models.m.register" {
		t.Errorf("skipped = %+v", m.Skipped)
	}
	files, err := Files(m)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	all := ""
	for _, f := range files {
		names = append(names, f.Name)
		all += string(f.Data)
	}
	if got := strings.Join(names, " "); got != "deployment-api.yaml horizontalpodautoscaler-api.yaml kustomization.yaml poddisruptionbudget-api.yaml service-api.yaml" {
		t.Errorf("files = %s", got)
	}
	for _, want := range []string{"image: srv:1@sha256:abc", "nvidia.com/gpu: \"2\"", "nvidia.com/gpu.product: a100",
		"minReplicas: 2", "maxReplicas: 6", "averageUtilization: 70", "namespace: ml"} {
		if !strings.Contains(all, want) {
			t.Errorf("manifests lack %q", want)
		}
	}
	for _, bad := range []string{"status", "creationTimestamp", "null"} {
		if strings.Contains(all, bad) {
			t.Errorf("manifests hold %q:\n%s", bad, all)
		}
	}
	again, _ := Files(m)
	for i := range files {
		if string(files[i].Data) != string(again[i].Data) {
			t.Errorf("%s differs between two renderings", files[i].Name)
		}
	}
}
