package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// ErrRefused is wrapped by the errors of actions the rules forbid: an actor
// who is not an approver, approving or promoting a rejected version,
// promoting an unapproved one when approval is required.
var ErrRefused = errors.New("refused by the model registry's rules")

type refusal struct{ msg string }

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return ErrRefused }

func refuse(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}

// Registry is the model registry over one state database.
type Registry struct {
	db *state.DB
}

// New returns the registry kept in db.
func New(db *state.DB) *Registry { return &Registry{db: db} }

// RegisterRequest asks to register a new version of a model.
type RegisterRequest struct {
	Model string
	// ExecutionID and RunID name the execution that produced the model
	// (0 and "" if none).
	ExecutionID int64
	RunID       string
	// ArtifactDigest is the model's blob in the artifact store.
	ArtifactDigest string
	// Metrics are the metrics the gates are checked against; they are
	// stored with the version.
	Metrics map[string]float64
	// Gates map a metric to the rule it must satisfy.
	Gates   map[string]schema.ColumnRule
	Lineage state.Lineage
	// Actor is who registers; "weir" when empty (apply registers).
	Actor string
}

// Register records a new version of req.Model, numbered one past the
// model's latest. Its status is candidate when every gate holds and rejected
// otherwise; the version's Gates say which failed and why. A rejected version
// is still recorded (and returned without error): it is history.
func (r *Registry) Register(ctx context.Context, req RegisterRequest) (*state.ModelVersion, error) {
	if req.Model == "" {
		return nil, errors.New("registry: a model name is required")
	}
	if req.ArtifactDigest == "" {
		return nil, fmt.Errorf("registry: model %s: an artifact digest is required", req.Model)
	}
	actor := req.Actor
	if actor == "" {
		actor = "weir"
	}
	gates := CheckGates(req.Metrics, req.Gates)
	status := state.ModelCandidate
	var failed []string
	for _, g := range gates {
		if !g.Passed {
			status = state.ModelRejected
			failed = append(failed, g.Message)
		}
	}
	var mv *state.ModelVersion
	err := r.db.Update(ctx, func(tx *state.Tx) error {
		var err error
		mv, err = tx.AddModelVersion(state.ModelVersion{
			Model: req.Model, ExecutionID: req.ExecutionID, RunID: req.RunID, ArtifactDigest: req.ArtifactDigest,
			Status: status, Gates: gates, Metrics: req.Metrics, Lineage: req.Lineage,
		})
		if err != nil {
			return err
		}
		details := map[string]any{"status": string(status), "artifact": req.ArtifactDigest}
		if req.RunID != "" {
			details["run"] = req.RunID
		}
		if len(failed) > 0 {
			details["failed_gates"] = failed
		}
		_, err = tx.AppendAudit(state.Event{Actor: actor, Action: "model.register", Subject: subject(mv.Model, mv.Version), Details: details})
		return err
	})
	if err != nil {
		return nil, err
	}
	return mv, nil
}

// Approve records actor's approval of a version and makes a candidate
// approved. actor must be one of approvers, compared exactly: Weir has no
// directory of teams, so an entry "team:ml" is matched by an actor that
// identifies as "team:ml" (a CI identity, say), not by its members. A
// rejected version cannot be approved. Approving twice is a no-op. A refusal
// wraps ErrRefused and is itself recorded in the audit log.
func (r *Registry) Approve(ctx context.Context, model string, version int, actor string, approvers []string, comment string) (*state.ModelVersion, error) {
	if actor == "" {
		return nil, errors.New("registry: an actor is required to approve")
	}
	if !slices.Contains(approvers, actor) {
		var err error
		if len(approvers) == 0 {
			err = refuse("%s may not approve model %s: the model lists no approvers", actor, model)
		} else {
			err = refuse("%s may not approve model %s: the approvers are %s", actor, model, strings.Join(approvers, ", "))
		}
		r.auditRefusal(ctx, actor, "model.approve.refused", subject(model, version), err)
		return nil, err
	}
	var mv *state.ModelVersion
	err := r.db.Update(ctx, func(tx *state.Tx) error {
		var err error
		if mv, err = tx.ModelVersion(model, version); err != nil {
			return err
		}
		if mv.Status == state.ModelRejected {
			return refuse("model %s version %d was rejected by its gates (%s) and cannot be approved", model, version, failedGates(mv))
		}
		added, err := tx.AddApproval(state.Approval{Model: model, Version: version, Approver: actor, Comment: comment})
		if err != nil || !added {
			return err
		}
		if mv.Status != state.ModelApproved {
			if err := tx.SetModelStatus(model, version, state.ModelApproved); err != nil {
				return err
			}
			mv.Status = state.ModelApproved
		}
		details := map[string]any{}
		if comment != "" {
			details["comment"] = comment
		}
		_, err = tx.AppendAudit(state.Event{Actor: actor, Action: "model.approve", Subject: subject(model, version), Details: details})
		return err
	})
	if err != nil {
		return nil, err
	}
	return mv, nil
}

// auditRefusal records a refused action in its own transaction; a failure to
// record it is not the caller's error, which stays the refusal.
func (r *Registry) auditRefusal(ctx context.Context, actor, action, subj string, why error) {
	r.db.AppendAudit(ctx, state.Event{Actor: actor, Action: action, Subject: subj, Details: map[string]any{"reason": why.Error()}})
}

// Promote points alias at a version. It is refused (ErrRefused) for a
// rejected version, and, when approvalRequired, for a version that is not
// approved. It returns the alias move, or nil when the alias already pointed
// at the version (nothing changes, nothing is audited).
func (r *Registry) Promote(ctx context.Context, model string, version int, alias, actor string, approvalRequired bool) (*state.AliasChange, error) {
	if actor == "" {
		return nil, errors.New("registry: an actor is required to promote")
	}
	if alias == "" {
		return nil, fmt.Errorf("registry: promoting model %s version %d: an alias is required", model, version)
	}
	var change *state.AliasChange
	err := r.db.Update(ctx, func(tx *state.Tx) error {
		mv, err := tx.ModelVersion(model, version)
		if err != nil {
			return err
		}
		switch {
		case mv.Status == state.ModelRejected:
			return refuse("model %s version %d was rejected by its gates (%s) and cannot be promoted to %s", model, version, failedGates(mv), alias)
		case approvalRequired && mv.Status != state.ModelApproved:
			return refuse("model %s version %d needs an approval before it can be promoted to %s", model, version, alias)
		}
		if change, err = tx.SetAlias(model, alias, version, actor); err != nil || change == nil {
			return err
		}
		details := map[string]any{"alias": alias, "version": version}
		if change.Previous != 0 {
			details["previous"] = change.Previous
		}
		_, err = tx.AppendAudit(state.Event{Actor: actor, Action: "model.promote", Subject: subject(model, version), Details: details})
		return err
	})
	if err != nil {
		return nil, err
	}
	return change, nil
}

// Rollback moves alias back to the version it pointed at before its last
// promotion (see state.Tx.RollbackAlias); rolling back again goes further
// back. It fails when the alias has no earlier version.
func (r *Registry) Rollback(ctx context.Context, model, alias, actor string) (*state.AliasChange, error) {
	if actor == "" {
		return nil, errors.New("registry: an actor is required to roll back")
	}
	var change *state.AliasChange
	err := r.db.Update(ctx, func(tx *state.Tx) error {
		var err error
		if change, err = tx.RollbackAlias(model, alias, actor); err != nil {
			return err
		}
		_, err = tx.AppendAudit(state.Event{Actor: actor, Action: "model.rollback", Subject: subject(model, change.Version),
			Details: map[string]any{"alias": alias, "version": change.Version, "previous": change.Previous}})
		return err
	})
	if err != nil {
		return nil, err
	}
	return change, nil
}

// Versions returns every version of a model, oldest first.
func (r *Registry) Versions(ctx context.Context, model string) ([]*state.ModelVersion, error) {
	var out []*state.ModelVersion
	err := r.db.View(ctx, func(tx *state.Tx) error {
		var err error
		out, err = tx.ModelVersions(model)
		return err
	})
	return out, err
}

// Version returns one version of a model, or an error wrapping
// state.ErrNotFound.
func (r *Registry) Version(ctx context.Context, model string, version int) (*state.ModelVersion, error) {
	var out *state.ModelVersion
	err := r.db.View(ctx, func(tx *state.Tx) error {
		var err error
		out, err = tx.ModelVersion(model, version)
		return err
	})
	return out, err
}

// Resolve returns the version an alias points at, or an error wrapping
// state.ErrNotFound.
func (r *Registry) Resolve(ctx context.Context, model, alias string) (*state.ModelVersion, error) {
	var out *state.ModelVersion
	err := r.db.View(ctx, func(tx *state.Tx) error {
		v, err := tx.Alias(model, alias)
		if err != nil {
			return err
		}
		out, err = tx.ModelVersion(model, v)
		return err
	})
	return out, err
}

// History returns every move of an alias, oldest first.
func (r *Registry) History(ctx context.Context, model, alias string) ([]state.AliasChange, error) {
	var out []state.AliasChange
	err := r.db.View(ctx, func(tx *state.Tx) error {
		var err error
		out, err = tx.AliasHistory(model, alias)
		return err
	})
	return out, err
}

// Approvals returns the approvals of a version, oldest first.
func (r *Registry) Approvals(ctx context.Context, model string, version int) ([]state.Approval, error) {
	var out []state.Approval
	err := r.db.View(ctx, func(tx *state.Tx) error {
		var err error
		out, err = tx.Approvals(model, version)
		return err
	})
	return out, err
}

func subject(model string, version int) string { return fmt.Sprintf("%s v%d", model, version) }

func failedGates(mv *state.ModelVersion) string {
	var msgs []string
	for _, g := range mv.Gates {
		if !g.Passed {
			msgs = append(msgs, g.Message)
		}
	}
	if len(msgs) == 0 {
		return "no gate recorded"
	}
	return strings.Join(msgs, "; ")
}
