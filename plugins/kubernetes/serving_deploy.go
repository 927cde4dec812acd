package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Serving deploys model servers into one namespace: Deploy, SetTraffic and
// Undeploy of backend.Interface over a pair of clients. The backend's
// methods delegate to it; tests use it with client-go's fakes or a real
// cluster. Its fields are the backend's settings; set them before use.
type Serving struct {
	Clients
	Namespace      string
	Project        string
	ServiceAccount string
	// GPUResource, GPUTaint and GPUNodeLabel: see ServingSpec.
	GPUResource  string
	GPUTaint     string
	GPUNodeLabel string
	// Gateway is the HTTPRoutes' parent Gateway ("NAME" or
	// "NAMESPACE/NAME"; "" for none).
	Gateway string
	// Mode forces a traffic mode (TrafficGateway, TrafficReplicas); ""
	// detects it: Gateway API when the cluster serves
	// gateway.networking.k8s.io/v1 HTTPRoutes, else replica ratio.
	Mode string
}

// NewServing is the serving half of a kubernetes backend: its settings
// cfg, the two serving settings of its backends entry b (config.gateway,
// the HTTPRoutes' parent Gateway, "NAME" or "NAMESPACE/NAME"; config.traffic,
// "gateway-api" or "replica-ratio" to force a mode instead of discovering
// it), and its clients. The backend's Deploy, SetTraffic and Undeploy
// delegate to it.
func NewServing(cfg *Config, b *schema.Backend, c Clients) (*Serving, error) {
	s := &Serving{Clients: c, Namespace: cfg.Namespace, Project: cfg.Project, ServiceAccount: cfg.ServiceAccount,
		GPUResource: cfg.GPUResource, GPUTaint: cfg.GPUTaint, GPUNodeLabel: cfg.GPUNodeLabel}
	if b == nil {
		return s, nil
	}
	for key, dst := range map[string]*string{"gateway": &s.Gateway, "traffic": &s.Mode} {
		v, ok := b.Config[key]
		if !ok {
			continue
		}
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("backend %s: config.%s must be a string, not %v", cfg.Name, key, v)
		}
		*dst = str
	}
	switch s.Mode {
	case "", TrafficGateway, TrafficReplicas:
	default:
		return nil, fmt.Errorf("backend %s: config.traffic is %q: it must be %q or %q", cfg.Name, s.Mode, TrafficGateway, TrafficReplicas)
	}
	return s, nil
}

// TrafficMode tells how the cluster splits traffic, and why.
func (s *Serving) TrafficMode(ctx context.Context) (mode, why string, err error) {
	if s.Mode != "" {
		return s.Mode, "set by the backend's settings", nil
	}
	if s.Dynamic == nil {
		return TrafficReplicas, "no dynamic client to reach Gateway API with", nil
	}
	gv := GatewayGroup + "/" + GatewayVersion
	list, err := s.Kube.Discovery().ServerResourcesForGroupVersion(gv)
	if isNotFound(err) {
		return TrafficReplicas, "Gateway API (" + gv + ") is not installed", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("discovering %s: %w", gv, err)
	}
	for _, r := range list.APIResources {
		if r.Name == "httproutes" {
			return TrafficGateway, "Gateway API (" + gv + " HTTPRoute) is installed", nil
		}
	}
	return TrafficReplicas, gv + " serves no HTTPRoute", nil
}

func trafficMessage(mode, why string) string {
	if mode == TrafficGateway {
		return "traffic split by HTTPRoute weights: " + why
	}
	return "traffic split by replica ratio: " + why
}

// hostEnv are variables of weir's own environment a server's environment
// carries that mean nothing in a container (the image sets its own).
var hostEnv = map[string]bool{"PATH": true, "HOME": true, "PWD": true, "TMPDIR": true, "SYSTEMROOT": true, "PORT": true}

// Spec is the ServingSpec of a service revision with the backend's settings.
// The server's environment goes to a Secret (EnvFrom), never into the
// Deployment: it holds resolved secrets. The contract's WEIR_* variables
// are set again with their paths in the container.
func (s *Serving) Spec(svc *backend.Service) (*ServingSpec, map[string]string, error) {
	if svc.Name == "" || svc.Revision == "" {
		return nil, nil, fmt.Errorf("a service to deploy needs a name and a revision (got %q, %q)", svc.Name, svc.Revision)
	}
	sp := &ServingSpec{
		Address: svc.Name, Revision: svc.Revision, Project: s.Project, Namespace: s.namespace(),
		Image: svc.Image, Command: svc.Argv, Port: svc.Port,
		Replicas: max(svc.MinReplicas, 1), MaxReplicas: svc.MaxReplicas,
		ServiceAccount: s.ServiceAccount, GPUResource: s.GPUResource, GPUTaint: s.GPUTaint, GPUNodeLabel: s.GPUNodeLabel,
		Gateway: s.Gateway,
	}
	for name := range svc.Inputs {
		sp.Inputs = append(sp.Inputs, name)
	}
	sort.Strings(sp.Inputs)
	if r := svc.Resources; r != nil {
		sp.CPU, sp.Memory, sp.GPU, sp.GPUType = r.CPU, r.Memory, r.GPU, r.GPUType
	}
	env := map[string]string{}
	for k, v := range svc.Env {
		if !hostEnv[k] && !strings.HasPrefix(k, "WEIR_") {
			env[k] = v
		}
	}
	if len(env) > 0 {
		sp.EnvFrom = dnsLabel(sp.name() + "-env")
	}
	if err := sp.Check(); err != nil {
		return nil, nil, err
	}
	return sp, env, nil
}

func (s *Serving) namespace() string {
	if s.Namespace == "" {
		return "default"
	}
	return s.Namespace
}

// envSecret is the Secret holding a revision's environment.
func (sp *ServingSpec) envSecret(env map[string]string) Object {
	sec := corev1ac.Secret(sp.EnvFrom, sp.Namespace).
		WithLabels(sp.revisionLabels()).
		WithAnnotations(map[string]string{annServingAddress: sp.Address}).
		WithType("Opaque").
		WithStringData(env)
	return Object{APIVersion: "v1", Kind: "Secret", Namespace: sp.Namespace, Name: sp.EnvFrom, Config: sec}
}

// DeployObjects are the objects Deploy applies for svc, in order, with the
// traffic mode and its reason: what the plan diffs against the cluster.
func (s *Serving) DeployObjects(ctx context.Context, svc *backend.Service) ([]Object, string, string, error) {
	sp, env, err := s.Spec(svc)
	if err != nil {
		return nil, "", "", err
	}
	mode, why, err := s.TrafficMode(ctx)
	if err != nil {
		return nil, "", "", err
	}
	revs, err := s.revisions(ctx, sp.base())
	if err != nil {
		return nil, "", "", err
	}
	weights := map[string]int{}
	for _, r := range revs {
		weights[r.name] = r.weight
	}
	w, ok := weights[svc.Revision]
	if !ok {
		w = 0
		if len(revs) == 0 {
			w = 100 // the first revision takes all the traffic
		}
		weights[svc.Revision] = w
	}
	var objs []Object
	if len(env) > 0 {
		objs = append(objs, sp.envSecret(env))
	}
	objs = append(objs, sp.RevisionObjects(mode, w)...)
	objs = append(objs, sp.SharedObjects(mode, weights)...)
	return objs, mode, why, nil
}

// Deploy applies a revision of a service: its Deployment (and Secret,
// PDB, HPA, Service under Gateway API) and the service's shared Service
// (and HTTPRoute). The first revision of a name takes all the traffic; a
// later one starts at weight 0 (by replica ratio: with no replicas) and
// keeps the weight it has when deployed again. It does not wait for the
// revision to become ready: Revision.Ready says whether it is.
func (s *Serving) Deploy(ctx context.Context, svc *backend.Service) (*backend.Deployment, error) {
	objs, mode, why, err := s.DeployObjects(ctx, svc)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if _, err := Apply(ctx, s.Clients, o, false); err != nil {
			return nil, err
		}
	}
	return s.describe(ctx, BaseName(svc.Name), mode, why)
}

// Plan is what Deploy would change, object by object (drift shows as
// updates), and how it would split traffic.
type Plan struct {
	Mode    string
	Why     string
	Changes []Change
}

// String renders the plan: a line on traffic, then each change.
func (p *Plan) String() string {
	lines := []string{trafficMessage(p.Mode, p.Why)}
	for _, c := range p.Changes {
		lines = append(lines, c.String())
	}
	return strings.Join(lines, "\n")
}

// PlanDeploy diffs what Deploy would apply against the cluster.
func (s *Serving) PlanDeploy(ctx context.Context, svc *backend.Service) (*Plan, error) {
	objs, mode, why, err := s.DeployObjects(ctx, svc)
	if err != nil {
		return nil, err
	}
	ch, err := Diff(ctx, s.Clients, objs)
	if err != nil {
		return nil, err
	}
	return &Plan{Mode: mode, Why: why, Changes: ch}, nil
}

// revision is a deployed revision as the cluster holds it.
type revision struct {
	name   string
	weight int
	dep    *appsv1.Deployment
}

func (s *Serving) revisions(ctx context.Context, base string) ([]revision, error) {
	sel := labels.SelectorFromSet(labels.Set{LabelServing: base}).String()
	list, err := s.Kube.AppsV1().Deployments(s.namespace()).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing the revisions of %s/%s: %w", s.namespace(), base, err)
	}
	var out []revision
	for i := range list.Items {
		d := &list.Items[i]
		name := d.Labels[LabelRevision]
		if name == "" {
			continue
		}
		w, _ := strconv.Atoi(d.Annotations[AnnotationWeight])
		out = append(out, revision{name: name, weight: w, dep: d})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// parseID splits a deployment ID, "NAMESPACE/NAME".
func (s *Serving) parseID(id string) (string, error) {
	ns, base, ok := strings.Cut(id, "/")
	if !ok || base == "" {
		return "", fmt.Errorf("deployment ID %q is not NAMESPACE/NAME", id)
	}
	if ns != s.namespace() {
		return "", fmt.Errorf("deployment %s is not in this backend's namespace %s", id, s.namespace())
	}
	return base, nil
}

// SetTraffic splits a deployment's traffic between its revisions: the
// weights of its HTTPRoute under Gateway API, else its revisions' replicas
// (and HPA bounds) in the ratio of the weights. Revisions the split does
// not name get 0. The weights must sum to 100.
func (s *Serving) SetTraffic(ctx context.Context, id string, split []backend.Split) (*backend.Deployment, error) {
	base, err := s.parseID(id)
	if err != nil {
		return nil, err
	}
	revs, err := s.revisions(ctx, base)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, fmt.Errorf("deployment %s: no revisions: %w", id, backend.ErrNotFound)
	}
	known := map[string]*revision{}
	var names []string
	for i := range revs {
		known[revs[i].name] = &revs[i]
		names = append(names, revs[i].name)
	}
	weights := map[string]int{}
	sum := 0
	for _, sp := range split {
		if _, ok := known[sp.Revision]; !ok {
			return nil, fmt.Errorf("deployment %s has no revision %q (it has %s)", id, sp.Revision, strings.Join(names, ", "))
		}
		if sp.Weight < 0 || sp.Weight > 100 {
			return nil, fmt.Errorf("deployment %s: revision %s: weight %d is not a percentage", id, sp.Revision, sp.Weight)
		}
		weights[sp.Revision] += sp.Weight
		sum += sp.Weight
	}
	if sum != 100 {
		return nil, fmt.Errorf("deployment %s: the weights sum to %d, not 100", id, sum)
	}
	mode, why, err := s.TrafficMode(ctx)
	if err != nil {
		return nil, err
	}
	// Under Gateway API the route moves first, so no revision loses its
	// replicas while it still has traffic; by ratio, revisions gaining
	// traffic scale up before the others scale down.
	if mode == TrafficGateway {
		if err := s.applyRoute(ctx, base, revs, weights); err != nil {
			return nil, err
		}
	}
	order := append([]revision(nil), revs...)
	sort.SliceStable(order, func(i, j int) bool {
		return weights[order[i].name]-order[i].weight > weights[order[j].name]-order[j].weight
	})
	for _, r := range order {
		if err := s.setWeight(ctx, mode, r, weights[r.name]); err != nil {
			return nil, err
		}
	}
	return s.describe(ctx, base, mode, why)
}

// setWeight records a revision's weight on its Deployment and, by replica
// ratio, scales it and its HPA's bounds. Only the fields weir owns are
// re-applied (extracted from the live object), so nothing else changes.
func (s *Serving) setWeight(ctx context.Context, mode string, r revision, w int) error {
	cfg, err := appsv1ac.ExtractDeployment(r.dep, FieldManager)
	if err != nil {
		return fmt.Errorf("deployment %s/%s: %w", r.dep.Namespace, r.dep.Name, err)
	}
	cfg.WithAnnotations(map[string]string{AnnotationWeight: strconv.Itoa(w)})
	base, _ := strconv.Atoi(r.dep.Annotations[AnnotationReplicas])
	base = max(base, 1)
	maxR, _ := strconv.Atoi(r.dep.Annotations[AnnotationMaxReplicas])
	if mode == TrafficReplicas {
		if cfg.Spec == nil {
			cfg.WithSpec(appsv1ac.DeploymentSpec())
		}
		cfg.Spec.WithReplicas(int32(scale(base, w)))
	}
	o := Object{APIVersion: "apps/v1", Kind: "Deployment", Namespace: r.dep.Namespace, Name: r.dep.Name, Config: cfg}
	if _, err := Apply(ctx, s.Clients, o, false); err != nil {
		return err
	}
	if mode != TrafficReplicas || maxR <= base || w == 0 {
		return nil // an HPA of a revision without replicas is idle
	}
	hpa, err := s.Kube.AutoscalingV2().HorizontalPodAutoscalers(r.dep.Namespace).Get(ctx, r.dep.Name, metav1.GetOptions{})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the HPA of %s/%s: %w", r.dep.Namespace, r.dep.Name, err)
	}
	hcfg, err := autoscalingv2ac.ExtractHorizontalPodAutoscaler(hpa, FieldManager)
	if err != nil {
		return fmt.Errorf("HPA %s/%s: %w", hpa.Namespace, hpa.Name, err)
	}
	minR, maxS := base, maxR
	if w < 100 {
		minR, maxS = scale(base, w), scale(maxR, w)
	}
	if hcfg.Spec == nil {
		hcfg.WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec())
	}
	hcfg.Spec.WithMinReplicas(int32(minR)).WithMaxReplicas(int32(max(maxS, minR)))
	_, err = Apply(ctx, s.Clients, Object{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler",
		Namespace: hpa.Namespace, Name: hpa.Name, Config: hcfg}, false)
	return err
}

// applyRoute sets the HTTPRoute's weights, rebuilt from the revisions'
// Deployments (address, port, project).
func (s *Serving) applyRoute(ctx context.Context, base string, revs []revision, weights map[string]int) error {
	sp := s.specOf(revs[0].dep)
	splits := map[string]int{}
	for _, r := range revs {
		splits[r.name] = weights[r.name]
	}
	_, err := Apply(ctx, s.Clients, sp.httpRoute(splits), false)
	return err
}

// specOf is the part of a revision's spec its shared objects are built
// from.
func (s *Serving) specOf(d *appsv1.Deployment) *ServingSpec {
	sp := &ServingSpec{Address: d.Annotations[annServingAddress], Namespace: d.Namespace, Project: d.Labels["app.kubernetes.io/part-of"], Gateway: s.Gateway}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "http" {
				sp.Port = int(p.ContainerPort)
			}
		}
	}
	return sp
}

// describe reads the deployment back: its revisions, weights, readiness.
func (s *Serving) describe(ctx context.Context, base, mode, why string) (*backend.Deployment, error) {
	revs, err := s.revisions(ctx, base)
	if err != nil {
		return nil, err
	}
	d := &backend.Deployment{ID: s.namespace() + "/" + base, Message: trafficMessage(mode, why)}
	port := 8080
	for _, r := range revs {
		want := int32(1)
		if r.dep.Spec.Replicas != nil {
			want = *r.dep.Spec.Replicas
		}
		st := r.dep.Status
		ready := want > 0 && st.ObservedGeneration >= r.dep.Generation && st.UpdatedReplicas >= want && st.AvailableReplicas >= want
		d.Revisions = append(d.Revisions, backend.Revision{Name: r.name, Weight: r.weight, Ready: ready})
		if p := s.specOf(r.dep).Port; p > 0 {
			port = p
		}
	}
	d.Endpoint = fmt.Sprintf("http://%s.%s.svc:%d", base, s.namespace(), port)
	return d, nil
}

// Undeploy deletes every object of a deployment: Deployments first, with
// foreground propagation, waiting up to grace for their pods to stop, then
// the pods left are deleted at once; then Services, HPAs, PDBs, Secrets and
// the HTTPRoute. It returns when the Deployments are gone.
func (s *Serving) Undeploy(ctx context.Context, id string, grace time.Duration) error {
	base, err := s.parseID(id)
	if err != nil {
		return err
	}
	ns := s.namespace()
	sel := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{LabelServing: base}).String()}
	fg := metav1.DeletePropagationForeground
	del := metav1.DeleteOptions{PropagationPolicy: &fg}
	deps, err := s.Kube.AppsV1().Deployments(ns).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("undeploying %s: %w", id, err)
	}
	for _, d := range deps.Items {
		if err := s.Kube.AppsV1().Deployments(ns).Delete(ctx, d.Name, del); err != nil && !isNotFound(err) {
			return fmt.Errorf("undeploying %s: deleting Deployment %s: %w", id, d.Name, err)
		}
	}
	deadline := time.Now().Add(grace)
	forced := false
	for {
		left, err := s.Kube.AppsV1().Deployments(ns).List(ctx, sel)
		if err != nil {
			return fmt.Errorf("undeploying %s: %w", id, err)
		}
		if len(left.Items) == 0 {
			break
		}
		if !forced && time.Now().After(deadline) {
			zero := int64(0)
			if err := s.Kube.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, sel); err != nil && !isNotFound(err) {
				return fmt.Errorf("undeploying %s: deleting its pods: %w", id, err)
			}
			forced = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("undeploying %s: %w", id, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	var errs []string
	note := func(kind, name string, err error) {
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Sprintf("deleting %s %s: %v", kind, name, err))
		}
	}
	if l, err := s.Kube.CoreV1().Services(ns).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			note("Service", o.Name, s.Kube.CoreV1().Services(ns).Delete(ctx, o.Name, metav1.DeleteOptions{}))
		}
	} else {
		note("Services", "", err)
	}
	if l, err := s.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			note("HorizontalPodAutoscaler", o.Name, s.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Delete(ctx, o.Name, metav1.DeleteOptions{}))
		}
	} else {
		note("HorizontalPodAutoscalers", "", err)
	}
	if l, err := s.Kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			note("PodDisruptionBudget", o.Name, s.Kube.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, o.Name, metav1.DeleteOptions{}))
		}
	} else {
		note("PodDisruptionBudgets", "", err)
	}
	if l, err := s.Kube.CoreV1().Secrets(ns).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			note("Secret", o.Name, s.Kube.CoreV1().Secrets(ns).Delete(ctx, o.Name, metav1.DeleteOptions{}))
		}
	} else {
		note("Secrets", "", err)
	}
	if mode, _, err := s.TrafficMode(ctx); err == nil && mode == TrafficGateway {
		note("HTTPRoute", base, s.Dynamic.Resource(HTTPRouteGVR).Namespace(ns).Delete(ctx, base, metav1.DeleteOptions{}))
	}
	if len(errs) > 0 {
		return fmt.Errorf("undeploying %s: %s", id, strings.Join(errs, "; "))
	}
	return nil
}
