package kubernetes

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
)

// Labels and annotations the serving resources carry. The selector of a
// revision's pods is (LabelServing, LabelRevision); the Service of the
// whole deployment selects LabelServing alone.
const (
	LabelServing  = "weir.dev/serving"
	LabelRevision = "weir.dev/revision"
	// AnnotationWeight is a revision's share of traffic in percent, as
	// SetTraffic last set it.
	AnnotationWeight = "weir.dev/weight"
	// AnnotationReplicas is the number of replicas a revision runs with all
	// the traffic (its HPA's minimum), AnnotationMaxReplicas its HPA's
	// maximum: replica-ratio splits scale both by the weight.
	AnnotationReplicas    = "weir.dev/replicas"
	AnnotationMaxReplicas = "weir.dev/max-replicas"
	// annServingAddress is the serving element's address.
	annServingAddress = "weir.dev/address"

	// FieldManager is the field manager of every server-side apply.
	FieldManager = "weir"

	// servingRoot is where the model server's contract paths live inside
	// its container, as for steps (DESIGN section 5).
	servingRoot = "/weir"
)

// Traffic modes: how a deployment's traffic is split between revisions.
const (
	// TrafficGateway splits by the weights of a Gateway API HTTPRoute
	// (gateway.networking.k8s.io/v1) whose backends are one Service per
	// revision.
	TrafficGateway = "gateway-api"
	// TrafficReplicas splits by the ratio of the revisions' replicas behind
	// one Service: coarse, but needs nothing installed.
	TrafficReplicas = "replica-ratio"
)

// ServingSpec is one revision of a served model as the kubernetes backend
// builds it. Deploy makes one from a backend.Service, compile from a plan's
// deploy step; both then build the same objects.
type ServingSpec struct {
	// Address is the serving element's address ("serving.churn_api").
	Address string
	// Revision names the revision ("v3"); empty when the deployment has
	// one revision only (the manifests of compile).
	Revision  string
	Project   string
	Namespace string
	Image     string
	Command   []string
	// Env are plain variables, written into the Deployment.
	Env map[string]string
	// SecretEnv are variables read from keys (their names) of the Secret
	// SecretName (default "weir-secrets"): the spec's secret references,
	// whose values never appear here.
	SecretEnv  []string
	SecretName string
	// EnvFrom names a Secret whose every key becomes a variable (Deploy
	// keeps a resolved environment there, never in the Deployment).
	EnvFrom string
	// Inputs are the server's inputs ("model"), each at /weir/in/NAME.
	Inputs []string
	Port   int
	// Resources of one replica.
	CPU     float64
	Memory  string
	GPU     int
	GPUType string
	// GPUResource is the extended resource GPUs are asked as (default
	// nvidia.com/gpu), GPUTaint the taint key GPU nodes carry (default
	// GPUResource) and GPUNodeLabel the node label naming the GPU model
	// (default nvidia.com/gpu.product), as the backend's settings say.
	GPUResource  string
	GPUTaint     string
	GPUNodeLabel string
	// Replicas with all the traffic; with MaxReplicas > Replicas a
	// HorizontalPodAutoscaler scales between them.
	Replicas    int
	MaxReplicas int
	TargetCPU   int
	TargetRPS   float64
	// ServiceAccount of the server's pods ("" for the namespace's default).
	ServiceAccount string
	// Annotations added to the Deployment (its pods' template excluded).
	Annotations map[string]string
	// Gateway is the parent of the HTTPRoute under Gateway API: "NAME" or
	// "NAMESPACE/NAME" of a Gateway ("": a route without parent, attached
	// by the cluster's owner).
	Gateway string
}

// BaseName is the Kubernetes name of a serving element's shared objects (its
// Service and HTTPRoute): the element's name as a DNS label.
func BaseName(address string) string {
	return dnsLabel(strings.TrimPrefix(address, "serving."))
}

// RevisionName is the name of a revision's own objects (Deployment, HPA,
// PDB, Service under Gateway API).
func RevisionName(address, revision string) string {
	if revision == "" {
		return BaseName(address)
	}
	return dnsLabel(BaseName(address) + "-" + revision)
}

// dnsLabel turns s into an RFC 1123 label: lower case, [a-z0-9-], at most 63
// characters (a long name keeps a hash of the whole so two stay apart).
func dnsLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	for strings.Contains(out, "--") {
		out = strings.ReplaceAll(out, "--", "-")
	}
	if out == "" {
		out = "x"
	}
	if out[0] >= '0' && out[0] <= '9' {
		out = "s-" + out
	}
	if len(out) > 63 {
		sum := sha256.Sum256([]byte(s))
		out = strings.TrimRight(out[:54], "-") + "-" + hex.EncodeToString(sum[:])[:8]
	}
	return out
}

// labelValue makes s a valid label value (at most 63 characters of
// [A-Za-z0-9._-], alphanumeric at both ends).
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "._-")
	if len(out) > 63 {
		return dnsLabel(s)
	}
	return out
}

func (s *ServingSpec) base() string { return BaseName(s.Address) }
func (s *ServingSpec) name() string { return RevisionName(s.Address, s.Revision) }

// commonLabels are the recommended labels of every object of the element.
func (s *ServingSpec) commonLabels() map[string]string {
	l := map[string]string{
		"app.kubernetes.io/name":       s.base(),
		"app.kubernetes.io/component":  "model-server",
		"app.kubernetes.io/managed-by": "weir",
		LabelServing:                   s.base(),
	}
	if s.Project != "" {
		l["app.kubernetes.io/part-of"] = labelValue(s.Project)
	}
	return l
}

// revisionLabels add the revision's own.
func (s *ServingSpec) revisionLabels() map[string]string {
	l := s.commonLabels()
	l["app.kubernetes.io/instance"] = s.name()
	if s.Revision != "" {
		l["app.kubernetes.io/version"] = labelValue(s.Revision)
		l[LabelRevision] = labelValue(s.Revision)
	}
	return l
}

// selector picks the revision's pods.
func (s *ServingSpec) selector() map[string]string {
	sel := map[string]string{LabelServing: s.base()}
	if s.Revision != "" {
		sel[LabelRevision] = labelValue(s.Revision)
	}
	return sel
}

func (s *ServingSpec) port() int32 {
	if s.Port > 0 {
		return int32(s.Port)
	}
	return 8080
}

func (s *ServingSpec) autoscaled() bool { return s.MaxReplicas > max(s.Replicas, 1) }

// Check reports what makes the spec impossible to build, naming its address.
func (s *ServingSpec) Check() error {
	if s.Image == "" {
		return fmt.Errorf("%s: the kubernetes backend runs the model server in an image, and none is named (server.image or defaults.image)", s.Address)
	}
	if len(s.Command) == 0 {
		return fmt.Errorf("%s: no model server command (server.command): the built-in model server is not packaged as an image yet", s.Address)
	}
	if s.Memory != "" {
		if _, err := resource.ParseQuantity(s.Memory); err != nil {
			return fmt.Errorf("%s: resources.memory %q: %v", s.Address, s.Memory, err)
		}
	}
	if s.CPU < 0 || s.GPU < 0 || s.Replicas < 0 || s.MaxReplicas < 0 {
		return fmt.Errorf("%s: negative resources or replicas", s.Address)
	}
	return nil
}

// Object is one Kubernetes object the backend applies or compile writes:
// Config is its apply configuration (a client-go applyconfiguration or, for
// kinds client-go does not know, an *unstructured.Unstructured), which
// marshals to exactly the fields weir owns.
type Object struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	Config     any
}

// Ref names the object: "apps/v1 Deployment ns/name".
func (o Object) Ref() string {
	if o.Namespace == "" {
		return fmt.Sprintf("%s %s %s", o.APIVersion, o.Kind, o.Name)
	}
	return fmt.Sprintf("%s %s %s/%s", o.APIVersion, o.Kind, o.Namespace, o.Name)
}

// RevisionObjects are the objects of one revision at a weight: its
// Deployment, its PodDisruptionBudget, a HorizontalPodAutoscaler when it
// autoscales, and under Gateway API its own Service.
//
// Under Gateway API every revision runs its full replicas, whatever its
// weight. By replica ratio a revision runs its replicas scaled by its
// weight (rounded up; none at weight 0, which also disables its HPA), and
// its HPA's bounds are scaled alike. An autoscaled revision's Deployment
// leaves replicas to the HPA, except by replica ratio, where they are the
// split itself.
func (s *ServingSpec) RevisionObjects(mode string, weight int) []Object {
	base := max(s.Replicas, 1)
	replicas := base
	minR, maxR := base, s.MaxReplicas
	if mode == TrafficReplicas {
		replicas = scale(base, weight)
		if weight > 0 && weight < 100 {
			minR, maxR = scale(minR, weight), scale(maxR, weight)
		}
	}
	setReplicas := !s.autoscaled() || mode == TrafficReplicas
	objs := []Object{s.deployment(weight, replicas, setReplicas), s.pdb()}
	if s.autoscaled() {
		objs = append(objs, s.hpa(minR, max(maxR, minR)))
	}
	if mode == TrafficGateway && s.Revision != "" {
		objs = append(objs, s.service(s.name(), s.selector(), s.revisionLabels()))
	}
	return objs
}

// SharedObjects are the objects of the whole deployment: the Service that
// selects every revision and, under Gateway API, the HTTPRoute splitting
// traffic between the revisions' Services by weight (splits: revision
// name -> weight).
func (s *ServingSpec) SharedObjects(mode string, splits map[string]int) []Object {
	objs := []Object{s.service(s.base(), map[string]string{LabelServing: s.base()}, s.commonLabels())}
	if mode == TrafficGateway {
		objs = append(objs, s.httpRoute(splits))
	}
	return objs
}

// scale is n scaled by weight percent, rounded up, at least 1 for a weight
// above 0.
func scale(n, weight int) int {
	if weight <= 0 {
		return 0
	}
	return max(1, int(math.Ceil(float64(n)*float64(weight)/100)))
}

func (s *ServingSpec) deployment(weight, replicas int, setReplicas bool) Object {
	labels := s.revisionLabels()
	ann := map[string]string{annServingAddress: s.Address, AnnotationReplicas: strconv.Itoa(max(s.Replicas, 1))}
	if s.autoscaled() {
		ann[AnnotationMaxReplicas] = strconv.Itoa(s.MaxReplicas)
	}
	if s.Revision != "" {
		ann[AnnotationWeight] = strconv.Itoa(weight)
	}
	for k, v := range s.Annotations {
		ann[k] = v
	}
	d := appsv1ac.Deployment(s.name(), s.Namespace).
		WithLabels(labels).
		WithAnnotations(ann)
	spec := appsv1ac.DeploymentSpec().
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(s.selector())).
		WithTemplate(corev1ac.PodTemplateSpec().
			WithLabels(labels).
			WithSpec(s.podSpec()))
	if setReplicas {
		spec.WithReplicas(int32(replicas))
	}
	d.WithSpec(spec)
	return Object{APIVersion: "apps/v1", Kind: "Deployment", Namespace: s.Namespace, Name: s.name(), Config: d}
}

func (s *ServingSpec) podSpec() *corev1ac.PodSpecApplyConfiguration {
	c := corev1ac.Container().
		WithName("server").
		WithImage(s.Image).
		WithCommand(s.Command...).
		WithWorkingDir(servingRoot).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(s.port()).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(s.env()...).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("weir").WithMountPath(servingRoot)).
		WithReadinessProbe(corev1ac.Probe().WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromString("http"))))
	if s.EnvFrom != "" {
		c.WithEnvFrom(corev1ac.EnvFromSource().WithSecretRef(corev1ac.SecretEnvSource().WithName(s.EnvFrom)))
	}
	if r := s.resources(); r != nil {
		c.WithResources(r)
	}
	p := corev1ac.PodSpec().
		WithContainers(c).
		WithVolumes(corev1ac.Volume().WithName("weir").WithEmptyDir(corev1ac.EmptyDirVolumeSource()))
	if s.ServiceAccount != "" {
		p.WithServiceAccountName(s.ServiceAccount)
	}
	if s.GPU > 0 {
		p.WithTolerations(corev1ac.Toleration().WithKey(s.gpuTaint()).WithOperator(corev1.TolerationOpExists).WithEffect(corev1.TaintEffectNoSchedule))
		if s.GPUType != "" {
			p.WithNodeSelector(map[string]string{s.gpuLabel(): s.GPUType})
		}
	}
	return p
}

func (s *ServingSpec) gpuResource() string { return cmp.Or(s.GPUResource, "nvidia.com/gpu") }
func (s *ServingSpec) gpuTaint() string    { return cmp.Or(s.GPUTaint, s.gpuResource()) }
func (s *ServingSpec) gpuLabel() string    { return cmp.Or(s.GPUNodeLabel, "nvidia.com/gpu.product") }
func (s *ServingSpec) secretName() string  { return cmp.Or(s.SecretName, "weir-secrets") }

// env is the contract's variables with their paths under /weir, then the
// plain variables, then the secret references, each group sorted.
func (s *ServingSpec) env() []*corev1ac.EnvVarApplyConfiguration {
	var out []*corev1ac.EnvVarApplyConfiguration
	add := func(k, v string) { out = append(out, corev1ac.EnvVar().WithName(k).WithValue(v)) }
	add("PORT", strconv.Itoa(int(s.port())))
	add("WEIR_STEP", s.Address)
	inputs := append([]string(nil), s.Inputs...)
	sort.Strings(inputs)
	for _, in := range inputs {
		add("WEIR_INPUT_"+strings.ToUpper(in), servingRoot+"/in/"+in)
	}
	add("WEIR_METRICS", servingRoot+"/metrics.jsonl")
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, s.Env[k])
	}
	secrets := append([]string(nil), s.SecretEnv...)
	sort.Strings(secrets)
	for _, k := range secrets {
		out = append(out, corev1ac.EnvVar().WithName(k).WithValueFrom(corev1ac.EnvVarSource().
			WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(s.secretName()).WithKey(k))))
	}
	return out
}

func (s *ServingSpec) resources() *corev1ac.ResourceRequirementsApplyConfiguration {
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	if s.CPU > 0 {
		req[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(s.CPU*1000)), resource.DecimalSI)
	}
	if s.Memory != "" {
		if q, err := resource.ParseQuantity(s.Memory); err == nil {
			req[corev1.ResourceMemory] = q
			lim[corev1.ResourceMemory] = q
		}
	}
	if s.GPU > 0 {
		lim[corev1.ResourceName(s.gpuResource())] = *resource.NewQuantity(int64(s.GPU), resource.DecimalSI)
	}
	if len(req) == 0 && len(lim) == 0 {
		return nil
	}
	r := corev1ac.ResourceRequirements()
	if len(req) > 0 {
		r.WithRequests(req)
	}
	if len(lim) > 0 {
		r.WithLimits(lim)
	}
	return r
}

func (s *ServingSpec) service(name string, selector, labels map[string]string) Object {
	svc := corev1ac.Service(name, s.Namespace).
		WithLabels(labels).
		WithAnnotations(map[string]string{annServingAddress: s.Address}).
		WithSpec(corev1ac.ServiceSpec().
			WithSelector(selector).
			WithPorts(corev1ac.ServicePort().WithName("http").WithPort(s.port()).
				WithTargetPort(intstr.FromString("http")).WithProtocol(corev1.ProtocolTCP)))
	return Object{APIVersion: "v1", Kind: "Service", Namespace: s.Namespace, Name: name, Config: svc}
}

// pdb keeps at most one replica of the revision away at a time (a
// minAvailable would block draining a node that holds its only replica).
func (s *ServingSpec) pdb() Object {
	p := policyv1ac.PodDisruptionBudget(s.name(), s.Namespace).
		WithLabels(s.revisionLabels()).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(s.selector())))
	return Object{APIVersion: "policy/v1", Kind: "PodDisruptionBudget", Namespace: s.Namespace, Name: s.name(), Config: p}
}

// RPSMetric is the per-pod metric targetRPS scales on; a custom metrics
// adapter (prometheus-adapter, KEDA) must serve it.
const RPSMetric = "http_requests_per_second"

func (s *ServingSpec) hpa(minR, maxR int) Object {
	var metrics []*autoscalingv2ac.MetricSpecApplyConfiguration
	cpu := s.TargetCPU
	if cpu == 0 && s.TargetRPS == 0 {
		cpu = 80
	}
	if cpu > 0 {
		metrics = append(metrics, autoscalingv2ac.MetricSpec().WithType(autoscalingv2.ResourceMetricSourceType).
			WithResource(autoscalingv2ac.ResourceMetricSource().WithName(corev1.ResourceCPU).
				WithTarget(autoscalingv2ac.MetricTarget().WithType(autoscalingv2.UtilizationMetricType).WithAverageUtilization(int32(cpu)))))
	}
	if s.TargetRPS > 0 {
		q := resource.NewMilliQuantity(int64(math.Round(s.TargetRPS*1000)), resource.DecimalSI)
		metrics = append(metrics, autoscalingv2ac.MetricSpec().WithType(autoscalingv2.PodsMetricSourceType).
			WithPods(autoscalingv2ac.PodsMetricSource().
				WithMetric(autoscalingv2ac.MetricIdentifier().WithName(RPSMetric)).
				WithTarget(autoscalingv2ac.MetricTarget().WithType(autoscalingv2.AverageValueMetricType).WithAverageValue(*q))))
	}
	h := autoscalingv2ac.HorizontalPodAutoscaler(s.name(), s.Namespace).
		WithLabels(s.revisionLabels()).
		WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec().
			WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().WithAPIVersion("apps/v1").WithKind("Deployment").WithName(s.name())).
			WithMinReplicas(int32(minR)).
			WithMaxReplicas(int32(maxR)).
			WithMetrics(metrics...))
	return Object{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Namespace: s.Namespace, Name: s.name(), Config: h}
}

// Gateway API names.
const (
	GatewayGroup   = "gateway.networking.k8s.io"
	GatewayVersion = "v1"
)

// httpRoute sends the element's traffic to its revisions' Services by
// weight, its parent the Gateway s.Gateway names, if any.
func (s *ServingSpec) httpRoute(splits map[string]int) Object {
	revs := make([]string, 0, len(splits))
	for r := range splits {
		revs = append(revs, r)
	}
	sort.Strings(revs)
	var refs []any
	for _, r := range revs {
		refs = append(refs, map[string]any{
			"name":   RevisionName(s.Address, r),
			"port":   int64(s.port()),
			"weight": int64(splits[r]),
		})
	}
	labels := map[string]any{}
	for k, v := range s.commonLabels() {
		labels[k] = v
	}
	spec := map[string]any{"rules": []any{map[string]any{"backendRefs": refs}}}
	if g := s.Gateway; g != "" {
		ref := map[string]any{"name": g}
		if ns, name, ok := strings.Cut(g, "/"); ok {
			ref = map[string]any{"namespace": ns, "name": name}
		}
		spec["parentRefs"] = []any{ref}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": GatewayGroup + "/" + GatewayVersion,
		"kind":       "HTTPRoute",
		"metadata": map[string]any{
			"name":        s.base(),
			"namespace":   s.Namespace,
			"labels":      labels,
			"annotations": map[string]any{annServingAddress: s.Address},
		},
		"spec": spec,
	}}
	return Object{APIVersion: GatewayGroup + "/" + GatewayVersion, Kind: "HTTPRoute", Namespace: s.Namespace, Name: s.base(), Config: u}
}
