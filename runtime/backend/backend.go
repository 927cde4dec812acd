// Package backend defines the one interface behind every place Weir runs
// steps: the local processes of the embedded default, Docker, Kubernetes,
// batch services and external plugins. The executor talks only to Interface;
// gRPC and go-plugin live in the plugins' host adapter and SDK, never here.
//
// backend imports the standard library and schema only.
package backend

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"path/filepath"
	"strings"
	"time"

	"weir.dev/weir/schema"
)

// ProtocolVersion is the version of this interface as spoken over the
// plugin protocol. A plugin of another major version is refused.
const ProtocolVersion = 1

// Interface is a backend. Every method may be called from several
// goroutines at once. Errors are Go errors; a backend that cannot do what is
// asked (long-lived services on a backend that only runs tasks) returns an
// error wrapping ErrUnsupported, and a task ID it does not know an error
// wrapping ErrNotFound, so callers and the plugin protocol can tell them
// apart.
type Interface interface {
	// Describe tells what the backend is and can do.
	Describe(ctx context.Context) (*Description, error)
	// Lower turns a step into the backend's native task (a process spec, a
	// container config, a Kubernetes Job ...), as JSON shown in the plan. It
	// must be a pure function of the step and the backend's settings, so
	// the same spec gives the same plan. An error says why this backend
	// cannot run the step.
	Lower(ctx context.Context, s *schema.Step) (json.RawMessage, error)
	// Submit starts a task and returns its ID at once. A backend may hand
	// the task on without waiting for the answer: a refusal then comes
	// from Watch, as a *SubmitError.
	Submit(ctx context.Context, t *Task) (string, error)
	// Watch follows a submitted task until it ends, calling fn for each
	// state change and log line, and returns its result. Cancelling ctx
	// stops watching, not the task.
	Watch(ctx context.Context, id string, fn func(Event)) (*Result, error)
	// Cancel stops a task: politely first, then by force after the grace
	// period. It returns once the task has ended.
	Cancel(ctx context.Context, id string, grace time.Duration) error
	// Deploy starts a revision of a long-lived service (a model server)
	// and returns the deployment it belongs to. The first revision of a
	// service takes all its traffic; a later one starts with none, until
	// SetTraffic moves traffic to it.
	Deploy(ctx context.Context, s *Service) (*Deployment, error)
	// SetTraffic splits a deployment's traffic between its revisions; the
	// weights are percentages summing to 100. Revisions left at 0 keep
	// running until Undeploy or a later Deploy replaces them.
	SetTraffic(ctx context.Context, id string, split []Split) (*Deployment, error)
	// Undeploy stops every revision of a deployment, politely first, then
	// by force after the grace period.
	Undeploy(ctx context.Context, id string, grace time.Duration) error
}

// ServicePlanner is implemented by backends that can tell, before apply,
// what Deploy would change where a service runs (the kubernetes backend: a
// server-side dry-run apply of the revision's objects compared with the
// live ones). PlanService changes nothing. An error means the comparison
// could not be made (a cluster out of reach): the plan then shows the
// deploy as it would without it.
type ServicePlanner interface {
	PlanService(ctx context.Context, s *Service) (*ServicePlan, error)
}

// ServicePlan is what deploying a revision of a service would change.
type ServicePlan struct {
	// Action is schema.ActionCreate when the revision is not deployed,
	// schema.ActionUpdate when it is but differs from what Deploy would
	// make of it (a new spec, or a change made by hand: drift), and
	// schema.ActionNoop when it is live and unchanged.
	Action schema.Action `json:"action"`
	// Changes are what would change, as the plan shows them: a line per
	// object ("~ apps/v1 Deployment ns/churn-v3") with a line per changed
	// field under it, indented ("    spec.replicas: 3 -> 2"). Secret
	// values never appear. Empty when nothing changes.
	Changes []string `json:"changes,omitempty"`
	// Revisions are the deployment's revisions live now with their share
	// of traffic (none when the service is not deployed).
	Revisions []Revision `json:"revisions,omitempty"`
	// Note says how the backend splits traffic, and why ("" for nothing
	// to say).
	Note string `json:"note,omitempty"`
}

// StepsLowerer is implemented by backends that lower many steps at once
// more cheaply than one by one (a plugin: one round trip for a plan's
// steps). LowerSteps answers each step as Lower would: tasks[i] or errs[i],
// for steps[i]; or, when the call failed as a whole (a plugin that cannot
// start, or died), err alone.
type StepsLowerer interface {
	LowerSteps(ctx context.Context, steps []*schema.Step) (tasks []json.RawMessage, errs []error, err error)
}

// Configurer is implemented by backends that take settings from the spec's
// backends entry (namespace, host, region, config ...). Configure is called
// once, before any other method; a backend of the kind may be configured
// under several names, each its own instance.
type Configurer interface {
	Configure(ctx context.Context, cfg *schema.Backend) error
}

// ErrUnsupported is wrapped by the errors of calls a backend does not
// support (Describe says what it supports).
var ErrUnsupported = errors.New("not supported by this backend")

// ErrNoServices is the error of Deploy, SetTraffic and Undeploy on a
// backend that runs only tasks (Description.Services is false). It wraps
// ErrUnsupported.
var ErrNoServices error = noServices{}

type noServices struct{}

func (noServices) Error() string        { return "this backend does not host long-lived services" }
func (noServices) Is(target error) bool { return target == ErrUnsupported }

// SubmitError is the error of a Submit that Watch reports: the task was
// refused and never ran (a program that is not installed, a step the
// backend cannot run), as Submit's own error would have said.
type SubmitError struct{ Err error }

func (e *SubmitError) Error() string { return e.Err.Error() }
func (e *SubmitError) Unwrap() error { return e.Err }

// ErrNotFound is wrapped by the errors of Watch and Cancel for a task ID the
// backend does not know (it never existed, or its end was collected).
var ErrNotFound = errors.New("no such task")

// NoServices answers Deploy, SetTraffic and Undeploy with ErrNoServices;
// embed it in a backend that runs only tasks.
type NoServices struct{}

// Deploy returns ErrNoServices.
func (NoServices) Deploy(context.Context, *Service) (*Deployment, error) { return nil, ErrNoServices }

// SetTraffic returns ErrNoServices.
func (NoServices) SetTraffic(context.Context, string, []Split) (*Deployment, error) {
	return nil, ErrNoServices
}

// Undeploy returns ErrNoServices.
func (NoServices) Undeploy(context.Context, string, time.Duration) error { return ErrNoServices }

// Description is what a backend tells about itself.
type Description struct {
	Name            string  `json:"name"`
	Version         string  `json:"version"`
	ProtocolVersion int     `json:"protocol_version"`
	GPUs            int     `json:"gpus"`
	Services        bool    `json:"services"`
	MaxParallelism  int     `json:"max_parallelism"`
	CPUHourPrice    float64 `json:"cpu_hour_price,omitempty"`
	GPUHourPrice    float64 `json:"gpu_hour_price,omitempty"`
}

// Task is one attempt of a step, ready to run: the inputs are in place, the
// outputs' folders exist. Paths are absolute and local to the machine
// running weir; a remote backend moves them (its launcher does).
type Task struct {
	RunID   string   `json:"run_id"`
	Step    string   `json:"step"`
	Attempt int      `json:"attempt"`
	Argv    []string `json:"argv"`
	// WorkDir is the step's own folder; the process starts in Dir, a
	// folder below it (the copy of the code folder, or WorkDir itself).
	WorkDir string `json:"work_dir"`
	Dir     string `json:"dir"`
	// Env is the whole environment of the process: the contract's WEIR_*
	// variables and the step's declared ones, secrets resolved. A backend
	// must never log or persist it.
	Env       map[string]string `json:"env"`
	Inputs    map[string]string `json:"inputs,omitempty"`
	Outputs   map[string]string `json:"outputs,omitempty"`
	Image     string            `json:"image,omitempty"`
	Resources *schema.Resources `json:"resources,omitempty"`
	Network   bool              `json:"network,omitempty"`
	// LogPath is where the backend writes the task's output.
	LogPath string `json:"log_path"`
	// Kind and Element are the step's kind ("train", "trial" ...) and the
	// spec element it comes from, for labels and names on the backend.
	Kind    string `json:"kind,omitempty"`
	Element string `json:"element,omitempty"`
	// Workers is the number of processes of a distributed step (0 or 1:
	// one); a backend that cannot run several refuses the task.
	Workers int `json:"workers,omitempty"`
	// Timeout is the attempt's time limit (0: none). The executor enforces
	// it by cancelling the task; a backend may enforce it too (a Job's
	// activeDeadlineSeconds).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// EnvName is the form an input or output name takes in the contract's
// variables: WEIR_INPUT_<EnvName(name)> and WEIR_OUTPUT_<EnvName(name)>
// ("train-set" gives TRAIN_SET). Every backend names them this way.
func EnvName(name string) string {
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteRune(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// ContainerPath maps a path at or below a task's work folder to the same
// place below root (the contract's /weir in a container, where a container
// backend puts the work folder); ok is false for any other path.
func ContainerPath(work, p, root string) (string, bool) {
	if work == "" || !filepath.IsAbs(p) {
		return "", false
	}
	rel, err := filepath.Rel(filepath.Clean(work), filepath.Clean(p))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	if rel == "." {
		return root, true
	}
	return path.Join(root, filepath.ToSlash(rel)), true
}

// State of a task.
type State string

const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// Terminal reports whether the state is final.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// Event is a state change or a line of output.
type Event struct {
	State State  `json:"state,omitempty"`
	Line  string `json:"line,omitempty"`
	// Message explains a state (why a task is pending, what failed).
	Message string `json:"message,omitempty"`
}

// Result is how a task ended.
type Result struct {
	State    State         `json:"state"`
	ExitCode int           `json:"exit_code"`
	Message  string        `json:"message,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Service is one revision of a long-lived service to deploy: a model
// server, run under the same contract as a step (its inputs are the model's
// artifacts), listening on $PORT.
type Service struct {
	// Name is the serving element's address ("serving.churn_api"); the
	// revisions of one name form one deployment.
	Name string `json:"name"`
	// Revision names this version ("v3", the model version it serves).
	Revision string   `json:"revision"`
	Argv     []string `json:"argv"`
	// WorkDir is the revision's own folder; the process starts in Dir.
	WorkDir string `json:"work_dir"`
	Dir     string `json:"dir"`
	// Env is the whole environment of the server, secrets resolved; a
	// backend must never log or persist it.
	Env       map[string]string `json:"env"`
	Inputs    map[string]string `json:"inputs,omitempty"`
	Image     string            `json:"image,omitempty"`
	Resources *schema.Resources `json:"resources,omitempty"`
	// Port is the port the server listens on inside its environment.
	Port int `json:"port,omitempty"`
	// MinReplicas and MaxReplicas bound autoscaling (0: one replica).
	MinReplicas int `json:"min_replicas,omitempty"`
	MaxReplicas int `json:"max_replicas,omitempty"`
	// LogPath is where the backend writes the server's output.
	LogPath string `json:"log_path"`
}

// Deployment is a deployed service: its revisions and where it answers.
type Deployment struct {
	// ID names the deployment for SetTraffic and Undeploy.
	ID string `json:"id"`
	// Endpoint is the URL requests go to.
	Endpoint  string     `json:"endpoint,omitempty"`
	Revisions []Revision `json:"revisions"`
	Message   string     `json:"message,omitempty"`
}

// Revision is one revision of a deployment.
type Revision struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
	Ready  bool   `json:"ready"`
}

// Split is the share of a deployment's traffic a revision gets, in percent.
type Split struct {
	Revision string `json:"revision"`
	Weight   int    `json:"weight"`
}
