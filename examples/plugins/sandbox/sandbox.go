package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Version of the sandbox backend.
const Version = "0.1.0"

// Sandbox runs steps in bwrap sandboxes. Watching, cancelling and logging
// are the local backend's: the process it runs is bwrap.
type Sandbox struct {
	*local.Backend

	mu    sync.Mutex
	bwrap string // the bwrap executable (config.bwrap, or found on PATH)
	ok    error  // the result of the one check that bwrap works here
	check sync.Once
}

// New returns a sandbox backend using the bwrap found on PATH.
func New() *Sandbox { return &Sandbox{Backend: local.New(0)} }

var _ backend.Interface = (*Sandbox)(nil)

// Configure reads the spec's settings: config.bwrap is the path of bwrap.
func (s *Sandbox) Configure(ctx context.Context, cfg *schema.Backend) error {
	if cfg != nil {
		if p, ok := cfg.Config["bwrap"].(string); ok && p != "" {
			s.mu.Lock()
			s.bwrap = p
			s.mu.Unlock()
		}
		for k := range cfg.Config {
			if k != "bwrap" {
				return fmt.Errorf("config.%s: the sandbox backend knows only config.bwrap", k)
			}
		}
	}
	return s.usable()
}

// usable checks once that bwrap can build a sandbox on this machine.
func (s *Sandbox) usable() error {
	s.check.Do(func() {
		s.mu.Lock()
		if s.bwrap == "" {
			s.bwrap = "bwrap"
		}
		p, err := exec.LookPath(s.bwrap)
		s.bwrap = p
		s.mu.Unlock()
		if err != nil {
			s.ok = fmt.Errorf("bwrap is not installed (apt-get install bubblewrap): %v", err)
			return
		}
		out, err := exec.Command(p, append(sandboxFlags(false), "--", "true")...).CombinedOutput()
		if err != nil {
			s.ok = fmt.Errorf("bwrap cannot build a sandbox on this machine (it needs user namespaces, or to run as root): %v: %s", err, strings.TrimSpace(string(out)))
		}
	})
	return s.ok
}

// Describe tells what the sandbox offers: as many steps at once as there
// are cores, no GPUs, no services.
func (s *Sandbox) Describe(ctx context.Context) (*backend.Description, error) {
	return &backend.Description{Name: "sandbox", Version: Version, ProtocolVersion: backend.ProtocolVersion,
		MaxParallelism: runtime.NumCPU()}, nil
}

// Task is the sandbox's lowering of a step, shown in the plan.
type Task struct {
	Argv []string `json:"argv"`
	Dir  string   `json:"dir"`
	// Root, Network and Writable say what the step may touch.
	Root     string   `json:"root"`
	Network  bool     `json:"network"`
	Writable []string `json:"writable"`
	Tmp      string   `json:"tmp"`
}

// Lower shows how a step will run: its command, and the sandbox around it.
func (s *Sandbox) Lower(ctx context.Context, st *schema.Step) (json.RawMessage, error) {
	if st.Run == nil || len(st.Run.Command) == 0 {
		return nil, errors.New("no command to run")
	}
	if st.Run.Resources != nil && st.Run.Resources.GPU > 0 {
		return nil, fmt.Errorf("the sandbox has no GPUs (the step asks for %d)", st.Run.Resources.GPU)
	}
	if st.Run.Workers > 1 {
		return nil, fmt.Errorf("distributed training (%d workers) needs a cluster backend", st.Run.Workers)
	}
	t := Task{Argv: st.Run.Command, Dir: ".", Root: "read-only", Network: st.Run.Network, Tmp: "$TMPDIR=/dev/shm, private and discarded"}
	if st.Run.Code != "" {
		t.Dir = "code"
	}
	for _, in := range st.Inputs {
		t.Writable = append(t.Writable, "in/"+in.Name)
	}
	if len(st.Outputs) > 0 {
		t.Writable = append(t.Writable, "out/")
	}
	t.Writable = append(t.Writable, "metrics.jsonl")
	sort.Strings(t.Writable)
	return json.Marshal(t)
}

// sandboxFlags are bwrap's flags for every sandbox: every namespace of its
// own (the network's too, unless network), no capabilities, the whole file
// system read-only, fresh /dev and /proc, killed with its parent.
func sandboxFlags(network bool) []string {
	f := []string{"--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"}
	if network {
		f = append(f, "--share-net")
	}
	return f
}

// Submit starts the step inside a sandbox: bwrap runs it, with the step's
// inputs, outputs and metrics file bound writable, a private tmpfs on
// /dev/shm as its TMPDIR (the rest of the file system, /tmp included, is
// read-only), and its folder as the working directory.
func (s *Sandbox) Submit(ctx context.Context, t *backend.Task) (string, error) {
	if err := s.usable(); err != nil {
		return "", err
	}
	if len(t.Argv) == 0 {
		return "", errors.New("no command to run")
	}
	args := append([]string{s.bwrap}, sandboxFlags(t.Network)...)
	bind := func(p string) {
		if p != "" && exists(p) {
			args = append(args, "--bind", p, p)
		}
	}
	for _, p := range sortedValues(t.Inputs) {
		bind(p)
	}
	dirs := map[string]bool{}
	for _, p := range t.Outputs {
		dirs[filepath.Dir(p)] = true // the output itself does not exist yet
	}
	for _, d := range sortedKeys(dirs) {
		bind(d)
	}
	if m := t.Env["WEIR_METRICS"]; m != "" {
		// The step appends to it; it must exist to be bound.
		f, err := os.OpenFile(m, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return "", fmt.Errorf("preparing WEIR_METRICS: %w", err)
		}
		f.Close()
		bind(m)
	}
	args = append(args, "--tmpfs", "/dev/shm", "--setenv", "TMPDIR", "/dev/shm", "--chdir", t.Dir, "--")
	wrapped := *t
	wrapped.Argv = append(args, t.Argv...)
	return s.Backend.Submit(ctx, &wrapped)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
