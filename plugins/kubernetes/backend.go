package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"weir.dev/weir/runtime/backend"
	weirschema "weir.dev/weir/schema"
)

// Version of the kubernetes backend.
const Version = "0.1.0"

// Backend runs each step attempt as a batch/v1 Job of a Kubernetes
// cluster and follows it through shared informers.
type Backend struct {
	mu  sync.Mutex
	cfg *Config
	// client, dyn and rest are the cluster's clients, made at first use
	// (or given by NewWithClients); connErr is why they could not be.
	client kubernetes.Interface
	dyn    dynamic.Interface
	rest   *rest.Config
	host   string
	// w follows Jobs and pods (see watch.go), started at the first task.
	w *watcher
	// spec is the backends entry Configure was given (its serving
	// settings); srv the serving half, made at first use.
	spec *weirschema.Backend
	srv  *Serving
	// runs are the runs' parent ConfigMaps, by run ID.
	runs map[string]*runParent
	// steps are what Lower saw of each step (workers, timeout, kind),
	// by address: a task carries its command, not these.
	steps map[string]stepInfo
	// sleep is time.Sleep, replaced in tests.
	now func() time.Time
}

var (
	_ backend.Interface  = (*Backend)(nil)
	_ backend.Configurer = (*Backend)(nil)
)

type stepInfo struct {
	kind, element string
	workers       int
	timeout       string
	code          bool
}

// Unconnected returns a backend with default settings that reaches its
// cluster at first use, the way weir builds its built-in backends
// (Configure gives it its settings).
func Unconnected() *Backend {
	cfg, _ := ParseConfig("kubernetes", nil)
	return &Backend{cfg: cfg, runs: map[string]*runParent{}, steps: map[string]stepInfo{}, now: time.Now}
}

// New returns a backend of the given settings, connected to its cluster
// (which must answer within 10s).
func New(ctx context.Context, cfg *Config) (*Backend, error) {
	b := Unconnected()
	b.cfg = cfg
	if _, err := b.clients(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// NewWithClients returns a backend of the given settings talking through
// the given clients (client-go's fake clientset in tests); dyn may be nil
// when no Volcano PodGroup or Kueue queue is involved.
func NewWithClients(cfg *Config, client kubernetes.Interface, dyn dynamic.Interface) *Backend {
	b := Unconnected()
	b.cfg, b.client, b.dyn, b.host = cfg, client, dyn, "(given client)"
	return b
}

// Configure takes the spec's settings (see ParseConfig). It does not reach
// the cluster: planning, which lowers steps, needs none.
func (b *Backend) Configure(ctx context.Context, s *weirschema.Backend) error {
	name := "kubernetes"
	if s != nil && s.Kind != "" {
		name = s.Kind
	}
	b.mu.Lock()
	if b.cfg != nil && b.cfg.Name != "" && b.cfg.Name != "kubernetes" {
		name = b.cfg.Name
	}
	b.mu.Unlock()
	cfg, err := ParseConfig(name, s)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg != nil && cfg.Project == "" {
		cfg.Project = b.cfg.Project
	}
	b.cfg, b.spec, b.srv = cfg, s, nil
	if b.w == nil {
		b.client, b.dyn, b.rest = nil, nil, nil
	}
	return nil
}

// SetName sets the backend's name in the spec, for messages; SetProject
// the project's name, for the part-of label.
func (b *Backend) SetName(name, project string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := *b.cfg
	c.Name = name
	if c.Project == "" {
		c.Project = project
	}
	b.cfg = &c
}

func (b *Backend) config() *Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// remember keeps what a task will not say of a step: its workers, timeout
// and kind.
func (b *Backend) remember(s *weirschema.Step) {
	if s.Run == nil {
		return
	}
	b.mu.Lock()
	b.steps[s.Address] = stepInfo{kind: s.Kind, element: s.Element, workers: s.Run.Workers, timeout: s.Run.Timeout, code: s.Run.Code != ""}
	b.mu.Unlock()
}

// stepOf is what the backend knows of a task's step: what the task says
// (its kind, element, workers and timeout), else what Lower, Check or
// Prepare told of it (tasks from an older weir say none of these).
func (b *Backend) stepOf(t *backend.Task) stepInfo {
	b.mu.Lock()
	info := b.steps[t.Step]
	b.mu.Unlock()
	if t.Kind != "" {
		info.kind = t.Kind
	}
	if t.Element != "" {
		info.element = t.Element
	}
	if t.Workers > 0 {
		info.workers = t.Workers
	}
	if t.Timeout > 0 {
		info.timeout = t.Timeout.String()
	}
	return info
}

// Prepare tells the backend the steps a plan will submit to it, for what
// a task does not carry (distributed workers, the timeout, the kind). The
// CLI calls it before apply; Lower does it too.
func (b *Backend) Prepare(steps []*weirschema.Step) {
	for _, s := range steps {
		b.remember(s)
	}
}

// ClusterError says the cluster cannot be reached, or its configuration
// not read.
type ClusterError struct {
	Backend string
	Where   string // the server, or the kubeconfig
	Err     error
	// NoConfig says no kubeconfig was found at all (nor an in-cluster
	// configuration).
	NoConfig bool
}

func (e *ClusterError) Error() string {
	return fmt.Sprintf("backend %s: cannot reach the Kubernetes cluster at %s: %v", e.Backend, e.Where, e.Err)
}

func (e *ClusterError) Unwrap() error { return e.Err }

// RESTConfig reads the cluster's client configuration from the settings:
// the kubeconfig (Kubeconfig, else KUBECONFIG, else ~/.kube/config, else
// the in-cluster one) and its context, with the settings' QPS and Burst.
func RESTConfig(cfg *Config) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	where := "the default kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster)"
	if cfg.Kubeconfig != "" {
		rules.ExplicitPath = expandHome(cfg.Kubeconfig)
		where = cfg.Kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
	rc, err := cc.ClientConfig()
	if err != nil {
		msg, empty := err.Error(), clientcmd.IsEmptyConfig(err)
		if empty {
			msg = "no kubeconfig found; set kubeconfig in the backend, or KUBECONFIG"
		} else if cfg.Context != "" && strings.Contains(msg, "context") {
			msg = fmt.Sprintf("context %q is not in %s: %v", cfg.Context, where, err)
		}
		return nil, &ClusterError{Backend: cfg.Name, Where: where, Err: errors.New(msg), NoConfig: empty}
	}
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	rc.UserAgent = "weir/" + Version
	return rc, nil
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return h + p[1:]
		}
	}
	return p
}

// clients returns the cluster's clients, connecting at first use: the
// server must answer /version within 10s.
func (b *Backend) clients(ctx context.Context) (kubernetes.Interface, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil {
		return b.client, nil
	}
	rc, err := RESTConfig(b.cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, &ClusterError{Backend: b.cfg.Name, Where: rc.Host, Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/version").Do(pctx).Raw(); err != nil {
		return nil, &ClusterError{Backend: b.cfg.Name, Where: rc.Host, Err: reachErr(err, pctx)}
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, &ClusterError{Backend: b.cfg.Name, Where: rc.Host, Err: err}
	}
	b.client, b.dyn, b.rest, b.host = cs, dyn, rc, rc.Host
	return cs, nil
}

// reachErr words why a server did not answer.
func reachErr(err error, ctx context.Context) error {
	var ue *url.Error
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("no answer within 10s (%v)", err)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no answer (%v)", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the credentials of the kubeconfig were refused (%v)", err)
	case errors.As(err, &ue):
		return ue.Err
	}
	return err
}

// apiErr words an API error for a step: forbidden by RBAC (the verb and
// resource named), a missing namespace, the cluster gone.
func (b *Backend) apiErr(step, verb string, gr schema.GroupResource, err error) error {
	cfg := b.config()
	res := gr.String()
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("step %s: backend %s is not allowed to %s %s in namespace %s (RBAC): %v", step, cfg.Name, verb, res, cfg.Namespace, statusMessage(err))
	case apierrors.IsNotFound(err) && isNamespaceNotFound(err, cfg.Namespace):
		return fmt.Errorf("step %s: namespace %s does not exist in the cluster of backend %s (create it, or set namespace in the backend)", step, cfg.Namespace, cfg.Name)
	case isConnErr(err):
		return &ClusterError{Backend: cfg.Name, Where: b.host, Err: fmt.Errorf("step %s: %s %s: %v", step, verb, res, err)}
	}
	return fmt.Errorf("step %s: backend %s: %s %s: %v", step, cfg.Name, verb, res, err)
}

func statusMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status().Message
	}
	return err.Error()
}

func isNamespaceNotFound(err error, ns string) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	d := se.Status().Details
	return d != nil && d.Kind == "namespaces" && d.Name == ns
}

func isConnErr(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}

// Describe tells what the backend offers: GPUs are the cluster's
// allocatable ones of the backend's GPU resource (0 when nodes cannot be
// listed).
func (b *Backend) Describe(ctx context.Context) (*backend.Description, error) {
	cfg := b.config()
	d := &backend.Description{Name: "kubernetes", Version: Version, ProtocolVersion: backend.ProtocolVersion, MaxParallelism: 1000, Services: true}
	cs, err := b.clients(ctx)
	if err != nil {
		return nil, err
	}
	if nodes, err := listNodes(ctx, cs); err == nil {
		for _, n := range nodes {
			d.GPUs += n.gpus(cfg.GPUResource)
		}
	}
	return d, nil
}

// Close stops the informers. Jobs still running go on; their run's parent
// ConfigMap owns them.
func (b *Backend) Close() error {
	b.mu.Lock()
	w := b.w
	b.mu.Unlock()
	if w != nil {
		w.stop()
	}
	return nil
}
