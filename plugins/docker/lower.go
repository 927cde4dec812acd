package docker

import (
	"encoding/json"
	"fmt"
	"sort"

	"weir.dev/weir/schema"
)

// Task is the docker backend's lowering of a step: the container it will
// create, as the plan shows it.
type Task struct {
	Image string   `json:"image"`
	Argv  []string `json:"argv"`
	// WorkingDir is /weir, or /weir/code when the code folder is packaged
	// into the image (Code names it).
	WorkingDir string `json:"working_dir"`
	Code       string `json:"code,omitempty"`
	// Env lists the variables the container gets besides the contract's
	// WEIR_* ones (values of secrets are never shown).
	Env     []string `json:"env,omitempty"`
	CPUs    float64  `json:"cpus,omitempty"`
	Memory  string   `json:"memory,omitempty"`
	GPUs    int      `json:"gpus,omitempty"`
	Network string   `json:"network"`
}

// Lower turns a step into the container spec shown in the plan.
func Lower(s *schema.Step) (json.RawMessage, error) {
	if s.Run == nil || len(s.Run.Command) == 0 {
		return nil, fmt.Errorf("no command to run")
	}
	if s.Run.Image == "" {
		return nil, fmt.Errorf("the docker backend runs steps in images, and this step names none (run.image)")
	}
	if s.Run.Workers > 1 {
		return nil, fmt.Errorf("distributed training (%d workers) needs a cluster backend such as kubernetes", s.Run.Workers)
	}
	t := Task{Image: s.Run.Image, Argv: s.Run.Command, WorkingDir: Root, Network: "none"}
	if s.Run.Code != "" {
		t.WorkingDir, t.Code = Root+"/code", s.Run.Code
	}
	for k := range s.Run.Env {
		t.Env = append(t.Env, k)
	}
	sort.Strings(t.Env)
	if r := s.Run.Resources; r != nil {
		if r.Memory != "" {
			if _, err := ParseQuantity(r.Memory); err != nil {
				return nil, fmt.Errorf("resources.memory: %w", err)
			}
		}
		t.CPUs, t.Memory, t.GPUs = r.CPU, r.Memory, r.GPU
	}
	if s.Run.Network {
		t.Network = "bridge"
	}
	return json.Marshal(t)
}
