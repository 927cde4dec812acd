# METADATA
# title: Production serving is guarded
# description: |
#   A serving entry in production (environment absent or "production") serves
#   a model whose promotion requires approval, rolls out behind a canary,
#   logs requests (sample > 0) and is watched for data drift by a monitoring
#   entry.
# custom:
#   id: weir.serving.production
#   severity: error
#   remediation: |
#     Set approval.required on the model, add canary and requestLog to the
#     serving entry, and add drift to its monitoring entry; or set
#     environment to "staging" or "development" if it is not production.
package weir.serving.production

import data.weir.lib.serving

production := {name: s | some name, s in input.project.serving; serving.production(s)}

deny contains finding if {
	some name, s in production
	model := serving.model_name(s.model)
	m := input.project.models[model]
	not m.approval.required
	finding := {
		"msg": sprintf("serving.%s serves models.%s in production, but the model does not require approval", [name, model]),
		"path": concat("", ["models.", model, ".approval.required"]),
	}
}

deny contains finding if {
	some name, s in production
	not s.canary
	finding := {"msg": sprintf("serving.%s is in production without a canary rollout", [name]), "path": concat("", ["serving.", name, ".canary"])}
}

deny contains finding if {
	some name, s in production
	not logs_requests(s)
	finding := {"msg": sprintf("serving.%s is in production without request logging (requestLog.sample > 0)", [name]), "path": concat("", ["serving.", name, ".requestLog"])}
}

deny contains finding if {
	some name, _ in production
	addr := concat(".", ["serving", name])
	not drift_watched(addr)
	finding := {"msg": sprintf("serving.%s is in production but no monitoring entry checks it for drift", [name]), "path": addr}
}

logs_requests(s) if s.requestLog.sample > 0

drift_watched(addr) if {
	some m in serving.watchers[addr]
	input.project.monitoring[m].drift
}
