package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"weir.dev/weir/compiler"
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/plugins/host"
	"weir.dev/weir/plugins/kubernetes"
	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// builtins are the backend kinds this weir runs in-process, each a
// constructor of a fresh, unconfigured backend (Configure gives it its
// settings). The same binary serves any of them as a plugin: weir plugin
// serve KIND.
var builtins = map[string]func() backend.Interface{
	"local":  func() backend.Interface { return local.New(0) },
	"docker": func() backend.Interface { return docker.Unconnected(docker.Options{}) },
	// The kubernetes backend reaches its cluster at its first task or
	// plan-time check, never to lower a step.
	"kubernetes": func() backend.Interface { return kubernetes.Unconnected() },
}

// builtinKinds lists the built-in kinds, sorted.
func builtinKinds() []string {
	out := make([]string, 0, len(builtins))
	for k := range builtins {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// outOfProcessEnv, set to "plugin", runs the built-in backends as plugins
// served by this same executable (weir plugin serve KIND) instead of
// in-process: built-ins and externals then go through the same protocol.
const outOfProcessEnv = "WEIR_BUILTIN_BACKENDS"

func builtinsOutOfProcess() bool { return os.Getenv(outOfProcessEnv) == "plugin" }

// session holds the backends opened by one run of the CLI, by project
// folder: a plan's lowering and its apply use the same backends, and the
// plugin processes they started are stopped once, when the command ends.
type session struct {
	mu       sync.Mutex
	ctx      context.Context
	stderr   io.Writer
	projects map[string]*resolver
}

var current = &session{ctx: context.Background(), stderr: io.Discard, projects: map[string]*resolver{}}

// beginSession starts the CLI's session; the function it returns stops
// every plugin process the command started.
func beginSession(ctx context.Context, stderr io.Writer) func() {
	current.mu.Lock()
	current.ctx, current.stderr = ctx, stderr
	current.mu.Unlock()
	return func() {
		current.mu.Lock()
		rs := current.projects
		current.projects = map[string]*resolver{}
		current.mu.Unlock()
		var wg sync.WaitGroup
		for _, r := range rs {
			for _, c := range r.closers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.Close()
				}()
			}
		}
		wg.Wait()
	}
}

// resolverFor returns the session's resolver of a project folder.
func resolverFor(dir string) *resolver {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	current.mu.Lock()
	defer current.mu.Unlock()
	r := current.projects[abs]
	if r == nil {
		r = &resolver{dir: abs, ctx: current.ctx, stderr: current.stderr, byName: map[string]*opened{}}
		current.projects[abs] = r
	}
	return r
}

// resolver turns a project's backend entries into implementations: a
// built-in, or a plugin found on the project's plugin path and checked
// against its weir.lock.
type resolver struct {
	dir    string
	ctx    context.Context
	stderr io.Writer

	mu      sync.Mutex
	byName  map[string]*opened
	closers []io.Closer
	found   []host.Found
	lock    *schema.Lock
}

// opened is a backend opened under a name, or why it could not be.
type opened struct {
	cfg schema.Backend
	b   backend.Interface
	err error
}

// backend returns the backend named name, configured by cfg (nil: the
// implicit local backend), opening it on first use.
func (r *resolver) backend(name string, cfg *schema.Backend) (backend.Interface, error) {
	if cfg == nil {
		cfg = &schema.Backend{Kind: "local"}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.byName[name]; o != nil && sameConfig(&o.cfg, cfg) {
		return o.b, o.err
	}
	b, err := r.open(name, cfg)
	r.byName[name] = &opened{cfg: *cfg, b: b, err: err}
	return b, err
}

func sameConfig(a, b *schema.Backend) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (r *resolver) open(name string, cfg *schema.Backend) (backend.Interface, error) {
	kind := cfg.Kind
	if mk := builtins[kind]; mk != nil {
		if builtinsOutOfProcess() {
			self, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("backend %s: finding weir's own executable to serve %s: %v", name, kind, err)
			}
			opts := host.Options{Kind: kind, Name: name, Path: self, Args: []string{"plugin", "serve", kind}, Settings: cfg}
			if prof := os.Getenv("WEIR_CPUPROFILE"); prof != "" {
				// The plugin's profile goes beside weir's, not over it.
				opts.Env = []string{"WEIR_CPUPROFILE=" + prof + ".plugin-" + name}
			}
			return r.start(opts)
		}
		b := mk()
		if n, ok := b.(interface{ SetName(name, project string) }); ok {
			n.SetName(name, filepath.Base(r.dir))
		}
		if c, ok := b.(backend.Configurer); ok {
			if err := c.Configure(r.ctx, cfg); err != nil {
				return nil, fmt.Errorf("backend %s: %v", name, err)
			}
		}
		return b, nil
	}
	f, ok := r.find(kind)
	if !ok {
		return nil, fmt.Errorf("backend %s is of kind %q, which this weir cannot run: it is not built in, and no plugin %s%s is in %s (available kinds: %s)",
			name, kind, host.Prefix, kind, searchPlaces, strings.Join(r.kinds(), ", "))
	}
	lock, err := r.readLock()
	if err != nil {
		return nil, err
	}
	opts := host.Options{Kind: kind, Name: name, Path: f.Path, Settings: cfg}
	if pin := lock.Plugins[kind]; pin != nil {
		opts.SHA256 = pin.SHA256
		return r.start(opts)
	}
	// First use: pin the executable we are about to start (trust on first
	// use, as weir init -upgrade would), so that a later change is refused.
	sum, err := host.FileSHA256(f.Path)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %v", name, err)
	}
	opts.SHA256 = "sha256:" + sum
	p, err := r.start(opts)
	if err != nil {
		return nil, err
	}
	d := p.(*host.Plugin).Description()
	// Read the lock again: what else wrote it since (image pins) is kept.
	lock, err = schema.ReadLock(r.dir)
	if err != nil {
		return nil, err
	}
	if lock.Plugins == nil {
		lock.Plugins = map[string]*schema.LockedPlugin{}
	}
	lock.Plugins[kind] = &schema.LockedPlugin{SHA256: opts.SHA256, Protocol: d.ProtocolVersion, Version: d.Version}
	r.lock = lock
	if err := schema.WriteLock(r.dir, lock); err != nil {
		return nil, fmt.Errorf("backend plugin %s is not pinned in %s, and the lock cannot be written (%v): run weir init -upgrade where it can be, and commit %s",
			kind, schema.LockFile, err, schema.LockFile)
	}
	fmt.Fprintf(r.stderr, "note: pinned backend plugin %s %s (%s) in %s\n", kind, d.Version, opts.SHA256, schema.LockFile)
	return p, nil
}

// searchPlaces names the plugin search path in messages.
const searchPlaces = ".weir/plugins, $WEIR_PLUGIN_PATH or $PATH"

func (r *resolver) start(opts host.Options) (backend.Interface, error) {
	p, err := host.Open(r.ctx, opts)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, p)
	return p, nil
}

func (r *resolver) find(kind string) (host.Found, bool) {
	if r.found == nil {
		r.found = host.Discover(host.SearchPath(r.dir))
	}
	for _, f := range r.found {
		if f.Kind == kind {
			return f, true
		}
	}
	return host.Found{}, false
}

// kinds lists the kinds available: built-ins and discovered plugins.
func (r *resolver) kinds() []string {
	if r.found == nil {
		r.found = host.Discover(host.SearchPath(r.dir))
	}
	set := map[string]bool{}
	for _, k := range builtinKinds() {
		set[k] = true
	}
	for _, f := range r.found {
		set[f.Kind] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r *resolver) readLock() (*schema.Lock, error) {
	if r.lock == nil {
		l, err := schema.ReadLock(r.dir)
		if err != nil {
			return nil, err
		}
		r.lock = l
	}
	return r.lock, nil
}

// backends holds the backends a plan's steps run on.
type backends struct {
	byName map[string]backend.Interface
}

// openBackends resolves each backend of the plan to an implementation. An
// unknown kind is an error naming the kinds available.
func openBackends(ctx context.Context, dir string, cfgs map[string]*schema.Backend) (*backends, error) {
	r := resolverFor(dir)
	bs := &backends{byName: map[string]backend.Interface{}}
	names := make([]string, 0, len(cfgs))
	for n := range cfgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := r.backend(name, cfgs[name])
		if err != nil {
			return nil, err
		}
		bs.byName[name] = b
	}
	return bs, nil
}

// Close does nothing: the backends live until the command ends (the
// session stops plugin processes then).
func (bs *backends) Close() {}

// lowerIn returns the plan's lowering for a project: each backend's steps
// go to its Lower, all at once to a backend that can (a plugin: one round
// trip, not one per step).
func lowerIn(dir string) compiler.Lowerer {
	return func(ctx context.Context, name string, cfg *schema.Backend, steps []*schema.Step) ([]json.RawMessage, []error, error) {
		r := resolverFor(dir)
		b, err := r.backend(name, cfg)
		if err != nil {
			return nil, nil, err
		}
		tasks, errs := make([]json.RawMessage, len(steps)), make([]error, len(steps))
		if sl, ok := b.(backend.StepsLowerer); ok {
			if tasks, errs, err = sl.LowerSteps(ctx, steps); err != nil {
				return nil, nil, fmt.Errorf("backend %s cannot lower its steps: %v", name, err)
			}
		} else {
			for i, s := range steps {
				tasks[i], errs[i] = b.Lower(ctx, s)
			}
		}
		for i, err := range errs {
			switch {
			case err == nil:
			case errors.Is(err, backend.ErrUnsupported):
				errs[i] = fmt.Errorf("backend %s cannot lower steps: %v", name, err)
			default:
				errs[i] = fmt.Errorf("backend %s cannot run this step: %v", name, err)
			}
		}
		return tasks, errs, nil
	}
}

// stepChecker is implemented by backends that can check a plan's steps
// against where they will run, before apply (the kubernetes backend: its
// namespace, queue, nodes and RBAC). An error may say which step it is
// about (Address) and that it is only a warning (IsWarning).
type stepChecker interface {
	Check(ctx context.Context, steps []*schema.Step) []error
}

// checkIn returns the plan's checks for a project: each backend that can
// check its steps does. A backend served as a plugin cannot (the protocol
// has no such call).
func checkIn(dir string) func(ctx context.Context, name string, cfg *schema.Backend, steps []*schema.Step) diag.Diagnostics {
	return func(ctx context.Context, name string, cfg *schema.Backend, steps []*schema.Step) diag.Diagnostics {
		b, err := resolverFor(dir).backend(name, cfg)
		if err != nil {
			return nil // the lower pass said so
		}
		c, ok := b.(stepChecker)
		if !ok {
			return nil
		}
		var ds diag.Diagnostics
		for _, err := range c.Check(ctx, steps) {
			d := diag.Diagnostic{Severity: diag.Error, Code: "backend-check", Summary: err.Error()}
			var a interface{ Address() string }
			if errors.As(err, &a) {
				d.Address = a.Address()
			}
			var w interface{ IsWarning() bool }
			if errors.As(err, &w) && w.IsWarning() {
				d.Severity = diag.Warning
			}
			ds = append(ds, d)
		}
		return ds
	}
}

// prepare tells each backend that wants to know the plan's steps it will
// run (what a task does not carry: a distributed step's workers, its
// timeout): a plan file's apply lowers nothing.
func (bs *backends) prepare(steps []*schema.Step) {
	by := map[string][]*schema.Step{}
	for _, s := range steps {
		if s.Run != nil {
			by[s.Backend] = append(by[s.Backend], s)
		}
	}
	for name, ss := range by {
		if p, ok := bs.byName[name].(interface{ Prepare([]*schema.Step) }); ok {
			p.Prepare(ss)
		}
	}
}
