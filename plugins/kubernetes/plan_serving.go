package kubernetes

import (
	"context"
	"fmt"
	"strings"
	"time"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// PlanService tells what Deploy would change in the cluster for svc,
// changing nothing (backend.ServicePlanner): Serving.PlanDeploy's diff of
// the revision's objects against the live ones (server-side dry-run apply,
// so a Deployment scaled by hand shows as "~ ... spec.replicas: 3 -> 1"),
// the live revisions with their weights, and the traffic mode. It gives up
// after 20 seconds.
func (b *Backend) PlanService(ctx context.Context, svc *backend.Service) (*backend.ServicePlan, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	srv, err := b.serving(ctx)
	if err != nil {
		return nil, err
	}
	return srv.PlanService(ctx, svc)
}

// PlanService is PlanDeploy as a backend.ServicePlan: the action is create
// when the revision's Deployment does not exist, update when any object
// would change, else noop; Changes render each changed object as
// Change.String does, with the values of a Secret's fields hidden.
func (s *Serving) PlanService(ctx context.Context, svc *backend.Service) (*backend.ServicePlan, error) {
	p, err := s.PlanDeploy(ctx, svc)
	if err != nil {
		return nil, err
	}
	sp, _, err := s.Spec(svc)
	if err != nil {
		return nil, err
	}
	revs, err := s.revisions(ctx, sp.base())
	if err != nil {
		return nil, err
	}
	out := &backend.ServicePlan{Action: schema.ActionNoop, Note: trafficMessage(p.Mode, p.Why)}
	for _, r := range revs {
		out.Revisions = append(out.Revisions, backend.Revision{Name: r.name, Weight: r.weight})
	}
	deployment := "apps/v1 Deployment " + sp.Namespace + "/" + sp.name()
	for _, c := range p.Changes {
		if c.Action == schema.ActionNoop {
			continue
		}
		if c.Object == deployment && c.Action == schema.ActionCreate {
			out.Action = schema.ActionCreate
		} else if out.Action == schema.ActionNoop {
			out.Action = schema.ActionUpdate
		}
		out.Changes = append(out.Changes, planLines(c)...)
	}
	return out, nil
}

// planLines renders a change as the plan lists it under a step: the
// object, then its changed fields indented. A Secret's values are never
// shown, only which of its fields change.
func planLines(c Change) []string {
	if !strings.HasPrefix(c.Object, "v1 Secret ") {
		return strings.Split(c.String(), "\n")
	}
	lines := []string{symbol(c.Action) + " " + c.Object}
	for _, f := range c.Fields {
		lines = append(lines, fmt.Sprintf("    %s: (sensitive value changes)", f.Path))
	}
	return lines
}
