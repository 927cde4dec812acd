package builtin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/builtin"
	"weir.dev/weir/schema"
)

// planner is services that can also plan: its revisions are what is live,
// and it reports a revision it has as unchanged, or drifted when told.
type planner struct {
	services
	drift []string
	asked *backend.Service
}

func (p *planner) PlanService(_ context.Context, s *backend.Service) (*backend.ServicePlan, error) {
	p.asked = s
	sp := &backend.ServicePlan{Action: schema.ActionCreate, Revisions: p.revisions, Note: "traffic split by magic"}
	for _, r := range p.revisions {
		if r.Name == s.Revision {
			sp.Action = schema.ActionNoop
		}
	}
	if sp.Action == schema.ActionNoop && len(p.drift) > 0 {
		sp.Action, sp.Changes = schema.ActionUpdate, p.drift
	} else if sp.Action == schema.ActionCreate {
		sp.Changes = []string{"+ deployment " + s.Revision}
	}
	return sp, nil
}

func TestPlanRollout(t *testing.T) {
	ctx := context.Background()
	env := builtin.ServiceEnv{WorkDir: "/w", BaseEnv: map[string]string{"PATH": "/bin"}}

	// A new version: deployed at the first step next to the live one, then
	// given all the traffic.
	p := &planner{services: services{revisions: []backend.Revision{{Name: "v1", Weight: 100}}}}
	got, err := builtin.PlanRollout(ctx, p, rollout(50, 100), 2, "", env)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, schema.ActionCreate, got[0].Action)
	assert.Equal(t, "deploy v2 of models.m@production, traffic v1 50%, v2 50% (now v1 100%)", got[0].Reason)
	assert.Equal(t, []string{"traffic split by magic", "+ deployment v2"}, got[0].Diff)
	assert.Equal(t, schema.ActionUpdate, got[1].Action)
	assert.Equal(t, "move traffic v2 100% (now v1 50%, v2 50%)", got[1].Reason)
	assert.Empty(t, got[1].Diff)
	// The revision compared is the one apply deploys.
	require.NotNil(t, p.asked)
	assert.Equal(t, "serving.api", p.asked.Name)
	assert.Equal(t, "v2", p.asked.Revision)
	assert.Equal(t, "fast", p.asked.Env["MODE"])
	assert.Equal(t, "9000", p.asked.Env["PORT"])

	// The version live with all the traffic: nothing changes.
	p = &planner{services: services{revisions: []backend.Revision{{Name: "v1", Weight: 100}}}}
	got, err = builtin.PlanRollout(ctx, p, rollout(50, 100), 1, "", env)
	require.NoError(t, err)
	assert.Equal(t, schema.ActionNoop, got[0].Action)
	assert.Contains(t, got[0].Reason, "v1 of models.m@production is live and unchanged, traffic v1 100%")
	assert.Equal(t, schema.ActionNoop, got[1].Action)

	// Changed by hand: the first step updates it, listing the fields.
	p = &planner{services: services{revisions: []backend.Revision{{Name: "v1", Weight: 100}}},
		drift: []string{"~ deployment v1", "    spec.replicas: 3 -> 1"}}
	got, err = builtin.PlanRollout(ctx, p, rollout(100), 1, "", env)
	require.NoError(t, err)
	assert.Equal(t, schema.ActionUpdate, got[0].Action)
	assert.True(t, strings.HasPrefix(got[0].Reason, "v1 of models.m@production is live but differs"), got[0].Reason)
	assert.Contains(t, got[0].Diff, "    spec.replicas: 3 -> 1")

	// Live but its canary stopped half way: the traffic moves.
	p = &planner{services: services{revisions: []backend.Revision{{Name: "v1", Weight: 50}, {Name: "v2", Weight: 50}}}}
	got, err = builtin.PlanRollout(ctx, p, rollout(50, 100), 2, "", env)
	require.NoError(t, err)
	assert.Equal(t, schema.ActionNoop, got[0].Action, got[0].Reason)
	assert.Equal(t, schema.ActionUpdate, got[1].Action)

	// The version known only at apply: the steps stay as planned.
	steps := rollout(100)
	steps[0].Action, steps[0].Reason = schema.ActionCreate, "deploy models.m@production at 100% traffic"
	got, err = builtin.PlanRollout(ctx, p, steps, 0, "this apply registers models.m", env)
	require.NoError(t, err)
	assert.Equal(t, []builtin.StepPlan{{Action: schema.ActionCreate,
		Reason: "deploy models.m@production at 100% traffic; the model version it serves is known only at apply (this apply registers models.m)"}}, got)

	// A backend that cannot plan services: nothing to say.
	got, err = builtin.PlanRollout(ctx, &services{}, rollout(100), 1, "", env)
	require.NoError(t, err)
	assert.Nil(t, got)
}
