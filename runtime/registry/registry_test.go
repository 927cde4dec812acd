package registry_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/runtime/registry"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

var ctx = context.Background()

func open(t *testing.T) (*registry.Registry, *state.DB) {
	t.Helper()
	db, err := state.Open(ctx, filepath.Join(t.TempDir(), ".weir", "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return registry.New(db), db
}

var gates = map[string]schema.ColumnRule{
	"auc":     {Source: ">=0.80", Type: "number", Bounds: []schema.Bound{{Op: ">=", Value: 0.80}}},
	"latency": {Source: "<50", Bounds: []schema.Bound{{Op: "<", Value: 50}}},
}

const artifactDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

func register(t *testing.T, r *registry.Registry, metrics map[string]float64) *state.ModelVersion {
	t.Helper()
	mv, err := r.Register(ctx, registry.RegisterRequest{Model: "churn", ArtifactDigest: artifactDigest, Metrics: metrics, Gates: gates,
		Lineage: state.Lineage{SpecHash: "sha256:spec", GitCommit: "abc", Datasets: []state.DatasetRef{{Name: "datasets.customers", Digest: "sha256:d"}}}})
	require.NoError(t, err)
	return mv
}

func auditActions(t *testing.T, db *state.DB) []string {
	t.Helper()
	es, err := db.Audit(ctx, 0, 0)
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Actor+" "+e.Action+" "+e.Subject)
	}
	require.NoError(t, db.VerifyAudit(ctx))
	return out
}

func TestRegisterGates(t *testing.T) {
	r, db := open(t)
	good := register(t, r, map[string]float64{"auc": 0.85, "latency": 20, "extra": 1})
	assert.Equal(t, 1, good.Version)
	assert.Equal(t, state.ModelCandidate, good.Status)
	for _, g := range good.Gates {
		assert.True(t, g.Passed, g.Metric)
	}

	bad := register(t, r, map[string]float64{"auc": 0.71})
	assert.Equal(t, 2, bad.Version)
	assert.Equal(t, state.ModelRejected, bad.Status)
	require.Len(t, bad.Gates, 2)
	assert.Equal(t, state.GateResult{Metric: "auc", Rule: ">=0.80", Value: 0.71, Reported: true, Message: "auc = 0.71 does not satisfy >=0.80"}, bad.Gates[0])
	assert.Equal(t, state.GateResult{Metric: "latency", Rule: "<50", Message: "metric latency was not reported"}, bad.Gates[1])

	// Stored as returned.
	got, err := r.Version(ctx, "churn", 2)
	require.NoError(t, err)
	assert.Equal(t, bad.Gates, got.Gates)
	assert.Equal(t, "abc", got.Lineage.GitCommit)
	assert.Equal(t, map[string]float64{"auc": 0.71}, got.Metrics)

	vs, err := r.Versions(ctx, "churn")
	require.NoError(t, err)
	assert.Len(t, vs, 2)

	assert.Equal(t, []string{"weir model.register churn v1", "weir model.register churn v2"}, auditActions(t, db))
	es, _ := db.Audit(ctx, 1, 1)
	assert.Equal(t, "rejected", es[0].Details["status"])
	assert.Equal(t, []any{"auc = 0.71 does not satisfy >=0.80", "metric latency was not reported"}, es[0].Details["failed_gates"])

	_, err = r.Register(ctx, registry.RegisterRequest{Model: "churn"})
	assert.Error(t, err, "an artifact is required")
}

func TestHolds(t *testing.T) {
	cases := []struct {
		rule  schema.ColumnRule
		x     float64
		holds bool
		why   string
	}{
		{schema.ColumnRule{}, 3, true, ""},
		{schema.ColumnRule{Type: "number", Bounds: []schema.Bound{{Op: ">", Value: 0}, {Op: "<=", Value: 1}}}, 1, true, ""},
		{schema.ColumnRule{Type: "number", Bounds: []schema.Bound{{Op: ">", Value: 0}, {Op: "<=", Value: 1}}}, 0, false, ""},
		{schema.ColumnRule{Bounds: []schema.Bound{{Op: "!=", Value: 0}}}, 0, false, ""},
		{schema.ColumnRule{Type: "int"}, 3, true, ""},
		{schema.ColumnRule{Type: "int"}, 2.5, false, "not a whole number"},
		{schema.ColumnRule{Type: "string"}, 1, false, "a metric is a number, the gate wants a string"},
		{schema.ColumnRule{}, math.NaN(), false, "not a number"},
		{schema.ColumnRule{}, math.Inf(1), false, "not a finite number"},
		{schema.ColumnRule{Enum: []string{"1", "2", "4"}}, 2, true, ""},
		{schema.ColumnRule{Enum: []string{"1", "2", "4"}}, 3, false, "not one of 1, 2, 4"},
		{schema.ColumnRule{Enum: []string{"1.0"}}, 1, true, ""},
		{schema.ColumnRule{Patterns: []string{`^0\.9`}}, 0.95, true, ""},
		{schema.ColumnRule{Patterns: []string{`^0\.9`}}, 0.85, false, `does not match "^0\\.9"`},
		{schema.ColumnRule{NotPatterns: []string{`e`}}, 1e21, false, `matches "e"`},
		{schema.ColumnRule{Patterns: []string{`(`}}, 1, false, `pattern "(" is not a valid regular expression`},
	}
	for _, c := range cases {
		why, holds := registry.Holds(c.rule, c.x)
		assert.Equal(t, c.holds, holds, "%+v %v", c.rule, c.x)
		assert.Equal(t, c.why, why, "%+v %v", c.rule, c.x)
	}
}

func TestCheckGatesMessages(t *testing.T) {
	rs := registry.CheckGates(map[string]float64{"epochs": 2.5, "auc": math.NaN()}, map[string]schema.ColumnRule{
		"epochs": {Type: "int", Bounds: []schema.Bound{{Op: ">", Value: 0}}}, // no Source: rendered from the parts
		"auc":    {Source: ">=0.8", Bounds: []schema.Bound{{Op: ">=", Value: 0.8}}},
	})
	require.Len(t, rs, 2)
	assert.Equal(t, "auc = NaN does not satisfy >=0.8 (not a number)", rs[0].Message)
	assert.Equal(t, "int & >0", rs[1].Rule)
	assert.Equal(t, "epochs = 2.5 does not satisfy int & >0 (not a whole number)", rs[1].Message)
	assert.Empty(t, registry.CheckGates(map[string]float64{"auc": 1}, nil))
}

func TestApprove(t *testing.T) {
	r, db := open(t)
	good := register(t, r, map[string]float64{"auc": 0.9, "latency": 10})
	bad := register(t, r, map[string]float64{"auc": 0.5, "latency": 10})
	approvers := []string{"alice", "team:ml-leads"}

	_, err := r.Approve(ctx, "churn", good.Version, "mallory", approvers, "lgtm")
	require.ErrorIs(t, err, registry.ErrRefused)
	assert.EqualError(t, err, "mallory may not approve model churn: the approvers are alice, team:ml-leads")
	_, err = r.Approve(ctx, "churn", good.Version, "alice", nil, "")
	require.ErrorIs(t, err, registry.ErrRefused)
	assert.Contains(t, err.Error(), "lists no approvers")

	_, err = r.Approve(ctx, "churn", bad.Version, "alice", approvers, "")
	require.ErrorIs(t, err, registry.ErrRefused)
	assert.Equal(t, "model churn version 2 was rejected by its gates (auc = 0.5 does not satisfy >=0.80) and cannot be approved", err.Error())

	_, err = r.Approve(ctx, "churn", 9, "alice", approvers, "")
	require.ErrorIs(t, err, state.ErrNotFound)

	mv, err := r.Approve(ctx, "churn", good.Version, "alice", approvers, "lgtm")
	require.NoError(t, err)
	assert.Equal(t, state.ModelApproved, mv.Status)
	mv, err = r.Approve(ctx, "churn", good.Version, "alice", approvers, "again")
	require.NoError(t, err, "approving twice is a no-op")
	assert.Equal(t, state.ModelApproved, mv.Status)
	// A team entry is matched by an actor that is that exact identity.
	_, err = r.Approve(ctx, "churn", good.Version, "team:ml-leads", approvers, "")
	require.NoError(t, err)

	as, err := r.Approvals(ctx, "churn", good.Version)
	require.NoError(t, err)
	require.Len(t, as, 2)
	assert.Equal(t, "alice", as[0].Approver)
	assert.Equal(t, "lgtm", as[0].Comment)

	assert.Equal(t, []string{
		"weir model.register churn v1",
		"weir model.register churn v2",
		"mallory model.approve.refused churn v1",
		"alice model.approve.refused churn v1",
		"alice model.approve churn v1",
		"team:ml-leads model.approve churn v1",
	}, auditActions(t, db))
}

func TestPromoteAndRollback(t *testing.T) {
	r, db := open(t)
	v1 := register(t, r, map[string]float64{"auc": 0.9, "latency": 10})
	v2 := register(t, r, map[string]float64{"auc": 0.91, "latency": 10})
	rejected := register(t, r, map[string]float64{"auc": 0.1, "latency": 10})
	approvers := []string{"alice"}

	_, err := r.Promote(ctx, "churn", rejected.Version, "prod", "bob", false)
	require.ErrorIs(t, err, registry.ErrRefused)
	assert.Contains(t, err.Error(), "was rejected by its gates")

	_, err = r.Promote(ctx, "churn", v1.Version, "prod", "bob", true)
	require.ErrorIs(t, err, registry.ErrRefused)
	assert.Equal(t, "model churn version 1 needs an approval before it can be promoted to prod", err.Error())

	// Without required approval a candidate may go to staging.
	c, err := r.Promote(ctx, "churn", v1.Version, "staging", "bob", false)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Version)

	_, err = r.Approve(ctx, "churn", v1.Version, "alice", approvers, "")
	require.NoError(t, err)
	_, err = r.Approve(ctx, "churn", v2.Version, "alice", approvers, "")
	require.NoError(t, err)
	_, err = r.Promote(ctx, "churn", v1.Version, "prod", "bob", true)
	require.NoError(t, err)
	c, err = r.Promote(ctx, "churn", v2.Version, "prod", "bob", true)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Previous)
	c, err = r.Promote(ctx, "churn", v2.Version, "prod", "bob", true)
	require.NoError(t, err)
	assert.Nil(t, c, "already there")

	mv, err := r.Resolve(ctx, "churn", "prod")
	require.NoError(t, err)
	assert.Equal(t, 2, mv.Version)

	c, err = r.Rollback(ctx, "churn", "prod", "carol")
	require.NoError(t, err)
	assert.Equal(t, 1, c.Version)
	assert.Equal(t, 2, c.Previous)
	mv, err = r.Resolve(ctx, "churn", "prod")
	require.NoError(t, err)
	assert.Equal(t, 1, mv.Version)

	_, err = r.Rollback(ctx, "churn", "prod", "carol")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `alias "prod" of model churn has no earlier version to roll back to`)
	_, err = r.Rollback(ctx, "churn", "canary", "carol")
	require.ErrorIs(t, err, state.ErrNotFound)
	_, err = r.Resolve(ctx, "churn", "canary")
	require.ErrorIs(t, err, state.ErrNotFound)

	h, err := r.History(ctx, "churn", "prod")
	require.NoError(t, err)
	require.Len(t, h, 3)
	assert.Equal(t, "rollback", h[2].Action)
	assert.Equal(t, "carol", h[2].Actor)

	assert.Equal(t, []string{
		"weir model.register churn v1",
		"weir model.register churn v2",
		"weir model.register churn v3",
		"bob model.promote churn v1",
		"alice model.approve churn v1",
		"alice model.approve churn v2",
		"bob model.promote churn v1",
		"bob model.promote churn v2",
		"carol model.rollback churn v1",
	}, auditActions(t, db))
	es, err := db.Audit(ctx, 7, 1)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"alias": "prod", "version": 2.0, "previous": 1.0}, es[0].Details)
}

// TestSerialTracksRegistry: every registry change makes plans stale.
func TestSerialTracksRegistry(t *testing.T) {
	r, db := open(t)
	serial := func() int64 {
		s, err := db.Serial(ctx)
		require.NoError(t, err)
		return s
	}
	register(t, r, map[string]float64{"auc": 0.9, "latency": 1})
	assert.Equal(t, int64(1), serial())
	_, err := r.Approve(ctx, "churn", 1, "alice", []string{"alice"}, "")
	require.NoError(t, err)
	assert.Equal(t, int64(2), serial())
	_, err = r.Approve(ctx, "churn", 1, "bob", []string{"alice"}, "")
	require.Error(t, err)
	assert.Equal(t, int64(2), serial(), "a refusal changes nothing")
	_, err = r.Promote(ctx, "churn", 1, "prod", "alice", true)
	require.NoError(t, err)
	assert.Equal(t, int64(3), serial())
	_, err = r.Promote(ctx, "churn", 1, "prod", "alice", true)
	require.NoError(t, err)
	assert.Equal(t, int64(3), serial(), "a no-op promote changes nothing")
}
