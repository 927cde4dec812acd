// Package backend defines the one interface behind every place Weir runs
// steps: the local processes of the embedded default, Docker, Kubernetes,
// batch services and external plugins. The executor talks only to Interface;
// gRPC and go-plugin live in the plugins' host adapter and SDK, never here.
//
// backend imports the standard library and schema only.
package backend

import (
	"context"
	"time"

	"weir.dev/weir/schema"
)

// ProtocolVersion is the version of this interface as spoken over the
// plugin protocol. A plugin of another major version is refused.
const ProtocolVersion = 1

// Interface is a backend.
type Interface interface {
	// Describe tells what the backend is and can do.
	Describe(ctx context.Context) (*Description, error)
	// Submit starts a task and returns its ID at once.
	Submit(ctx context.Context, t *Task) (string, error)
	// Watch follows a submitted task until it ends, calling fn for each
	// state change and log line, and returns its result. Cancelling ctx
	// stops watching, not the task.
	Watch(ctx context.Context, id string, fn func(Event)) (*Result, error)
	// Cancel stops a task: politely first, then by force after the grace
	// period. It returns once the task has ended.
	Cancel(ctx context.Context, id string, grace time.Duration) error
}

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
