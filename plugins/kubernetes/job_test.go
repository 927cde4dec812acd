package kubernetes

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"weir.dev/weir/schema"
)

func testConfig(t *testing.T, b *schema.Backend) *Config {
	t.Helper()
	if b == nil {
		b = &schema.Backend{Kind: "kubernetes"}
	}
	cfg, err := ParseConfig("k8s", b)
	require.NoError(t, err)
	return cfg
}

func gpuStep() *schema.Step {
	return &schema.Step{Address: "training.churn.trial[lr=0.1,l2=0]", Kind: "trial", Element: "training.churn",
		Run: &schema.StepRun{Image: "python:3.12", Command: []string{"python", "train.py"}, Retries: 2, Timeout: "90s",
			Env:       map[string]schema.EnvVar{"MODE": {Value: "fast"}, "TOKEN": {Secret: "env:TOKEN"}},
			Resources: &schema.Resources{CPU: 1.5, Memory: "4Gi", GPU: 2, GPUType: "a100"}},
		Params: map[string]any{"lr": 0.1}, Inputs: []schema.Input{{Name: "features"}}, Outputs: []string{"model"}}
}

// validLabels checks what the API server would: label keys and values.
func validLabels(t *testing.T, m map[string]string) {
	t.Helper()
	for k, v := range m {
		assert.Empty(t, validation.IsQualifiedName(k), "label key %q", k)
		assert.Empty(t, validation.IsValidLabelValue(v), "label %s=%q", k, v)
	}
}

func TestStepWorkloadGPU(t *testing.T) {
	cfg := testConfig(t, &schema.Backend{Kind: "kubernetes", Namespace: "ml", ServiceAccount: "trainer", Queue: "gpu-queue",
		Config: map[string]any{"project": "churn", "gpuNodeLabel": "gpu.example/model", "ttlSecondsAfterFinished": 60.0}})
	w, err := StepWorkload(cfg, gpuStep(), BuildOptions{})
	require.NoError(t, err)
	j := w.Job
	assert.Nil(t, w.Service, "one worker: no rendezvous")
	assert.Equal(t, "ml", j.Namespace)
	assert.Empty(t, validation.IsDNS1123Label(j.Name))
	assert.LessOrEqual(t, len(j.Name), 52)
	assert.Equal(t, int32(2), *j.Spec.BackoffLimit)
	assert.Equal(t, int64(90), *j.Spec.ActiveDeadlineSeconds)
	assert.Equal(t, int32(60), *j.Spec.TTLSecondsAfterFinished)
	assert.True(t, *j.Spec.Suspend, "Kueue admits a queued Job by unsuspending it")
	assert.Equal(t, "gpu-queue", j.Labels[LabelQueue])
	assert.Equal(t, "weir", j.Labels[LabelManagedBy])
	assert.Equal(t, "churn", j.Labels[LabelPartOf])
	assert.Equal(t, "trial", j.Labels[LabelComponent])
	assert.Equal(t, "training.churn", j.Labels[LabelName])
	assert.Equal(t, "training.churn.trial[lr=0.1,l2=0]", j.Annotations[AnnotationStep])
	validLabels(t, j.Labels)
	validLabels(t, j.Spec.Template.Labels)

	pod := j.Spec.Template.Spec
	assert.Equal(t, "trainer", pod.ServiceAccountName)
	assert.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
	assert.Equal(t, map[string]string{"gpu.example/model": "a100"}, pod.NodeSelector)
	assert.Equal(t, []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, pod.Tolerations)
	c := pod.Containers[0]
	assert.Equal(t, []string{"python", "train.py"}, c.Command)
	assert.Equal(t, "/weir", c.WorkingDir)
	gpu := c.Resources.Limits["nvidia.com/gpu"]
	assert.Equal(t, int64(2), gpu.Value())
	_, inRequests := c.Resources.Requests["nvidia.com/gpu"]
	assert.False(t, inRequests, "extended resources go in limits only")
	cpu := c.Resources.Requests[corev1.ResourceCPU]
	assert.Equal(t, "1500m", cpu.String())
	mem := c.Resources.Limits[corev1.ResourceMemory]
	assert.Equal(t, "4Gi", mem.String())
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	assert.Equal(t, "fast", env["MODE"].Value)
	assert.Equal(t, "weir-secrets", env["TOKEN"].ValueFrom.SecretKeyRef.Name, "secrets are referenced, never written")
	assert.Equal(t, "/weir/in/features", env["WEIR_INPUT_FEATURES"].Value)
	assert.Equal(t, "/weir/out/model", env["WEIR_OUTPUT_MODEL"].Value)
	assert.Equal(t, "/weir/params.json", env["WEIR_PARAMS"].Value)
	assert.Equal(t, "/weir/metrics.jsonl", env["WEIR_METRICS"].Value)
}

func TestStepWorkloadDistributed(t *testing.T) {
	s := gpuStep()
	s.Run.Workers = 4
	cfg := testConfig(t, &schema.Backend{Kind: "kubernetes", Namespace: "ml"})
	w, err := StepWorkload(cfg, s, BuildOptions{})
	require.NoError(t, err)
	j := w.Job
	assert.Equal(t, batchv1.IndexedCompletion, *j.Spec.CompletionMode)
	assert.Equal(t, int32(4), *j.Spec.Completions)
	assert.Equal(t, int32(4), *j.Spec.Parallelism)
	require.NotNil(t, w.Service)
	assert.Equal(t, corev1.ClusterIPNone, w.Service.Spec.ClusterIP)
	assert.Equal(t, map[string]string{batchv1.JobNameLabel: j.Name}, w.Service.Spec.Selector)
	assert.Equal(t, w.Service.Name, j.Spec.Template.Spec.Subdomain)
	// The longest pod host name, JOB-3, is a DNS label.
	assert.Empty(t, validation.IsDNS1123Label(j.Name+"-3"))
	env := map[string]corev1.EnvVar{}
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	assert.Equal(t, j.Name+"-0."+w.Service.Name+".ml.svc", env[EnvMasterAddr].Value)
	assert.Equal(t, "29500", env[EnvMasterPort].Value)
	assert.Equal(t, "4", env[EnvWorldSize].Value)
	assert.Equal(t, "metadata.annotations['batch.kubernetes.io/job-completion-index']", env[EnvRank].ValueFrom.FieldRef.FieldPath)
	assert.Nil(t, w.PodGroup)
	assert.Nil(t, j.Spec.Suspend)

	cfg = testConfig(t, &schema.Backend{Kind: "kubernetes", Queue: "vq", Config: map[string]any{"gang": "volcano"}})
	w, err = StepWorkload(cfg, s, BuildOptions{})
	require.NoError(t, err)
	require.NotNil(t, w.PodGroup)
	assert.Equal(t, "volcano", w.Job.Spec.Template.Spec.SchedulerName)
	assert.Equal(t, w.PodGroup.GetName(), w.Job.Spec.Template.Annotations[AnnotationPodGroup])
	assert.Equal(t, map[string]any{"minMember": int64(4), "queue": "vq", "minResources": map[string]any{"nvidia.com/gpu": "8"}}, w.PodGroup.Object["spec"])
	assert.Empty(t, w.Job.Labels[LabelQueue], "a Volcano queue is not a Kueue one")
}

func TestLowerIsDeterministic(t *testing.T) {
	b := Unconnected()
	require.NoError(t, b.Configure(context.Background(), &schema.Backend{Kind: "kubernetes", Namespace: "ml"}))
	s := gpuStep()
	s.Run.Workers = 2
	first, err := b.Lower(context.Background(), s)
	require.NoError(t, err)
	for range 20 {
		again, err := b.Lower(context.Background(), s)
		require.NoError(t, err)
		require.Equal(t, string(first), string(again))
	}
	var w struct {
		Job     batchv1.Job     `json:"job"`
		Service *corev1.Service `json:"service"`
	}
	require.NoError(t, json.Unmarshal(first, &w))
	assert.Equal(t, "Job", w.Job.Kind)
	assert.NotNil(t, w.Service)
	assert.NotContains(t, string(first), "creationTimestamp\":\"2", "no time in the plan")
}

func TestLowerRefuses(t *testing.T) {
	cfg := testConfig(t, nil)
	s := gpuStep()
	s.Run.Image = ""
	_, err := StepWorkload(cfg, s, BuildOptions{})
	assert.ErrorContains(t, err, "step training.churn.trial[lr=0.1,l2=0] names no image")
	s = gpuStep()
	s.Run.Resources.Memory = "lots"
	_, err = StepWorkload(cfg, s, BuildOptions{})
	assert.ErrorContains(t, err, `resources.memory "lots"`)
	s = gpuStep()
	s.Run.Timeout = "soon"
	_, err = StepWorkload(cfg, s, BuildOptions{})
	assert.ErrorContains(t, err, `timeout "soon"`)
}

func TestNamesAndLabelValues(t *testing.T) {
	long := "training." + strings.Repeat("very_long_name", 10) + ".trial[lr=0.1]"
	for _, a := range []string{"tasks.a", "training.churn.trial[lr=0.1,l2=0]", long, "9lives", "[]"} {
		n := JobName(a, "run-1", 1)
		assert.Empty(t, validation.IsDNS1123Label(n), "%q -> %q", a, n)
		assert.Empty(t, validation.IsDNS1035Label(n), "a Service name too: %q", n)
		assert.Empty(t, validation.IsValidLabelValue(LabelValue(a)), "%q -> %q", a, LabelValue(a))
	}
	assert.Equal(t, "tasks.a", LabelValue("tasks.a"), "a valid value stays as it is")
	assert.NotEqual(t, LabelValue("x[a]"), LabelValue("x[b]"), "distinct addresses stay distinct")
	assert.NotEqual(t, JobName("tasks.a", "r", 1), JobName("tasks.a", "r", 2), "each attempt its own Job")
	assert.Empty(t, validation.IsDNS1123Subdomain(RunParentName("20260101T120000-abcdef")))
	assert.Equal(t, "weir-run-20260101t120000-abcdef", RunParentName("20260101T120000-abcdef"))
}

func TestParseConfig(t *testing.T) {
	cfg := testConfig(t, nil)
	assert.Equal(t, "default", cfg.Namespace)
	assert.Equal(t, "nvidia.com/gpu", cfg.GPUResource)
	assert.Equal(t, "nvidia.com/gpu.product", cfg.GPUNodeLabel)
	assert.Equal(t, "nvidia.com/gpu", cfg.GPUTaint)
	assert.Equal(t, float32(50), cfg.QPS)
	cfg = testConfig(t, &schema.Backend{Kind: "kubernetes", GPUType: "amd.com/gpu", Config: map[string]any{"qps": 200.0, "burst": 400.0}})
	assert.Equal(t, "amd.com/gpu", cfg.GPUTaint)
	assert.Equal(t, float32(200), cfg.QPS)
	assert.Equal(t, 400, cfg.Burst)
	for cfgs, want := range map[string]string{
		"gang":       `config.gang is "both"`,
		"masterPort": "config.masterPort must be a whole number",
	} {
		m := map[string]any{"gang": "both", "masterPort": 1.5}
		_, err := ParseConfig("k8s", &schema.Backend{Kind: "kubernetes", Config: map[string]any{cfgs: m[cfgs]}})
		assert.ErrorContains(t, err, want)
		assert.ErrorContains(t, err, "backend k8s")
	}
}
