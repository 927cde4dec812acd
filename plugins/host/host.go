package host

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"weir.dev/weir/plugins/internal/wire"
	pb "weir.dev/weir/plugins/proto"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Options say which plugin to start and how.
type Options struct {
	// Kind is the backend kind the plugin implements, Name the spec's name
	// for this backend (both for messages and Configure).
	Kind, Name string
	// Path is the executable; Args its arguments (none for an external
	// plugin; "plugin serve KIND" for weir serving a built-in).
	Path string
	Args []string
	// SHA256 is the checksum ("sha256:<hex>") the executable must have;
	// empty skips the check (weir serving its own built-ins).
	SHA256 string
	// Settings are the spec's settings for the backend, sent with
	// Configure.
	Settings *schema.Backend
	// Env is added to weir's environment for the plugin process.
	Env []string
	// StartTimeout bounds the handshake (default 30s).
	StartTimeout time.Duration
	// CancelMargin is how long past its grace period a Cancel may take
	// before the plugin is deemed hung and its process group killed
	// (default 10s).
	CancelMargin time.Duration
	// ExitWait is how long a broken connection waits for the process to
	// exit before the process is killed (default 2s).
	ExitWait time.Duration
}

// Plugin is a backend served by a plugin process, started on Open and
// again, after it died, on the next Submit. It implements
// backend.Interface.
type Plugin struct {
	opts Options

	mu     sync.Mutex
	cur    *process
	procs  map[int]*process
	gen    int
	closed bool
	// runs are the events of submitted tasks (the rest of their Run
	// stream, or their queue on the Tasks stream), by task ID, until Watch
	// takes them. noRun is set once the plugin has answered Run with
	// UNIMPLEMENTED, noTasks once it has answered Tasks so.
	runs    map[string]pending
	noRun   bool
	noTasks bool
	// noLowerSteps is set once the plugin has answered LowerSteps with
	// UNIMPLEMENTED: its steps are lowered one call each.
	noLowerSteps bool
	// refs are the tasks submitted on a Tasks stream without waiting for
	// their IDs, by Weir's ID for them ("GEN#REF"), until a Watch takes
	// their end.
	refs map[string]*streamTask
	// done are the tasks whose result said they left nothing running, by
	// ID, until LeftRunning is asked about them.
	done map[string]bool
}

// pending is what Watch reads of a task submitted with its events to come
// on the same call.
type pending interface {
	// watch starts reading the events; ctx ends the reading.
	watch(ctx context.Context) eventStream
	// stop stops reading them (not the task).
	stop()
}

// runStream is a Run call whose first message (the task's ID) has been
// read: Watch reads the rest.
type runStream struct {
	stream pb.Backend_RunClient
	cancel context.CancelFunc
	unwait func() bool
}

func (r *runStream) watch(ctx context.Context) eventStream {
	r.unwait = context.AfterFunc(ctx, r.cancel)
	return r.stream
}

func (r *runStream) stop() {
	if r.unwait != nil {
		r.unwait()
	}
	r.cancel()
}

var _ backend.Interface = (*Plugin)(nil)

// process is one run of the plugin executable.
type process struct {
	gen    int
	client *plugin.Client
	cmd    *exec.Cmd
	rpc    pb.BackendClient
	stderr *tail
	desc   *backend.Description
	// tasksStream says the plugin serves Tasks (Describe's tasks_stream);
	// tasks is the stream, once opened (guarded by Plugin.mu).
	tasksStream bool
	tasks       *taskStream
	// tasksSocket and tasksToken are Describe's tasks socket (PROTOCOL.md
	// 5.2), if it gave one; noSocket is set once connecting to it failed.
	tasksSocket, tasksToken string
	noSocket                bool
	// lostOnce makes the result of the tasks that ran when the process was
	// lost once, for them all.
	lostOnce sync.Once
	lostRes  backend.Result
}

func (pr *process) exited() bool { return pr.client.Exited() }

// Open starts the plugin, checks its checksum and protocol version, and
// configures it. The errors are *ChecksumError, *ProtocolError and
// *HandshakeError, or the plugin's own from Configure.
func Open(ctx context.Context, opts Options) (*Plugin, error) {
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.CancelMargin == 0 {
		opts.CancelMargin = 10 * time.Second
	}
	if opts.ExitWait == 0 {
		opts.ExitWait = 2 * time.Second
	}
	p := &Plugin{opts: opts, procs: map[int]*process{}, runs: map[string]pending{}, refs: map[string]*streamTask{}, done: map[string]bool{}}
	if _, err := p.process(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Description returns what the plugin said of itself when it started.
func (p *Plugin) Description() *backend.Description {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return nil
	}
	d := *p.cur.desc
	return &d
}

// Pid returns the process ID of the running plugin process (0 if none).
func (p *Plugin) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.cur.cmd.Process == nil {
		return 0
	}
	return p.cur.cmd.Process.Pid
}

// process returns the running plugin process, starting one if there is
// none or the last one exited.
func (p *Plugin) process(ctx context.Context) (*process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("backend plugin %s is closed", p.opts.Kind)
	}
	if p.cur != nil && !p.cur.exited() {
		return p.cur, nil
	}
	if p.cur != nil {
		p.cur.client.Kill() // reap it and clean up its socket
		p.cur.removeTasksSocket()
	}
	p.gen++
	pr, err := p.start(ctx, p.gen)
	if err != nil {
		return nil, err
	}
	p.cur = pr
	p.procs[pr.gen] = pr
	return pr, nil
}

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

func (p *Plugin) start(ctx context.Context, gen int) (*process, error) {
	o := p.opts
	if o.SHA256 != "" {
		got, err := FileSHA256(o.Path)
		if err != nil {
			return nil, fmt.Errorf("backend plugin %s: %w", o.Kind, err)
		}
		if "sha256:"+got != o.SHA256 {
			return nil, &ChecksumError{Kind: o.Kind, Path: o.Path, Want: o.SHA256, Got: "sha256:" + got}
		}
	}
	cmd := exec.Command(o.Path, o.Args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.SysProcAttr = sysProcAttr()
	stderr := newTail(16 << 10)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  pb.ProtocolVersion,
			MagicCookieKey:   pb.MagicCookieKey,
			MagicCookieValue: pb.MagicCookieValue,
		},
		VersionedPlugins: map[int]plugin.PluginSet{pb.ProtocolVersion: {pb.PluginName: &grpcPlugin{}}},
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     o.StartTimeout,
		Stderr:           stderr,
		SyncStdout:       io.Discard,
		SyncStderr:       stderr,
		Logger:           hclog.NewNullLogger(),
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(1 << 20),
		},
	})
	pr := &process{gen: gen, client: client, cmd: cmd, stderr: stderr}
	fail := func(reason string) error {
		p.kill(pr) // with its process group: what it started holds its pipes
		if m := pluginVersionRE.FindStringSubmatch(reason); m != nil {
			v, _ := strconv.Atoi(m[1])
			return &ProtocolError{Kind: o.Kind, Path: o.Path, Plugin: v, Weir: pb.ProtocolVersion}
		}
		lines := stderr.Lines(10)
		for _, l := range lines {
			if strings.Contains(l, "This binary is a plugin") {
				reason += " (it is a plugin of another program: the magic cookie is not Weir's)"
				break
			}
		}
		return &HandshakeError{Kind: o.Kind, Path: o.Path, Reason: reason, Stderr: lines}
	}
	rpcClient, err := client.Client()
	if err != nil {
		reason := err.Error()
		switch {
		case strings.Contains(reason, "exited before we could connect"), strings.Contains(reason, "Failed to read any lines"):
			reason = "it exited before the handshake"
			if st := waitState(pr, p.opts.ExitWait); st != "" {
				reason += " (" + st + ")"
			}
		case strings.HasPrefix(reason, "Unrecognized remote plugin message: "):
			line, _, _ := strings.Cut(strings.TrimPrefix(reason, "Unrecognized remote plugin message: "), "\n")
			reason = fmt.Sprintf("it printed %q instead of the handshake line: it is not a Weir backend plugin", line)
		case strings.Contains(reason, "timeout while waiting for plugin to start"):
			reason = fmt.Sprintf("it did not complete the handshake within %v", o.StartTimeout)
		}
		return nil, fail(reason)
	}
	raw, err := rpcClient.Dispense(pb.PluginName)
	if err != nil {
		return nil, fail(err.Error())
	}
	pr.rpc = raw.(pb.BackendClient)
	settings, err := json.Marshal(o.Settings)
	if err != nil {
		p.kill(pr)
		return nil, err
	}
	if o.Settings == nil {
		settings = nil
	}
	if _, err := pr.rpc.Configure(ctx, &pb.ConfigureRequest{Name: o.Name, SettingsJson: settings}); err != nil {
		p.kill(pr)
		return nil, fmt.Errorf("backend %s (plugin %s): configuring: %w", o.Name, o.Kind, wire.ErrorFrom(err))
	}
	d, err := pr.rpc.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return nil, fail("Describe: " + wire.ErrorFrom(err).Error())
	}
	pr.tasksSocket, pr.tasksToken = d.TasksSocket, d.TasksToken // removed with the process
	if int(d.ProtocolVersion) != pb.ProtocolVersion {
		p.kill(pr)
		return nil, &ProtocolError{Kind: o.Kind, Path: o.Path, Plugin: int(d.ProtocolVersion), Weir: pb.ProtocolVersion}
	}
	pr.desc = wire.DescriptionFrom(d)
	pr.tasksStream = d.TasksStream
	return pr, nil
}

// waitState waits for a process to exit and says how it ended ("" if it
// did not within d).
func waitState(pr *process, d time.Duration) string {
	deadline := time.Now().Add(d)
	for !pr.exited() {
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ps := pr.cmd.ProcessState; ps != nil {
		return ps.String()
	}
	return "exited"
}

// kill ends a plugin process and its process group at once, and reaps it.
func (p *Plugin) kill(pr *process) {
	if pr.cmd.Process != nil {
		killGroup(pr.cmd.Process.Pid)
	}
	pr.client.Kill()
	pr.removeTasksSocket()
}

// removeTasksSocket removes the tasks socket of a process that has exited
// (one that exits normally removes its own): the socket and its folder,
// only if they are named as the SDK names them, and the folder only if
// nothing else is in it.
func (pr *process) removeTasksSocket() {
	sock := pr.tasksSocket
	dir := filepath.Dir(sock)
	if filepath.Base(sock) != wire.TasksSocketName || !strings.HasPrefix(filepath.Base(dir), wire.TasksSocketDir) {
		return
	}
	os.Remove(sock)
	os.Remove(dir)
}

// Close stops every plugin process: each is asked to shut down (it cancels
// its running tasks), then killed if it has not exited after 2 seconds; if
// what it started still holds its output open a second later, its process
// group is killed too.
func (p *Plugin) Close() error {
	p.mu.Lock()
	p.closed = true
	procs := p.procs
	p.procs = map[int]*process{}
	p.cur = nil
	for _, pr := range procs {
		if pr.tasks != nil {
			pr.tasks.cancel()
		}
	}
	for id, r := range p.runs {
		r.stop()
		delete(p.runs, id)
	}
	clear(p.refs) // their streams end with the processes
	clear(p.done)
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() {
				pr.client.Kill()
				pr.removeTasksSocket()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				if pr.cmd.Process != nil {
					killGroup(pr.cmd.Process.Pid)
				}
				<-done
			}
		}()
	}
	wg.Wait()
	return nil
}

// task finds the process a task ID belongs to.
func (p *Plugin) task(id string) (*process, string, error) {
	g, rid, ok := strings.Cut(id, "/")
	gen, err := strconv.Atoi(g)
	if !ok || err != nil {
		return nil, "", fmt.Errorf("task %q: %w", id, backend.ErrNotFound)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.procs[gen]
	if pr == nil {
		return nil, "", fmt.Errorf("task %q: %w", id, backend.ErrNotFound)
	}
	return pr, rid, nil
}

// transport reports whether an RPC error means the connection broke (as
// opposed to an error the plugin returned, which comes with another code).
func transport(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal:
		return true
	}
	return false
}

// lost handles a connection that broke while a task ran: it waits for the
// process to exit (killing it if it does not), and returns the failed
// result naming the exit and the end of the plugin's stderr, the same for
// every task the process ran.
func (p *Plugin) lost(pr *process, err error) *backend.Result {
	pr.lostOnce.Do(func() {
		st := waitState(pr, p.opts.ExitWait)
		if st == "" {
			p.kill(pr)
			st = "stopped answering (" + status.Convert(err).Message() + "); killed"
			if ps := pr.cmd.ProcessState; ps != nil {
				st += ", " + ps.String()
			}
		}
		msg := fmt.Sprintf("backend plugin %s exited while the step ran (%s)", p.opts.Kind, st)
		pr.lostRes = backend.Result{State: backend.StateFailed, ExitCode: -1, Message: msg + stderrSuffix(pr.stderr.Lines(20))}
	})
	r := pr.lostRes
	return &r
}

// Describe asks the plugin what it is and can do.
func (p *Plugin) Describe(ctx context.Context) (*backend.Description, error) {
	pr, err := p.process(ctx)
	if err != nil {
		return nil, err
	}
	d, err := pr.rpc.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return nil, p.callError(pr, "Describe", err)
	}
	return wire.DescriptionFrom(d), nil
}

// callError explains a failed call: the plugin's error, or its death.
func (p *Plugin) callError(pr *process, call string, err error) error {
	if !transport(err) && !pr.exited() {
		return wire.ErrorFrom(err)
	}
	st := waitState(pr, p.opts.ExitWait)
	if st == "" {
		return fmt.Errorf("backend plugin %s: %s: %s", p.opts.Kind, call, status.Convert(err).Message())
	}
	return fmt.Errorf("backend plugin %s exited (%s)%s", p.opts.Kind, st, stderrSuffix(pr.stderr.Lines(20)))
}

// Lower asks the plugin to lower a step.
func (p *Plugin) Lower(ctx context.Context, s *schema.Step) (json.RawMessage, error) {
	pr, err := p.process(ctx)
	if err != nil {
		return nil, err
	}
	b, err := wire.Step(s)
	if err != nil {
		return nil, err
	}
	res, err := pr.rpc.Lower(ctx, &pb.LowerRequest{StepJson: b})
	if err != nil {
		return nil, p.callError(pr, "Lower", err)
	}
	if !json.Valid(res.TaskJson) {
		return nil, fmt.Errorf("backend plugin %s lowered %s to invalid JSON", p.opts.Kind, s.Address)
	}
	return res.TaskJson, nil
}

// lowerBatchBytes bounds the steps of one LowerSteps call: a gRPC server
// refuses requests over 4 MiB unless told otherwise (go-plugin's client
// takes answers of any size). Up to lowerCalls calls are in flight, so
// that encoding, decoding and lowering overlap in both processes.
const (
	lowerBatchBytes = 1 << 20
	lowerCalls      = 4
)

// LowerSteps asks the plugin to lower steps, as many in one call as
// lowerBatchBytes allows; a plugin without LowerSteps gets a Lower call
// for each step. The error is a call's that failed as a whole.
func (p *Plugin) LowerSteps(ctx context.Context, steps []*schema.Step) ([]json.RawMessage, []error, error) {
	pr, err := p.process(ctx)
	if err != nil {
		return nil, nil, err
	}
	tasks, errs := make([]json.RawMessage, len(steps)), make([]error, len(steps))
	enc := make([][]byte, len(steps))
	wire.Each(len(steps), func(i int) { enc[i], errs[i] = wire.Step(steps[i]) })
	for i, err := range errs {
		if err != nil {
			return nil, nil, fmt.Errorf("encoding %s: %v", steps[i].Address, err)
		}
	}
	var (
		wg     sync.WaitGroup
		calls  = make(chan struct{}, lowerCalls)
		mu     sync.Mutex
		failed error
	)
	for start := 0; start < len(steps); {
		end, size := start, 0
		for end < len(steps) && (end == start || size+len(enc[end]) <= lowerBatchBytes) {
			size += len(enc[end])
			end++
		}
		calls <- struct{}{}
		from := start
		wg.Go(func() {
			defer func() { <-calls }()
			if err := p.lowerBatch(ctx, pr, steps[from:end], enc[from:end], tasks[from:end], errs[from:end]); err != nil {
				mu.Lock()
				failed = cmp.Or(failed, err)
				mu.Unlock()
			}
		})
		start = end
	}
	wg.Wait()
	if failed != nil {
		return nil, nil, failed
	}
	return tasks, errs, nil
}

// lowerBatch lowers steps (enc: their JSON) in one LowerSteps call; the
// error is the call's when it failed as a whole.
func (p *Plugin) lowerBatch(ctx context.Context, pr *process, steps []*schema.Step, enc [][]byte, tasks []json.RawMessage, errs []error) error {
	p.mu.Lock()
	one := p.noLowerSteps
	p.mu.Unlock()
	if one {
		for i, s := range steps {
			tasks[i], errs[i] = p.Lower(ctx, s)
			if errs[i] != nil && (pr.exited() || ctx.Err() != nil) {
				return errs[i] // not this step's fault
			}
		}
		return nil
	}
	res, err := pr.rpc.LowerSteps(ctx, &pb.LowerStepsRequest{StepsJson: enc})
	switch {
	case status.Code(err) == codes.Unimplemented:
		p.mu.Lock()
		p.noLowerSteps = true
		p.mu.Unlock()
		return p.lowerBatch(ctx, pr, steps, enc, tasks, errs)
	case err != nil:
		return p.callError(pr, "LowerSteps", err)
	}
	if len(res.Lowered) != len(steps) {
		return fmt.Errorf("backend plugin %s answered LowerSteps of %d steps with %d", p.opts.Kind, len(steps), len(res.Lowered))
	}
	for i, l := range res.Lowered {
		switch {
		case l.GetError() != nil:
			errs[i] = wire.TaskErrorFrom(l.GetError())
		case !json.Valid(l.TaskJson):
			errs[i] = fmt.Errorf("backend plugin %s lowered %s to invalid JSON", p.opts.Kind, steps[i].Address)
		default:
			tasks[i] = l.TaskJson
		}
	}
	return nil
}

// Submit starts a task on the plugin (starting the plugin again first if
// it died). It sends the task on the process's Tasks stream, so that its
// events come on it, or, with a plugin that does not serve Tasks, uses Run,
// and Submit with a plugin that does not implement Run either.
func (p *Plugin) Submit(ctx context.Context, t *backend.Task) (string, error) {
	pr, err := p.process(ctx)
	if err != nil {
		return "", err
	}
	ts, err := p.tasks(pr)
	if err != nil {
		return "", p.callError(pr, "Tasks", err)
	}
	if ts != nil {
		id, err := p.submitTasks(ctx, pr, ts, t)
		if err != errNoTasks {
			return id, err
		}
	}
	p.mu.Lock()
	noRun := p.noRun
	p.mu.Unlock()
	if !noRun {
		id, err := p.run(ctx, pr, t)
		if status.Code(err) != codes.Unimplemented {
			return id, err
		}
		p.mu.Lock()
		p.noRun = true
		p.mu.Unlock()
	}
	res, err := pr.rpc.Submit(ctx, &pb.SubmitRequest{Task: wire.Task(t)})
	if err != nil {
		return "", p.callError(pr, "Submit", err)
	}
	return strconv.Itoa(pr.gen) + "/" + res.Id, nil
}

// run submits a task with Run and keeps the stream for Watch. The stream
// outlives ctx, which bounds only the wait for the task's ID.
func (p *Plugin) run(ctx context.Context, pr *process, t *backend.Task) (string, error) {
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	stream, err := pr.rpc.Run(sctx, &pb.SubmitRequest{Task: wire.Task(t)})
	var ev *pb.WatchEvent
	if err == nil {
		ev, err = stream.Recv()
	}
	kept := stop()
	if err != nil {
		cancel()
		if status.Code(err) == codes.Unimplemented {
			return "", err
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", p.callError(pr, "Run", err)
	}
	sub := ev.GetSubmitted()
	if sub == nil {
		cancel()
		return "", fmt.Errorf("backend plugin %s: Run's first message is not the task's ID", p.opts.Kind)
	}
	id := strconv.Itoa(pr.gen) + "/" + sub.Id
	if !kept {
		cancel() // ctx ended meanwhile: the task runs, Watch follows it anew
		return id, nil
	}
	p.mu.Lock()
	p.runs[id] = &runStream{stream: stream, cancel: cancel}
	p.mu.Unlock()
	return id, nil
}

// eventStream is what Watch reads: a Watch call, the rest of a Run, or a
// task's events on the Tasks stream.
type eventStream interface {
	Recv() (*pb.WatchEvent, error)
}

// Watch follows a task over the protocol's stream. If the plugin dies, the
// task fails with the end of the plugin's stderr.
func (p *Plugin) Watch(ctx context.Context, id string, fn func(backend.Event)) (*backend.Result, error) {
	if fn == nil {
		fn = func(backend.Event) {}
	}
	if strings.Contains(id, "#") {
		return p.watchRef(ctx, id, fn)
	}
	pr, rid, err := p.task(id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	run := p.runs[id]
	delete(p.runs, id)
	p.mu.Unlock()
	var stream eventStream
	if run != nil {
		stream = run.watch(ctx)
		defer run.stop()
	} else {
		stream, err = pr.rpc.Watch(ctx, &pb.WatchRequest{Id: rid})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if transport(err) || pr.exited() {
				return p.lost(pr, err), nil
			}
			return nil, wire.ErrorFrom(err)
		}
	}
	return p.follow(ctx, pr, id, stream, fn)
}

// follow reads a task's events to its result.
func (p *Plugin) follow(ctx context.Context, pr *process, id string, stream eventStream, fn func(backend.Event)) (*backend.Result, error) {
	final := false // a plugin may send the final state before the result
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return nil, fmt.Errorf("backend plugin %s ended the watch of task %s without its result", p.opts.Kind, id)
		}
		if err != nil {
			var te *taskError
			switch {
			case errors.As(err, &te):
				return nil, te.err
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case transport(err) || pr.exited():
				return p.lost(pr, err), nil
			}
			return nil, wire.ErrorFrom(err)
		}
		switch e := ev.Event.(type) {
		case *pb.WatchEvent_State:
			st := wire.StateFrom(e.State.State)
			final = final || st.Terminal()
			fn(backend.Event{State: st, Message: e.State.Message})
		case *pb.WatchEvent_Lines:
			for _, l := range e.Lines.Lines {
				fn(backend.Event{Line: l})
			}
		case *pb.WatchEvent_Result:
			r := wire.ResultFrom(e.Result)
			if !r.State.Terminal() {
				return nil, fmt.Errorf("backend plugin %s ended task %s in state %q, which is not final", p.opts.Kind, id, r.State)
			}
			if e.Result.NothingLeftRunning {
				p.mu.Lock()
				p.done[id] = true
				p.mu.Unlock()
			}
			if !final {
				fn(backend.Event{State: r.State, Message: r.Message})
			}
			return r, nil
		}
	}
}

// LeftRunning reports whether a task whose Watch has returned its result
// may have left processes running: false only when the plugin said it left
// none (the executor then reuses the task's folder). The answer is given
// once per task.
func (p *Plugin) LeftRunning(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	clean := p.done[id]
	delete(p.done, id)
	return !clean
}

// Cancel asks the plugin to stop a task within the grace period. A plugin
// that has not answered CancelMargin after the grace period is hung: its
// process group is killed, which ends the task with it.
func (p *Plugin) Cancel(ctx context.Context, id string, grace time.Duration) error {
	if strings.Contains(id, "#") {
		return p.cancelRef(ctx, id, grace)
	}
	pr, rid, err := p.task(id)
	if err != nil {
		return err
	}
	if pr.exited() {
		return nil // the task ended with its plugin
	}
	// The deadline is kept here, not sent with the call: a plugin's own
	// error and a plugin that does not answer must not be confused.
	deadline := grace + p.opts.CancelMargin
	done := make(chan error, 1)
	go func() {
		_, err := pr.rpc.Cancel(ctx, &pb.CancelRequest{Id: rid, GraceNanos: int64(grace)})
		done <- err
	}()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case err = <-done:
	case <-timer.C:
		p.kill(pr)
		<-done // the call ends with the connection
		return fmt.Errorf("backend plugin %s did not stop task %s within %v: killed the plugin", p.opts.Kind, id, deadline)
	}
	if err == nil {
		return nil
	}
	if transport(err) && pr.exited() {
		return nil
	}
	return wire.ErrorFrom(err)
}

// Deploy starts a service revision on the plugin.
func (p *Plugin) Deploy(ctx context.Context, s *backend.Service) (*backend.Deployment, error) {
	pr, err := p.process(ctx)
	if err != nil {
		return nil, err
	}
	res, err := pr.rpc.Deploy(ctx, &pb.DeployRequest{Service: wire.Service(s)})
	if err != nil {
		return nil, p.callError(pr, "Deploy", err)
	}
	return wire.DeploymentFrom(res.Deployment), nil
}

// SetTraffic splits a deployment's traffic on the plugin.
func (p *Plugin) SetTraffic(ctx context.Context, id string, split []backend.Split) (*backend.Deployment, error) {
	pr, err := p.process(ctx)
	if err != nil {
		return nil, err
	}
	res, err := pr.rpc.SetTraffic(ctx, &pb.SetTrafficRequest{Id: id, Split: wire.Splits(split)})
	if err != nil {
		return nil, p.callError(pr, "SetTraffic", err)
	}
	return wire.DeploymentFrom(res.Deployment), nil
}

// Undeploy stops a deployment on the plugin.
func (p *Plugin) Undeploy(ctx context.Context, id string, grace time.Duration) error {
	pr, err := p.process(ctx)
	if err != nil {
		return err
	}
	if _, err := pr.rpc.Undeploy(ctx, &pb.UndeployRequest{Id: id, GraceNanos: int64(grace)}); err != nil {
		return p.callError(pr, "Undeploy", err)
	}
	return nil
}

// grpcPlugin is the client half of go-plugin's plugin for the backend
// service.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (grpcPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("plugins/host is the client: serve backends with plugins/sdk")
}

func (grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewBackendClient(c), nil
}
