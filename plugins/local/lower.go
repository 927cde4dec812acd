package local

import (
	"encoding/json"
	"fmt"
	"sort"

	"weir.dev/weir/schema"
)

// Task is the local backend's lowering of a step: the process it will
// start. Paths are relative to the step's work folder; the code folder is
// copied to code/ there, and the process starts in it.
type Task struct {
	Argv []string `json:"argv"`
	Dir  string   `json:"dir"`
	// Env lists the variables the process gets besides the contract's
	// WEIR_* ones (values of secrets are never shown).
	Env []string `json:"env,omitempty"`
	// GPUs is the number of GPU slots the step takes.
	GPUs int `json:"gpus,omitempty"`
}

// Lower turns a step into the local process spec shown in the plan.
func Lower(s *schema.Step) (json.RawMessage, error) {
	if s.Run == nil || len(s.Run.Command) == 0 {
		return nil, fmt.Errorf("no command to run")
	}
	t := Task{Argv: s.Run.Command, Dir: "."}
	if s.Run.Code != "" {
		t.Dir = "code"
	}
	for k := range s.Run.Env {
		t.Env = append(t.Env, k)
	}
	sort.Strings(t.Env)
	if s.Run.Resources != nil {
		t.GPUs = s.Run.Resources.GPU
	}
	if s.Run.Workers > 1 {
		return nil, fmt.Errorf("distributed training (%d workers) needs a cluster backend such as kubernetes", s.Run.Workers)
	}
	return json.Marshal(t)
}
