package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"k8s.io/client-go/dynamic"
	clientset "k8s.io/client-go/kubernetes"

	"weir.dev/weir/schema"
)

// Clients are what the serving functions reach the cluster through: the
// typed clientset for the built-in kinds and the dynamic client for
// Gateway API's HTTPRoutes (nil: never used, as if Gateway API were not
// installed).
type Clients struct {
	Kube    clientset.Interface
	Dynamic dynamic.Interface
}

// HTTPRouteGVR is the resource of Gateway API's HTTPRoutes.
var HTTPRouteGVR = k8sschema.GroupVersionResource{Group: GatewayGroup, Version: GatewayVersion, Resource: "httproutes"}

// Apply applies o by server-side apply, as field manager "weir" taking over
// fields others set (Force), and returns the object as the server holds
// it. With dryRun the server computes the result and stores nothing.
func Apply(ctx context.Context, c Clients, o Object, dryRun bool) (map[string]any, error) {
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var out runtime.Object
	var err error
	switch cfg := o.Config.(type) {
	case *appsv1ac.DeploymentApplyConfiguration:
		out, err = c.Kube.AppsV1().Deployments(o.Namespace).Apply(ctx, cfg, opts)
	case *corev1ac.ServiceApplyConfiguration:
		out, err = c.Kube.CoreV1().Services(o.Namespace).Apply(ctx, cfg, opts)
	case *corev1ac.SecretApplyConfiguration:
		out, err = c.Kube.CoreV1().Secrets(o.Namespace).Apply(ctx, cfg, opts)
	case *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration:
		out, err = c.Kube.AutoscalingV2().HorizontalPodAutoscalers(o.Namespace).Apply(ctx, cfg, opts)
	case *policyv1ac.PodDisruptionBudgetApplyConfiguration:
		out, err = c.Kube.PolicyV1().PodDisruptionBudgets(o.Namespace).Apply(ctx, cfg, opts)
	case *unstructured.Unstructured:
		var r dynamic.ResourceInterface
		if r, err = c.resource(o); err == nil {
			out, err = r.Apply(ctx, o.Name, cfg, opts)
		}
	default:
		return nil, fmt.Errorf("%s: no way to apply a %T", o.Ref(), o.Config)
	}
	if err != nil {
		return nil, fmt.Errorf("applying %s: %w", o.Ref(), err)
	}
	return toMap(out)
}

// Get returns the live object o names, or nil when there is none.
func Get(ctx context.Context, c Clients, o Object) (map[string]any, error) {
	var out runtime.Object
	var err error
	get := metav1.GetOptions{}
	switch o.Config.(type) {
	case *appsv1ac.DeploymentApplyConfiguration:
		out, err = c.Kube.AppsV1().Deployments(o.Namespace).Get(ctx, o.Name, get)
	case *corev1ac.ServiceApplyConfiguration:
		out, err = c.Kube.CoreV1().Services(o.Namespace).Get(ctx, o.Name, get)
	case *corev1ac.SecretApplyConfiguration:
		out, err = c.Kube.CoreV1().Secrets(o.Namespace).Get(ctx, o.Name, get)
	case *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration:
		out, err = c.Kube.AutoscalingV2().HorizontalPodAutoscalers(o.Namespace).Get(ctx, o.Name, get)
	case *policyv1ac.PodDisruptionBudgetApplyConfiguration:
		out, err = c.Kube.PolicyV1().PodDisruptionBudgets(o.Namespace).Get(ctx, o.Name, get)
	case *unstructured.Unstructured:
		var r dynamic.ResourceInterface
		if r, err = c.resource(o); err == nil {
			out, err = r.Get(ctx, o.Name, get)
		}
	default:
		return nil, fmt.Errorf("%s: no way to read a %T", o.Ref(), o.Config)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.Ref(), err)
	}
	return toMap(out)
}

func (c Clients) resource(o Object) (dynamic.ResourceInterface, error) {
	if o.Kind != "HTTPRoute" {
		return nil, fmt.Errorf("%s: unknown kind", o.Ref())
	}
	if c.Dynamic == nil {
		return nil, fmt.Errorf("%s: no dynamic client to reach Gateway API with", o.Ref())
	}
	return c.Dynamic.Resource(HTTPRouteGVR).Namespace(o.Namespace), nil
}

func toMap(o runtime.Object) (map[string]any, error) {
	if u, ok := o.(*unstructured.Unstructured); ok {
		return u.Object, nil
	}
	return runtime.DefaultUnstructuredConverter.ToUnstructured(o)
}

// Change is what applying one object would do to the cluster.
type Change struct {
	// Object names it ("apps/v1 Deployment ns/name").
	Object string `json:"object"`
	// Action is create, update (Fields say what changes) or noop.
	Action schema.Action `json:"action"`
	Fields []FieldChange `json:"fields,omitempty"`
}

// FieldChange is one field an apply changes: its path ("spec.replicas",
// "spec.template.spec.containers[0].image") and its values as JSON before
// and after ("" when absent).
type FieldChange struct {
	Path   string `json:"path"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// Diff tells, for each desired object, what applying it would change in
// the cluster: it reads the live object and asks the server for the result
// of applying (a server-side dry-run apply, with weir's field manager and
// Force, as the real apply) and compares the two. What someone changed by
// hand in a field weir sets (a Deployment scaled with kubectl, say) shows
// as an update back to the spec: drift. Fields weir does not set, status
// and bookkeeping (managedFields, resourceVersion, generation, timestamps)
// are left out. The result is in the order of objs.
func Diff(ctx context.Context, c Clients, objs []Object) ([]Change, error) {
	out := make([]Change, 0, len(objs))
	for _, o := range objs {
		live, err := Get(ctx, c, o)
		if err != nil {
			return nil, err
		}
		if live == nil {
			out = append(out, Change{Object: o.Ref(), Action: schema.ActionCreate})
			continue
		}
		after, err := Apply(ctx, c, o, true)
		if err != nil {
			return nil, err
		}
		var fields []FieldChange
		compare("", comparable(live), comparable(after), &fields)
		ch := Change{Object: o.Ref(), Action: schema.ActionNoop, Fields: fields}
		if len(fields) > 0 {
			ch.Action = schema.ActionUpdate
		}
		out = append(out, ch)
	}
	return out, nil
}

// comparable is a copy of an object without status and the metadata the
// server keeps for itself.
func comparable(o map[string]any) map[string]any {
	c := make(map[string]any, len(o))
	for k, v := range o {
		if k != "status" {
			c[k] = v
		}
	}
	if m, ok := o["metadata"].(map[string]any); ok {
		mc := make(map[string]any, len(m))
		for k, v := range m {
			switch k {
			case "managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds":
			default:
				mc[k] = v
			}
		}
		c["metadata"] = mc
	}
	return c
}

// compare appends the differences between a and b below path.
func compare(path string, a, b any, out *[]FieldChange) {
	if reflect.DeepEqual(a, b) {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			compare(joinPath(path, k), am[k], bm[k], out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			compare(path+"["+strconv.Itoa(i)+"]", al[i], bl[i], out)
		}
		return
	}
	*out = append(*out, FieldChange{Path: path, Before: jsonText(a), After: jsonText(b)})
}

func joinPath(path, key string) string {
	if strings.ContainsAny(key, "./[]") {
		key = "[" + strconv.Quote(key) + "]"
		return path + key
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func jsonText(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// String renders the change as the plan shows it: the action's symbol and
// the object, then one line per changed field.
func (c Change) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", symbol(c.Action), c.Object)
	for _, f := range c.Fields {
		before, after := f.Before, f.After
		if before == "" {
			before = "(none)"
		}
		if after == "" {
			after = "(none)"
		}
		fmt.Fprintf(&b, "\n    %s: %s -> %s", f.Path, before, after)
	}
	return b.String()
}

func symbol(a schema.Action) string {
	if a == schema.ActionNoop {
		return "="
	}
	return a.Symbol()
}

// isNotFound reports whether err says a resource or group is not served.
func isNotFound(err error) bool {
	var se apierrors.APIStatus
	return apierrors.IsNotFound(err) || errors.As(err, &se) && se.Status().Code == 404
}
