package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Version of the docker backend.
const Version = "1.0.0"

// Options configure a docker backend.
type Options struct {
	// Host is the engine's address (unix:///var/run/docker.sock,
	// tcp://HOST:2375); "" means DOCKER_HOST, or the default socket.
	// Steps' folders are bind-mounted, so the engine must run on this
	// machine.
	Host string
	// Project names the project in labels and derived images' names;
	// ProjectDir is its folder, labelled too so that cleaning up never
	// touches another checkout's containers.
	Project    string
	ProjectDir string
	// Registry, when set, is where derived images are pushed (and the
	// engine pulls them from); otherwise they are loaded into the engine
	// as weir.local/PROJECT/STEP:KEY.
	Registry string
	// GPUs is the number of GPUs the engine's machine offers.
	GPUs int
	// Images are weir.lock's pins: a step's image runs by digest when pinned.
	Images Lock
	// Keychain finds registry credentials (default authn.DefaultKeychain,
	// the Docker config's); Transport carries registry requests.
	Keychain  authn.Keychain
	Transport http.RoundTripper
}

// Backend runs each task as a container of a Docker Engine.
type Backend struct {
	o   Options
	cli *client.Client

	mu    sync.Mutex
	tasks map[string]*task
	// images are references known present in the engine; bases the
	// images read from it, for deriving code images.
	images map[string]*imageEntry
	bases  map[string]v1.Image
	// cleaned are the runs whose first task cleaned up after earlier ones;
	// locks the pins of weir.lock by project folder.
	cleaned map[string]bool
	locks   map[string]Lock
}

var _ backend.Interface = (*Backend)(nil)

type imageEntry struct {
	once sync.Once
	ref  string // what to run, for a pinned image
	err  error
}

type task struct {
	id        string
	memory    string
	start     time.Time
	lines     chan string
	done      chan struct{}
	result    backend.Result
	cancelled atomic.Bool
	stopLogs  context.CancelFunc
}

// EngineError says the engine cannot be reached.
type EngineError struct {
	Host string
	Err  error
}

func (e *EngineError) Error() string {
	how := "DOCKER_HOST is not set, so weir uses the default socket"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		how = "DOCKER_HOST is " + h
	}
	return fmt.Sprintf("cannot reach the Docker engine at %s (%s): %v; start the engine (as root: dockerd &, or systemctl start docker) or point DOCKER_HOST at a running one",
		e.Host, how, e.Err)
}

func (e *EngineError) Unwrap() error { return e.Err }

// New connects to the engine and checks that it answers (within 10s).
func New(ctx context.Context, o Options) (*Backend, error) {
	b := Unconnected(o)
	cli, err := connect(ctx, o.Host)
	if err != nil {
		return nil, err
	}
	b.cli = cli
	return b, nil
}

// Unconnected returns a backend that connects to the engine at its first
// task, the way weir builds its built-in backends (Configure then gives it
// its settings).
func Unconnected(o Options) *Backend {
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	return &Backend{o: o, tasks: map[string]*task{}, images: map[string]*imageEntry{}, bases: map[string]v1.Image{},
		cleaned: map[string]bool{}, locks: map[string]Lock{}}
}

func connect(ctx context.Context, host string) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, &EngineError{Host: host, Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, &EngineError{Host: cli.DaemonHost(), Err: err}
	}
	return cli, nil
}

// Configure takes the spec's settings: the engine's address (host), the
// project's registry and the machine's GPUs. It is called before any task;
// the engine is reached at the first task (or Describe), so that planning,
// which only lowers steps, needs no engine.
func (b *Backend) Configure(ctx context.Context, cfg *schema.Backend) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cfg.Host != b.o.Host && b.cli != nil {
		b.cli.Close()
		b.cli = nil
	}
	b.o.Host, b.o.Registry, b.o.GPUs = cfg.Host, cfg.Registry, cfg.GPUs
	return nil
}

// engine returns the connection to the engine, made on first use.
func (b *Backend) engine(ctx context.Context) (*client.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cli == nil {
		cli, err := connect(ctx, b.o.Host)
		if err != nil {
			return nil, err
		}
		b.cli = cli
	}
	return b.cli, nil
}

var _ backend.Configurer = (*Backend)(nil)

// Lower turns a step into the container spec shown in the plan.
func (b *Backend) Lower(ctx context.Context, s *schema.Step) (json.RawMessage, error) {
	return Lower(s)
}

// errNoServices answers Deploy, SetTraffic and Undeploy: this backend runs
// steps only, for now.
var errNoServices = fmt.Errorf("the docker backend runs steps only: %w", backend.ErrNoServices)

// Deploy returns an error wrapping backend.ErrNoServices.
func (b *Backend) Deploy(context.Context, *backend.Service) (*backend.Deployment, error) {
	return nil, errNoServices
}

// SetTraffic returns an error wrapping backend.ErrNoServices.
func (b *Backend) SetTraffic(context.Context, string, []backend.Split) (*backend.Deployment, error) {
	return nil, errNoServices
}

// Undeploy returns an error wrapping backend.ErrNoServices.
func (b *Backend) Undeploy(context.Context, string, time.Duration) error { return errNoServices }

// Client is the engine's API client, for the daemon package of
// go-containerregistry (resolving and loading images); nil before the
// backend has reached the engine.
func (b *Backend) Client() *client.Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cli
}

// Describe tells what the engine offers.
func (b *Backend) Describe(ctx context.Context) (*backend.Description, error) {
	d := &backend.Description{Name: "docker", Version: Version, ProtocolVersion: backend.ProtocolVersion,
		GPUs: b.o.GPUs, MaxParallelism: runtime.NumCPU()}
	cli, err := b.engine(ctx)
	if err != nil {
		return nil, err
	}
	if info, err := cli.Info(ctx, client.InfoOptions{}); err == nil && info.Info.NCPU > 0 {
		d.MaxParallelism = info.Info.NCPU
	}
	return d, nil
}

// Submit prepares the task's image (pinned, pulled if missing, with the
// code folder as a layer of its own when the step has one), creates its
// container under the step contract and starts it.
func (b *Backend) Submit(ctx context.Context, t *backend.Task) (string, error) {
	if _, err := b.engine(ctx); err != nil {
		return "", err
	}
	o, err := b.project(ctx, t)
	if err != nil {
		return "", err
	}
	ref, err := b.image(ctx, t, o)
	if err != nil {
		return "", err
	}
	sp, err := containerSpec(t, ref, o)
	if err != nil {
		return "", err
	}
	for _, d := range []string{"in", "out", "tmp"} {
		// Mounted folders must exist, even those the executor left unmade.
		if err := os.MkdirAll(filepath.Join(t.WorkDir, d), 0o755); err != nil {
			return "", err
		}
	}
	if p := t.Env["WEIR_METRICS"]; p != "" {
		// A file is bind-mounted only if it exists: the step appends to it.
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return "", fmt.Errorf("preparing the metrics file: %w", err)
		}
		f.Close()
	}
	logf, err := os.OpenFile(t.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening log: %w", err)
	}
	created, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: sp.Config, HostConfig: sp.Host})
	if err != nil {
		logf.Close()
		return "", b.engineErr("creating the container", err)
	}
	id := created.ID
	if _, err := b.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		logf.Close()
		b.remove(id)
		return "", b.engineErr("starting the container", err)
	}
	tk := &task{id: id, start: time.Now(), lines: make(chan string, 256), done: make(chan struct{})}
	if t.Resources != nil {
		tk.memory = t.Resources.Memory
	}
	logCtx, stopLogs := context.WithCancel(context.WithoutCancel(ctx))
	tk.stopLogs = stopLogs
	logsDone := make(chan struct{})
	go b.follow(logCtx, tk, logf, logsDone)
	go b.wait(tk, logsDone)
	b.mu.Lock()
	b.tasks[id] = tk
	b.mu.Unlock()
	return id, nil
}

// engineErr words an API error, saying so when the engine is gone.
func (b *Backend) engineErr(doing string, err error) error {
	if client.IsErrConnectionFailed(err) {
		return &EngineError{Host: b.cli.DaemonHost(), Err: err}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// follow copies the container's output, demultiplexed, to the log file and
// the watcher, line by line, until the container's streams close.
func (b *Backend) follow(ctx context.Context, tk *task, logf *os.File, done chan struct{}) {
	defer close(done)
	defer close(tk.lines)
	defer logf.Close()
	rc, err := b.cli.ContainerLogs(ctx, tk.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		fmt.Fprintf(logf, "weir: reading the container's output: %v\n", err)
		return
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		logf.WriteString(line + "\n")
		select {
		case tk.lines <- line:
		default: // nobody is watching fast enough: the log file has it
		}
	}
	io.Copy(logf, pr) // an over-long line
	pr.Close()
}

// wait collects the container's end, then removes it.
func (b *Backend) wait(tk *task, logsDone chan struct{}) {
	ctx := context.Background()
	res := backend.Result{State: backend.StateSucceeded}
	wr := b.cli.ContainerWait(ctx, tk.id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var lost error
	select {
	case r := <-wr.Result:
		res.ExitCode = int(r.StatusCode)
		if r.Error != nil && r.Error.Message != "" {
			res.Message = r.Error.Message
		}
	case err := <-wr.Error:
		lost = err
	}
	res.Duration = time.Since(tk.start)
	switch {
	case lost != nil:
		res.State, res.ExitCode = backend.StateFailed, -1
		res.Message = "lost the Docker engine while the step ran: " + lost.Error()
		tk.stopLogs()
	default:
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		in, err := b.cli.ContainerInspect(ictx, tk.id, client.ContainerInspectOptions{})
		cancel()
		oom := err == nil && in.Container.State != nil && in.Container.State.OOMKilled
		switch {
		case oom:
			res.State = backend.StateFailed
			res.Message = "killed: out of memory"
			if tk.memory != "" {
				res.Message += " (the memory limit is " + tk.memory + ")"
			}
		case res.ExitCode != 0:
			res.State = backend.StateFailed
			if res.ExitCode > 128 && res.ExitCode < 160 {
				res.Message = fmt.Sprintf("killed by signal %d (exit code %d)", res.ExitCode-128, res.ExitCode)
			} else if res.Message == "" {
				res.Message = fmt.Sprintf("exited with code %d", res.ExitCode)
			}
		}
	}
	if tk.cancelled.Load() {
		res.State, res.Message = backend.StateCancelled, "cancelled"
	}
	// The output has ended with the container; give a lost stream a bound.
	select {
	case <-logsDone:
	case <-time.After(10 * time.Second):
		tk.stopLogs()
		<-logsDone
	}
	tk.stopLogs()
	b.remove(tk.id)
	tk.result = res
	close(tk.done)
}

// remove deletes a container, killing it if it still runs. An engine
// that does not answer within 10s leaves it for the next apply's cleanup.
func (b *Backend) remove(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
}

func (b *Backend) get(id string) (*task, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tk, ok := b.tasks[id]
	return tk, ok
}

// Watch streams the container's output lines to fn until it ends.
func (b *Backend) Watch(ctx context.Context, id string, fn func(backend.Event)) (*backend.Result, error) {
	tk, ok := b.get(id)
	if !ok {
		return nil, fmt.Errorf("task %s: %w", id, backend.ErrNotFound)
	}
	if fn != nil {
		fn(backend.Event{State: backend.StateRunning})
	}
	for lines := tk.lines; lines != nil; {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
			} else if fn != nil {
				fn(backend.Event{Line: l})
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select {
	case <-tk.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b.mu.Lock()
	delete(b.tasks, id)
	b.mu.Unlock()
	r := tk.result
	if fn != nil {
		fn(backend.Event{State: r.State, Message: r.Message})
	}
	return &r, nil
}

// Cancel stops the container (its stop signal, then SIGKILL after the
// grace period, rounded up to whole seconds as the engine counts them),
// kills it if stopping failed, and returns once it has ended.
func (b *Backend) Cancel(ctx context.Context, id string, grace time.Duration) error {
	tk, ok := b.get(id)
	if !ok {
		return nil // already ended and collected
	}
	tk.cancelled.Store(true)
	secs := int(math.Ceil(grace.Seconds()))
	if _, err := b.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		b.cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"})
	}
	select {
	case <-tk.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close removes the containers of tasks still running and closes the
// connection to the engine.
func (b *Backend) Close() error {
	b.mu.Lock()
	var ids []string
	for id := range b.tasks {
		ids = append(ids, id)
	}
	cli := b.cli
	b.mu.Unlock()
	if cli == nil {
		return nil
	}
	for _, id := range ids {
		b.remove(id)
	}
	return cli.Close()
}

// Cleanup removes the containers of this project (of its folder, when
// Options.ProjectDir is set) that no task of this backend owns: those left by a weir that was killed. Call it when a run
// starts, under the state's lock (no other apply of the project runs). It
// returns how many it removed.
func (b *Backend) Cleanup(ctx context.Context) (int, error) {
	if _, err := b.engine(ctx); err != nil {
		return 0, err
	}
	return b.cleanup(ctx, b.o.Project, b.o.ProjectDir, "")
}

// cleanup removes the project's containers but those of run keep and of
// tasks this backend follows.
func (b *Backend) cleanup(ctx context.Context, project, dir, keep string) (int, error) {
	// The folder names the project better than its name, which may change.
	f := client.Filters{}.Add("label", LabelProject+"="+project)
	if dir != "" {
		f = client.Filters{}.Add("label", LabelDir+"="+dir)
	}
	list, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return 0, b.engineErr("listing containers", err)
	}
	n := 0
	for _, c := range list.Items {
		if _, ours := b.get(c.ID); ours || (keep != "" && c.Labels[LabelRun] == keep) {
			continue
		}
		if _, err := b.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return n, fmt.Errorf("removing container %s of run %s: %w", c.ID[:12], c.Labels[LabelRun], err)
		}
		n++
	}
	return n, nil
}

// project returns the options a task runs under: the project folder, when
// not configured, is the one holding the task's work folder
// (PROJECT/.weir/runs/RUN/STEP, the executor's layout), the project's
// name its base name, and the pins, when not given, those of the
// project's weir.lock. The first task of a run removes the containers that
// earlier runs of the project left behind (a killed weir's): no other
// apply of the project runs meanwhile, the state's lock sees to that.
func (b *Backend) project(ctx context.Context, t *backend.Task) (*Options, error) {
	o := b.o
	if o.ProjectDir == "" {
		if i := strings.Index(t.WorkDir, string(filepath.Separator)+filepath.Join(".weir", "runs")+string(filepath.Separator)); i > 0 {
			o.ProjectDir = t.WorkDir[:i]
		}
	}
	if o.Project == "" && o.ProjectDir != "" {
		o.Project = filepath.Base(o.ProjectDir)
	}
	if o.ProjectDir == "" {
		return &o, nil
	}
	b.mu.Lock()
	pins, read := b.locks[o.ProjectDir]
	b.mu.Unlock()
	if o.Images == nil && !read {
		l, err := schema.ReadLock(o.ProjectDir)
		if err != nil {
			return nil, err
		}
		pins = FromLock(l)
		b.mu.Lock()
		b.locks[o.ProjectDir] = pins
		b.mu.Unlock()
	}
	if o.Images == nil {
		o.Images = pins
	}
	if t.RunID == "" {
		return &o, nil
	}
	b.mu.Lock()
	first := !b.cleaned[t.RunID]
	b.cleaned[t.RunID] = true
	b.mu.Unlock()
	if first {
		if n, err := b.cleanup(ctx, o.Project, o.ProjectDir, t.RunID); err == nil && n > 0 && t.LogPath != "" {
			if f, err := os.OpenFile(t.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
				fmt.Fprintf(f, "weir: removed %d container(s) that an earlier run of this project left behind\n", n)
				f.Close()
			}
		}
	}
	return &o, nil
}

// image returns the reference the task's container runs: its image,
// pinned when the lock pins it, present in the engine, and derived with
// the code folder when the step has one.
func (b *Backend) image(ctx context.Context, t *backend.Task, o *Options) (string, error) {
	if t.Image == "" {
		return "", errors.New("the docker backend runs steps in images, and this step names none (run.image)")
	}
	ref := t.Image
	if p, ok := o.Images[t.Image]; ok && p.Digest != "" {
		pinned, err := b.ensurePinned(ctx, p)
		if err != nil {
			return "", err
		}
		ref = pinned
	} else if err := b.ensure(ctx, ref); err != nil {
		return "", err
	}
	if t.Dir == "" || filepath.Clean(t.Dir) == filepath.Clean(t.WorkDir) {
		return ref, nil
	}
	if rel, err := filepath.Rel(t.WorkDir, t.Dir); err != nil || rel != "code" {
		return "", fmt.Errorf("the step's folder %s is not its work folder's code/", t.Dir)
	}
	base, err := b.base(ctx, ref)
	if err != nil {
		return "", err
	}
	img, err := Derive(base, t.Dir)
	if err != nil {
		return "", fmt.Errorf("packaging the code folder: %w", err)
	}
	tag, err := DerivedTag(o.Registry, o.Project, t.Step, img)
	if err != nil {
		return "", err
	}
	return tag.String(), b.publish(ctx, tag, img)
}

// ensure makes sure the engine has ref, pulling it when it does not, once
// per backend and reference.
func (b *Backend) ensure(ctx context.Context, ref string) error {
	b.mu.Lock()
	e := b.images[ref]
	if e == nil {
		e = &imageEntry{}
		b.images[ref] = e
	}
	b.mu.Unlock()
	e.once.Do(func() {
		_, err := b.cli.ImageInspect(ctx, ref)
		if err == nil {
			return
		}
		if !cerrdefs.IsNotFound(err) {
			e.err = b.engineErr("inspecting image "+ref, err)
			return
		}
		if err := b.pull(ctx, ref); err != nil {
			e.err = fmt.Errorf("image %s is not in the Docker engine and pulling it failed: %v", ref, err)
		}
	})
	return b.settle(ref, e)
}

// ensurePinned finds a pinned image in the engine, as REPO@DIGEST or, for
// an image the engine alone has, as its ID, pulling REPO@DIGEST when
// neither is there. It returns the reference to run.
func (b *Backend) ensurePinned(ctx context.Context, p Pin) (string, error) {
	key := "pin " + p.Ref + " " + p.Digest
	b.mu.Lock()
	e := b.images[key]
	if e == nil {
		e = &imageEntry{}
		b.images[key] = e
	}
	b.mu.Unlock()
	e.once.Do(func() {
		var candidates []string
		byDigest := ""
		if p.Source != SourceEngine {
			byDigest = Pin{Ref: p.Ref, Digest: p.Digest}.Reference()
			candidates = append(candidates, byDigest)
		}
		candidates = append(candidates, p.Digest)
		for _, c := range candidates {
			_, err := b.cli.ImageInspect(ctx, c)
			if err == nil {
				e.ref = c
				return
			}
			if !cerrdefs.IsNotFound(err) {
				e.err = b.engineErr("inspecting image "+c, err)
				return
			}
		}
		if byDigest == "" {
			e.err = fmt.Errorf("image %s (pinned to %s in weir.lock) is not in the Docker engine, which alone had it", p.Ref, p.Digest)
			return
		}
		if err := b.pull(ctx, byDigest); err != nil {
			e.err = fmt.Errorf("image %s (pinned to %s in weir.lock) is not in the Docker engine and pulling it failed: %v", p.Ref, p.Digest, err)
			return
		}
		e.ref = byDigest
	})
	if e.err != nil {
		b.mu.Lock()
		if b.images[key] == e {
			delete(b.images, key)
		}
		b.mu.Unlock()
	}
	return e.ref, e.err
}

func (b *Backend) pull(ctx context.Context, ref string) error {
	opts := client.ImagePullOptions{}
	if r, err := name.ParseReference(ref, name.WeakValidation); err == nil {
		opts.RegistryAuth = b.registryAuth(r.Context().Registry)
	}
	resp, err := b.cli.ImagePull(ctx, ref, opts)
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(ctx)
}

// registryAuth hands the engine the credentials the keychain has for a
// registry ("" when none).
func (b *Backend) registryAuth(r name.Registry) string {
	a, err := b.o.Keychain.Resolve(r)
	if err != nil || a == authn.Anonymous {
		return ""
	}
	c, err := a.Authorization()
	if err != nil {
		return ""
	}
	s, err := authconfig.Encode(registry.AuthConfig{Username: c.Username, Password: c.Password, Auth: c.Auth,
		IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken, ServerAddress: r.RegistryStr()})
	if err != nil {
		return ""
	}
	return s
}

// base reads an image from the engine, for deriving code images from it
// (once per reference: reading means saving the whole image).
func (b *Backend) base(ctx context.Context, ref string) (v1.Image, error) {
	b.mu.Lock()
	img := b.bases[ref]
	b.mu.Unlock()
	if img != nil {
		return img, nil
	}
	r, err := engineRef(ref)
	if err != nil {
		return nil, err
	}
	img, err = daemon.Image(r, daemon.WithClient(b.cli), daemon.WithContext(context.WithoutCancel(ctx)), daemon.WithFileBufferedOpener())
	if err != nil {
		return nil, fmt.Errorf("reading image %s from the engine: %w", ref, err)
	}
	b.mu.Lock()
	b.bases[ref] = img
	b.mu.Unlock()
	return img, nil
}

// publish makes a derived image available to the engine: loaded into it,
// or pushed to the project's registry and pulled from there. An image the
// engine already has under that tag is left alone.
func (b *Backend) publish(ctx context.Context, tag name.Tag, img v1.Image) error {
	ref := tag.String()
	b.mu.Lock()
	e := b.images[ref]
	if e == nil {
		e = &imageEntry{}
		b.images[ref] = e
	}
	b.mu.Unlock()
	e.once.Do(func() {
		if _, err := b.cli.ImageInspect(ctx, ref); err == nil {
			return
		}
		if b.o.Registry == "" {
			if _, err := daemon.Write(tag, img, daemon.WithClient(b.cli), daemon.WithContext(ctx)); err != nil {
				e.err = fmt.Errorf("loading image %s into the engine: %w", ref, err)
			}
			return
		}
		opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(b.o.Keychain)}
		if b.o.Transport != nil {
			opts = append(opts, remote.WithTransport(b.o.Transport))
		}
		if err := remote.Write(tag, img, opts...); err != nil {
			e.err = fmt.Errorf("pushing image %s: %w", ref, err)
			return
		}
		if err := b.pull(ctx, ref); err != nil {
			e.err = fmt.Errorf("pulling image %s into the engine: %w", ref, err)
		}
	})
	return b.settle(ref, e)
}

// engineRef parses a reference for the daemon package, which passes its
// string to the engine: image IDs ("sha256:…") included.
func engineRef(ref string) (name.Reference, error) {
	if strings.HasPrefix(ref, "sha256:") {
		return imageID(ref), nil
	}
	return name.ParseReference(ref, name.WeakValidation)
}

// imageID is an engine image ID as a name.Reference.
type imageID string

func (i imageID) Context() name.Repository { return name.Repository{} }
func (i imageID) Identifier() string       { return string(i) }
func (i imageID) Name() string             { return string(i) }
func (i imageID) String() string           { return string(i) }
func (i imageID) Scope(string) string      { return "" }

// settle returns an image entry's outcome; a failed one is forgotten so a
// later step tries again (the image may arrive meanwhile).
func (b *Backend) settle(ref string, e *imageEntry) error {
	if e.err != nil {
		b.mu.Lock()
		if b.images[ref] == e {
			delete(b.images, ref)
		}
		b.mu.Unlock()
	}
	return e.err
}
