package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	weirschema "weir.dev/weir/schema"
)

// CheckError is a problem Check found. Step is the address of the step it
// concerns ("" for the backend as a whole); a Warning does not stop the
// plan.
type CheckError struct {
	Step    string
	Warning bool
	Err     error
}

func (e *CheckError) Error() string { return e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

// Address is the step the problem concerns ("" for the whole backend).
func (e *CheckError) Address() string { return e.Step }

// IsWarning reports whether the problem is only a warning.
func (e *CheckError) IsWarning() bool { return e.Warning }

// KueueGroup is Kueue's API group; its LocalQueues are checked at plan time.
const KueueGroup = "kueue.x-k8s.io"

// Check looks at the cluster before apply, for what would otherwise fail
// or wait forever once steps run: the kubeconfig and its context; the
// namespace; the Kueue queue (when Kueue is installed); steps whose
// resources no node can ever give (naming the step and the largest node);
// and whether RBAC lets the backend do what apply does
// (SelfSubjectAccessReview, the verb and resource named). A cluster that
// cannot be reached gives one warning: planning does not need it. Checks
// the backend's identity may not make (listing nodes, reading namespaces)
// are skipped.
func (b *Backend) Check(ctx context.Context, steps []*weirschema.Step) []error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cfg := b.config()
	var run []*weirschema.Step
	for _, s := range steps {
		if s.Run != nil {
			run = append(run, s)
			b.remember(s)
		}
	}
	if len(run) == 0 {
		return nil
	}
	// What the settings alone refuse, cluster or not.
	var refused []error
	said := map[string]bool{} // a backend's missing registry, said once
	for _, s := range run {
		if err := filesNeeds(cfg, s.Address, len(s.Inputs) > 0, len(s.Outputs) > 0, s.Run.Code != ""); err != nil && !said[err.Error()] {
			said[err.Error()] = true
			refused = append(refused, &CheckError{Step: s.Address, Err: err})
		}
	}
	if len(refused) > 0 {
		return refused
	}
	if _, err := RESTConfig(cfg); err != nil {
		var ce *ClusterError
		if errors.As(err, &ce) && ce.NoConfig {
			return []error{&CheckError{Warning: true, Err: fmt.Errorf("%v; the plan-time checks of the cluster were skipped", err)}}
		}
		return []error{&CheckError{Err: err}}
	}
	cs, err := b.clients(ctx)
	if err != nil {
		return []error{&CheckError{Warning: true, Err: fmt.Errorf("%v; the plan-time checks of the cluster were skipped", err)}}
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	add := func(e ...error) {
		mu.Lock()
		errs = append(errs, e...)
		mu.Unlock()
	}
	wg.Add(4)
	go func() { defer wg.Done(); add(b.checkNamespace(ctx, cs, cfg)...) }()
	go func() { defer wg.Done(); add(b.checkQueue(ctx, cs, cfg)...) }()
	go func() { defer wg.Done(); add(b.checkFit(ctx, cs, cfg, run)...) }()
	go func() { defer wg.Done(); add(b.checkAccess(ctx, cs, cfg, run)...) }()
	wg.Wait()
	sort.SliceStable(errs, func(i, j int) bool {
		a, c := errs[i].(*CheckError), errs[j].(*CheckError)
		if a.Step != c.Step {
			return a.Step < c.Step
		}
		return a.Error() < c.Error()
	})
	return errs
}

func (b *Backend) checkNamespace(ctx context.Context, cs kubernetes.Interface, cfg *Config) []error {
	_, err := cs.CoreV1().Namespaces().Get(ctx, cfg.Namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return []error{&CheckError{Err: fmt.Errorf("backend %s: namespace %s does not exist in the cluster at %s (create it, or set namespace in the backend)", cfg.Name, cfg.Namespace, b.host)}}
	}
	return nil // found, or not ours to read: RBAC's check speaks for the rest
}

func (b *Backend) checkQueue(ctx context.Context, cs kubernetes.Interface, cfg *Config) []error {
	if cfg.Queue == "" || cfg.Gang == GangVolcano {
		return nil
	}
	dyn := b.dynamic()
	var version string
	for _, v := range []string{"v1beta2", "v1beta1"} {
		if _, err := cs.Discovery().ServerResourcesForGroupVersion(KueueGroup + "/" + v); err == nil {
			version = v
			break
		}
	}
	if version == "" || dyn == nil {
		return []error{&CheckError{Warning: true, Err: fmt.Errorf("backend %s names queue %s, but Kueue is not installed in the cluster (no %s API): its Jobs are created suspended and will wait until Kueue admits them", cfg.Name, cfg.Queue, KueueGroup)}}
	}
	gvr := schema.GroupVersionResource{Group: KueueGroup, Version: version, Resource: "localqueues"}
	_, err := dyn.Resource(gvr).Namespace(cfg.Namespace).Get(ctx, cfg.Queue, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return []error{&CheckError{Err: fmt.Errorf("backend %s: Kueue LocalQueue %s does not exist in namespace %s", cfg.Name, cfg.Queue, cfg.Namespace)}}
	}
	return nil
}

// node is what the checks need of a node.
type node struct {
	name   string
	alloc  corev1.ResourceList
	labels map[string]string
}

func (n node) gpus(res string) int {
	q, ok := n.alloc[corev1.ResourceName(res)]
	if !ok {
		return 0
	}
	return int(q.Value())
}

func listNodes(ctx context.Context, cs kubernetes.Interface) ([]node, error) {
	l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, err
	}
	out := make([]node, 0, len(l.Items))
	for _, n := range l.Items {
		if n.Spec.Unschedulable {
			continue
		}
		out = append(out, node{name: n.Name, alloc: n.Status.Allocatable, labels: n.Labels})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// checkFit finds steps whose resources no node can ever give: waiting for
// them would be forever. A request that fits a node, busy or not, waits
// and is reported while it does.
func (b *Backend) checkFit(ctx context.Context, cs kubernetes.Interface, cfg *Config, steps []*weirschema.Step) []error {
	var nodes []node
	var listErr error
	listed := false
	var errs []error
	for _, s := range steps {
		r := s.Run.Resources
		if r == nil || (r.GPU == 0 && r.CPU == 0 && r.Memory == "") {
			continue
		}
		if !listed {
			nodes, listErr = listNodes(ctx, cs)
			listed = true
		}
		if listErr != nil {
			return nil // not ours to list: the scheduler will tell
		}
		if len(nodes) == 0 {
			return []error{&CheckError{Warning: true, Err: fmt.Errorf("backend %s: the cluster has no schedulable node yet", cfg.Name)}}
		}
		if msg := fitMessage(cfg, r, nodes); msg != "" {
			errs = append(errs, &CheckError{Step: s.Address, Err: fmt.Errorf("step %s %s", s.Address, msg)})
		}
	}
	return errs
}

// fitMessage says why no node can ever give r ("" when one can).
func fitMessage(cfg *Config, r *weirschema.Resources, nodes []node) string {
	var mem resource.Quantity
	if r.Memory != "" {
		q, err := resource.ParseQuantity(r.Memory)
		if err != nil {
			return "" // Lower says so
		}
		mem = q
	}
	cpu := resource.NewMilliQuantity(int64(r.CPU*1000+0.999), resource.DecimalSI)
	for _, n := range nodes {
		if r.GPUType != "" && r.GPU > 0 && n.labels[cfg.GPUNodeLabel] != r.GPUType {
			continue
		}
		if r.GPU > 0 && n.gpus(cfg.GPUResource) < r.GPU {
			continue
		}
		if a, ok := n.alloc[corev1.ResourceCPU]; r.CPU > 0 && (!ok || a.Cmp(*cpu) < 0) {
			continue
		}
		if a, ok := n.alloc[corev1.ResourceMemory]; r.Memory != "" && (!ok || a.Cmp(mem) < 0) {
			continue
		}
		return ""
	}
	// The largest node for what is asked: GPUs first, then CPU, memory.
	var want []string
	if r.GPU > 0 {
		g := fmt.Sprintf("%d %s", r.GPU, cfg.GPUResource)
		if r.GPUType != "" {
			g += " of type " + r.GPUType
		}
		want = append(want, g)
	}
	if r.CPU > 0 {
		want = append(want, fmt.Sprintf("%s CPU", cpu))
	}
	if r.Memory != "" {
		want = append(want, r.Memory+" of memory")
	}
	best := nodes[0]
	for _, n := range nodes[1:] {
		if larger(cfg, r, n, best) {
			best = n
		}
	}
	has := []string{fmt.Sprintf("%d %s", best.gpus(cfg.GPUResource), cfg.GPUResource)}
	if m := best.labels[cfg.GPUNodeLabel]; m != "" {
		has[0] += " (" + m + ")"
	}
	c, m := best.alloc[corev1.ResourceCPU], best.alloc[corev1.ResourceMemory]
	has = append(has, c.String()+" CPU", m.String()+" of memory")
	return fmt.Sprintf("asks for %s, which no node of the cluster of backend %s can ever give: the largest, %s, has %s",
		strings.Join(want, ", "), cfg.Name, best.name, strings.Join(has, ", "))
}

// larger orders nodes by what r asks most: GPUs (of its type), CPU, memory.
func larger(cfg *Config, r *weirschema.Resources, a, b node) bool {
	if r.GPU > 0 {
		ga, gb := a.gpus(cfg.GPUResource), b.gpus(cfg.GPUResource)
		if r.GPUType != "" {
			if a.labels[cfg.GPUNodeLabel] != r.GPUType {
				ga = 0
			}
			if b.labels[cfg.GPUNodeLabel] != r.GPUType {
				gb = 0
			}
		}
		if ga != gb {
			return ga > gb
		}
	}
	ca, cb := a.alloc[corev1.ResourceCPU], b.alloc[corev1.ResourceCPU]
	if c := ca.Cmp(cb); c != 0 {
		return c > 0
	}
	ma, mb := a.alloc[corev1.ResourceMemory], b.alloc[corev1.ResourceMemory]
	return ma.Cmp(mb) > 0
}

// access is one thing apply does in the namespace.
type access struct{ verb, group, resource, sub string }

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.sub != "" {
		r += "/" + a.sub
	}
	return a.verb + " " + r
}

// Accesses lists what apply does in the namespace, for RBAC's check.
func accesses(cfg *Config, steps []*weirschema.Step) []access {
	as := []access{
		{"create", "batch", "jobs", ""}, {"delete", "batch", "jobs", ""},
		{"list", "batch", "jobs", ""}, {"watch", "batch", "jobs", ""},
		{"list", "", "pods", ""}, {"watch", "", "pods", ""}, {"get", "", "pods", "log"},
		{"create", "", "configmaps", ""}, {"get", "", "configmaps", ""},
		{"create", "", "secrets", ""},
	}
	for _, s := range steps {
		if s.Run.Workers > 1 {
			as = append(as, access{"create", "", "services", ""})
			if cfg.Gang == GangVolcano {
				as = append(as, access{"create", PodGroupGVR.Group, PodGroupGVR.Resource, ""})
			}
			break
		}
	}
	return as
}

func (b *Backend) checkAccess(ctx context.Context, cs kubernetes.Interface, cfg *Config, steps []*weirschema.Step) []error {
	as := accesses(cfg, steps)
	denied := make([]string, len(as))
	var wg sync.WaitGroup
	for i, a := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: cfg.Namespace, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub}},
			}, metav1.CreateOptions{})
			if err != nil || r.Status.Allowed {
				return // a cluster that cannot review leaves it to apply
			}
			denied[i] = a.String()
		}()
	}
	wg.Wait()
	var errs []error
	for _, d := range denied {
		if d != "" {
			errs = append(errs, &CheckError{Err: fmt.Errorf("backend %s: RBAC does not allow %s in namespace %s, which apply needs", cfg.Name, d, cfg.Namespace)})
		}
	}
	return errs
}
