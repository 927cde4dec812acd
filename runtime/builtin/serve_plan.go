package builtin

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// StepPlan is what one step of a rollout would do, found before apply: the
// step's action and reason in the plan, and the lines listed under it
// (the objects and fields the backend would change).
type StepPlan struct {
	Action schema.Action
	Reason string
	Diff   []string
}

// PlanRollout tells what the steps of one serving element's rollout (its
// deploy step, or its canary steps in order) would change on be, found
// without changing anything: the first step deploys the revision of the
// model version it serves (DeployService; be's PlanService compares it
// with what is live), then each step sets its share of traffic as serve
// does. version is that model version; 0 when it is known only at apply
// (why says why: this apply registers the model, or moves its alias), and
// the steps keep their action with a reason saying so.
//
// PlanRollout returns nil without error when be cannot plan services
// (backend.ServicePlanner), and an error when it could not compare (a
// cluster out of reach). A step whose revision is live and unchanged and
// whose traffic stays as it is gets schema.ActionNoop: apply still runs it,
// re-applying the same objects and split, which changes nothing.
func PlanRollout(ctx context.Context, be backend.Interface, steps []*schema.Step, version int, why string, e ServiceEnv) ([]StepPlan, error) {
	p, ok := be.(backend.ServicePlanner)
	if !ok || len(steps) == 0 {
		return nil, nil
	}
	out := make([]StepPlan, len(steps))
	if version == 0 {
		for i, s := range steps {
			out[i] = StepPlan{Action: s.Action, Reason: s.Reason + "; the model version it serves is known only at apply (" + why + ")"}
		}
		return out, nil
	}
	cfgs := make([]*schema.DeployConfig, len(steps))
	for i, s := range steps {
		cfg, err := config[schema.DeployConfig](s)
		if err != nil {
			return nil, err
		}
		cfgs[i] = cfg
	}
	e.Step = steps[0].Address
	svc, err := DeployService(cfgs[0], version, e)
	if err != nil {
		return nil, err
	}
	sp, err := p.PlanService(ctx, svc)
	if err != nil {
		return nil, err
	}
	rev := svc.Revision
	served := cfgs[0].Model
	if cfgs[0].Alias != "" {
		served += "@" + cfgs[0].Alias
	}
	served = rev + " of " + served
	live := map[string]int{}
	for _, r := range sp.Revisions {
		live[r.Name] = r.Weight
	}
	old := busiestOther(&backend.Deployment{Revisions: sp.Revisions}, rev)
	now := live
	for i, cfg := range cfgs {
		split := trafficSplit(rev, old, cfg.Weight)
		next := map[string]int{}
		for name := range now {
			next[name] = 0
		}
		for _, s := range split {
			next[s.Revision] = s.Weight
		}
		moves := !sameTraffic(now, next)
		traffic := "traffic " + weightsText(next)
		if moves {
			traffic += " (now " + weightsText(now) + ")"
		}
		var sp1 StepPlan
		switch {
		case i > 0 && moves:
			sp1 = StepPlan{Action: schema.ActionUpdate, Reason: "move " + traffic}
		case i > 0:
			sp1 = StepPlan{Action: schema.ActionNoop, Reason: "unchanged: " + traffic}
		case sp.Action == schema.ActionCreate:
			sp1 = StepPlan{Action: schema.ActionCreate, Reason: "deploy " + served + ", " + traffic}
		case sp.Action == schema.ActionUpdate:
			sp1 = StepPlan{Action: schema.ActionUpdate, Reason: served + " is live but differs: apply updates it, " + traffic}
		case moves:
			sp1 = StepPlan{Action: schema.ActionUpdate, Reason: served + " is live and unchanged; move " + traffic}
		default:
			sp1 = StepPlan{Action: schema.ActionNoop, Reason: served + " is live and unchanged, " + traffic + " (apply re-applies it, changing nothing)"}
		}
		if i == 0 {
			if sp.Note != "" {
				sp1.Diff = append(sp1.Diff, sp.Note)
			}
			sp1.Diff = append(sp1.Diff, sp.Changes...)
		}
		out[i] = sp1
		now = next
	}
	return out, nil
}

func sameTraffic(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// weightsText is "v3 50%, v2 50%": the revisions with traffic, most first
// ("no traffic" for none).
func weightsText(w map[string]int) string {
	names := make([]string, 0, len(w))
	for n, v := range w {
		if v > 0 {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		if w[names[i]] != w[names[j]] {
			return w[names[i]] > w[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d%%", n, w[n])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
