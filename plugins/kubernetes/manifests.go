package kubernetes

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// Manifest is one object of a project's manifests and the address of the
// spec element or step it comes from.
type Manifest struct {
	Source string
	Object Object
	// Note is a comment written above the object (what the manifest cannot
	// say by itself).
	Note string
}

// Skipped is a step the manifests leave out, and why.
type Skipped struct {
	Address string
	Reason  string
}

// Manifests are the Kubernetes objects of a whole project, for teams that
// deploy through GitOps rather than weir apply.
type Manifests struct {
	Objects []Manifest
	// Skipped are the steps that run elsewhere: built-in steps run by weir
	// itself (ingest, validate, register ...) and steps on backends that
	// are not of kind kubernetes.
	Skipped []Skipped
}

// BuildManifests turns a compiled plan into the project's Kubernetes
// objects: a Job (with its Service or PodGroup) per step on a kubernetes
// backend, as StepWorkload builds them, and per serving element its
// Deployment, Service, PodDisruptionBudget and HorizontalPodAutoscaler, as
// Deploy would apply them for one revision taking all the traffic. A
// canary's traffic steps are a rollout in time, which weir apply runs; the
// manifests hold its end state. Images are pinned to the plan's digests
// (weir.lock) where it has them. proj supplies the defaults a serving
// element inherits (image, resources); nil for none.
//
// BuildManifests is pure: the same plan gives the same objects. Errors are
// diagnostics naming the step or element.
func BuildManifests(p *schema.Plan, proj *schema.Project) (*Manifests, diag.Diagnostics) {
	m := &Manifests{}
	var ds diag.Diagnostics
	configs := map[string]*Config{}
	kinds := 0
	for _, name := range backendNames(p.Backends) {
		b := p.Backends[name]
		if b == nil || b.Kind != "kubernetes" {
			continue
		}
		kinds++
		cfg, err := ParseConfig(name, b)
		if err != nil {
			ds = append(ds, diag.Errorf("backend", "backends."+name, nil, "backends.%s: %v", name, err))
			continue
		}
		if cfg.Project == "" {
			cfg.Project = p.Project
		}
		configs[name] = cfg
	}
	if kinds == 0 {
		ds = append(ds, diag.Errorf("no-kubernetes-backend", "backends", nil,
			"no step of project %s runs on a backend of kind kubernetes: add one to backends and name it in defaults.backend or a step's backend", p.Project))
		return nil, ds
	}
	if ds.HasErrors() {
		return nil, ds
	}
	// Each serving element's last deploy step holds its end state.
	serving := map[string]*schema.Step{}
	var order []string
	for _, s := range p.Steps {
		switch {
		case s.Kind == "deploy" || s.Kind == "canary":
			if _, ok := serving[s.Element]; !ok {
				order = append(order, s.Element)
			}
			serving[s.Element] = s
		case s.Run == nil:
			m.Skipped = append(m.Skipped, Skipped{s.Address, "run by weir itself (" + s.Kind + ")"})
		case configs[s.Backend] == nil:
			m.Skipped = append(m.Skipped, Skipped{s.Address, "runs on backend " + s.Backend + ", not of kind kubernetes"})
		default:
			objs, err := stepManifests(configs[s.Backend], s, p.Images)
			if err != nil {
				ds = append(ds, diag.Diagnostic{Severity: diag.Error, Code: "kubernetes", Address: s.Address, Range: s.Source,
					Summary: fmt.Sprintf("%s: %v", s.Address, err)})
				continue
			}
			m.Objects = append(m.Objects, objs...)
		}
	}
	for _, el := range order {
		s := serving[el]
		cfg := configs[s.Backend]
		if cfg == nil {
			m.Skipped = append(m.Skipped, Skipped{el, "served by backend " + s.Backend + ", not of kind kubernetes"})
			continue
		}
		objs, err := servingManifests(cfg, s, proj, p.Images)
		if err != nil {
			ds = append(ds, diag.Diagnostic{Severity: diag.Error, Code: "kubernetes", Address: el, Range: s.Source, Summary: err.Error()})
			continue
		}
		m.Objects = append(m.Objects, objs...)
	}
	if ds.HasErrors() {
		return nil, ds
	}
	return m, ds
}

// pin adds an image's digest from the plan's pins ("repo:tag@sha256:...").
func pin(image string, pins map[string]string) string {
	if d, ok := pins[image]; ok && d != "" && !strings.Contains(image, "@") {
		return image + "@" + d
	}
	return image
}

func stepManifests(cfg *Config, s *schema.Step, pins map[string]string) ([]Manifest, error) {
	st := *s
	run := *s.Run
	run.Image = pin(run.Image, pins)
	st.Run = &run
	w, err := StepWorkload(cfg, &st, BuildOptions{})
	if err != nil {
		return nil, err
	}
	note := ""
	if len(s.Needs) > 0 {
		note = "runs after " + strings.Join(s.Needs, ", ") + " (weir apply orders steps; a GitOps tool applies all at once)"
	}
	out := []Manifest{{Source: s.Address, Note: note, Object: Object{APIVersion: "batch/v1", Kind: "Job",
		Namespace: w.Job.Namespace, Name: w.Job.Name, Config: w.Job}}}
	if w.Service != nil {
		out = append(out, Manifest{Source: s.Address, Object: Object{APIVersion: "v1", Kind: "Service",
			Namespace: w.Service.Namespace, Name: w.Service.Name, Config: w.Service}})
	}
	if w.PodGroup != nil {
		out = append(out, Manifest{Source: s.Address, Object: Object{APIVersion: w.PodGroup.GetAPIVersion(), Kind: w.PodGroup.GetKind(),
			Namespace: w.PodGroup.GetNamespace(), Name: w.PodGroup.GetName(), Config: w.PodGroup}})
	}
	return out, nil
}

// ServingSpecOf is the spec of a serving element's deploy step on a
// kubernetes backend: its server (image and resources default to the
// project's defaults), replicas and autoscaling, one revision.
func ServingSpecOf(cfg *Config, s *schema.Step, proj *schema.Project) (*ServingSpec, error) {
	var dc schema.DeployConfig
	if err := json.Unmarshal(s.Config, &dc); err != nil || dc.Spec == nil {
		return nil, fmt.Errorf("%s: the step holds no serving spec", s.Address)
	}
	sv := dc.Spec
	sp := &ServingSpec{
		Address: s.Element, Project: cfg.Project, Namespace: cfg.Namespace, Port: sv.Port,
		Inputs: []string{"model"}, Replicas: 1,
		ServiceAccount: cfg.ServiceAccount, GPUResource: cfg.GPUResource, GPUTaint: cfg.GPUTaint, GPUNodeLabel: cfg.GPUNodeLabel,
		SecretName:  cfg.SecretName,
		Annotations: map[string]string{"weir.dev/model": dc.Model + aliasSuffix(dc.Alias)},
	}
	if sp.Address == "" {
		sp.Address = "serving." + dc.Serving
	}
	var res *schema.Resources
	if proj != nil && proj.Defaults != nil {
		sp.Image, res = proj.Defaults.Image, proj.Defaults.Resources
	}
	if r := sv.Server; r != nil {
		if r.Image != "" {
			sp.Image = r.Image
		}
		sp.Command = r.Command
		if r.Resources != nil {
			res = r.Resources
		}
		for k, v := range r.Env {
			if v.Secret != "" {
				sp.SecretEnv = append(sp.SecretEnv, k)
			} else {
				if sp.Env == nil {
					sp.Env = map[string]string{}
				}
				sp.Env[k] = v.Value
			}
		}
		if r.Code != "" {
			return nil, fmt.Errorf("%s.server.code: a code folder must be built into the server's image for Kubernetes manifests; name an image that holds it", s.Element)
		}
	}
	if res != nil {
		sp.CPU, sp.Memory, sp.GPU, sp.GPUType = res.CPU, res.Memory, res.GPU, res.GPUType
	}
	if a := sv.Autoscale; a != nil {
		if a.Min != nil {
			sp.Replicas = max(*a.Min, 1)
		}
		sp.MaxReplicas = a.Max
		if a.Max > 0 && a.Max < sp.Replicas {
			return nil, fmt.Errorf("%s.autoscale: max %d is below min %d", s.Element, a.Max, sp.Replicas)
		}
		sp.TargetCPU, sp.TargetRPS = a.TargetCPU, a.TargetRPS
	}
	if err := sp.Check(); err != nil {
		return nil, err
	}
	return sp, nil
}

func aliasSuffix(alias string) string {
	if alias == "" {
		return ""
	}
	return "@" + alias
}

func servingManifests(cfg *Config, s *schema.Step, proj *schema.Project, pins map[string]string) ([]Manifest, error) {
	sp, err := ServingSpecOf(cfg, s, proj)
	if err != nil {
		return nil, err
	}
	sp.Image = pin(sp.Image, pins)
	note := ""
	var dc schema.DeployConfig
	_ = json.Unmarshal(s.Config, &dc)
	if dc.Spec != nil && dc.Spec.Canary != nil {
		steps := make([]string, len(dc.Spec.Canary.Steps))
		for i, w := range dc.Spec.Canary.Steps {
			steps[i] = fmt.Sprint(w)
		}
		note = "canary steps " + strings.Join(steps, "%, ") + "% are a rollout in time, which weir apply runs; this is its end state"
	}
	var out []Manifest
	for _, o := range append(sp.RevisionObjects("", 100), sp.SharedObjects("", nil)...) {
		out = append(out, Manifest{Source: sp.Address, Object: o, Note: note})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Object.Kind < out[j].Object.Kind })
	return out, nil
}

func backendNames(m map[string]*schema.Backend) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
