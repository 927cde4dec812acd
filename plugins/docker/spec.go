package docker

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Root is where the step contract lives inside a container: /weir/in/NAME,
// /weir/out/NAME, /weir/tmp, /weir/params.json, /weir/metrics.jsonl and
// /weir/code for the code folder.
const Root = "/weir"

// Labels every container of Weir carries.
const (
	LabelProject = "weir.project"
	LabelRun     = "weir.run"
	LabelStep    = "weir.step"
	LabelAttempt = "weir.attempt"
	// LabelDir is the project folder: two checkouts of one project on a
	// machine never clean up each other's containers.
	LabelDir = "weir.dir"
)

// spec is what one container is made of, before it is created.
type spec struct {
	Config *container.Config
	Host   *container.HostConfig
}

// containerSpec turns a task into a container's configuration: the
// task's host paths rewritten to /weir/ ones and bind-mounted there (the
// inputs read-only), its limits, its GPUs and its network. image is the
// reference to run; it already holds the code folder when the task has one.
// containerSpec is pure: it reads only whether params.json exists.
func containerSpec(t *backend.Task, image string, o *Options) (*spec, error) {
	if len(t.Argv) == 0 {
		return nil, fmt.Errorf("no command to run")
	}
	if !filepath.IsAbs(t.WorkDir) {
		return nil, fmt.Errorf("the work folder %q is not an absolute path", t.WorkDir)
	}
	work := filepath.Clean(t.WorkDir)
	inContainer := func(p string) (string, bool) { return backend.ContainerPath(work, p, Root) }
	mounts := []mount.Mount{
		{Type: mount.TypeBind, Source: filepath.Join(work, "in"), Target: Root + "/in", ReadOnly: true},
		{Type: mount.TypeBind, Source: filepath.Join(work, "out"), Target: Root + "/out"},
		{Type: mount.TypeBind, Source: filepath.Join(work, "tmp"), Target: Root + "/tmp"},
	}
	env := map[string]string{}
	for k, v := range t.Env {
		if k == "PATH" {
			continue // the image's PATH, not the host's
		}
		env[k] = v
	}
	// The contract's files: each host path becomes its /weir/ equivalent.
	if p := t.Env["WEIR_METRICS"]; p != "" {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: p, Target: Root + "/metrics.jsonl"})
		env["WEIR_METRICS"] = Root + "/metrics.jsonl"
	}
	if p := t.Env["WEIR_PARAMS"]; p != "" {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: p, Target: Root + "/params.json", ReadOnly: true})
		env["WEIR_PARAMS"] = Root + "/params.json"
	}
	for _, name := range slices.Sorted(maps.Keys(t.Inputs)) {
		p := t.Inputs[name]
		target := Root + "/in/" + name
		if c, ok := inContainer(p); !ok || !strings.HasPrefix(c, Root+"/in/") {
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: p, Target: target, ReadOnly: true})
		} else {
			target = c
		}
		env["WEIR_INPUT_"+backend.EnvName(name)] = target
	}
	for _, name := range slices.Sorted(maps.Keys(t.Outputs)) {
		c, ok := inContainer(t.Outputs[name])
		if !ok || !strings.HasPrefix(c, Root+"/out/") {
			return nil, fmt.Errorf("output %s is at %s, outside the work folder's out/", name, t.Outputs[name])
		}
		env["WEIR_OUTPUT_"+backend.EnvName(name)] = c
	}
	// Every other variable naming the work folder (HOME, TMPDIR) follows it.
	for k, v := range env {
		if c, ok := inContainer(v); ok && filepath.IsAbs(v) {
			env[k] = c
		}
	}
	dir := Root
	if t.Dir != "" {
		c, ok := inContainer(t.Dir)
		if !ok {
			return nil, fmt.Errorf("the step's folder %s is outside its work folder", t.Dir)
		}
		dir = c
	}
	cfg := &container.Config{
		Image:      image,
		Entrypoint: t.Argv[:1],
		Cmd:        t.Argv[1:],
		WorkingDir: dir,
		Env:        envList(env),
		Labels: map[string]string{
			LabelProject: o.Project,
			LabelRun:     t.RunID,
			LabelStep:    t.Step,
			LabelAttempt: strconv.Itoa(t.Attempt),
		},
	}
	if o.ProjectDir != "" {
		cfg.Labels[LabelDir] = o.ProjectDir
	}
	if uid := os.Getuid(); uid > 0 {
		// Outputs belong to the user running weir, who must delete them.
		cfg.User = fmt.Sprintf("%d:%d", uid, os.Getgid())
	}
	yes := true
	hc := &container.HostConfig{
		Mounts:      mounts,
		NetworkMode: "none",
		// An init process forwards the stop signal to the step and reaps
		// its children: a step is any program, not one written as PID 1.
		Init: &yes,
	}
	if t.Network {
		hc.NetworkMode = "bridge"
	}
	if r := t.Resources; r != nil {
		if r.CPU > 0 {
			hc.NanoCPUs = int64(math.Round(r.CPU * 1e9))
		}
		if r.Memory != "" {
			n, err := ParseQuantity(r.Memory)
			if err != nil {
				return nil, fmt.Errorf("resources.memory: %w", err)
			}
			hc.Memory = n
			hc.MemorySwap = n // no swap: over the limit is out of memory
		}
		if r.GPU > 0 {
			hc.DeviceRequests = []container.DeviceRequest{gpuRequest(r)}
		}
	}
	return &spec{Config: cfg, Host: hc}, nil
}

// gpuRequest asks the engine for GPUs the way `docker run --gpus N` does.
func gpuRequest(r *schema.Resources) container.DeviceRequest {
	caps := []string{"gpu"}
	if r.GPUType != "" {
		caps = append(caps, r.GPUType)
	}
	return container.DeviceRequest{Count: r.GPU, Capabilities: [][]string{caps}}
}

var quantityRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)

// ParseQuantity reads a memory size as the spec writes it: bytes, or a
// number with a Ki/Mi/Gi/Ti or k/M/G/T suffix.
func ParseQuantity(s string) (int64, error) {
	m := quantityRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a memory size (e.g. 512Mi, 4Gi)", s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
		"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m[2]]
	n := f * mult
	if n < 1 || n > math.MaxInt64/2 {
		return 0, fmt.Errorf("memory size %q is out of range", s)
	}
	return int64(n), nil
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}
