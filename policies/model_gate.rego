# METADATA
# title: Models are gated on the training objective
# description: |
#   A model fed by a hyperparameter search has a gate on the search's
#   objective metric, so the best trial must also be good enough. A model
#   fed by training without a search has at least one gate.
# custom:
#   id: weir.model.gate
#   severity: error
#   remediation: |
#     Add a gate on the objective metric, such as gates: {auc: >=0.80}.
package weir.model.gate

training(m) := input.project.training[trim_prefix(m.from, "training.")]

deny contains finding if {
	some name, m in input.project.models
	metric := training(m).search.objective.metric
	not m.gates[metric]
	finding := {
		"msg": sprintf("model %s has no gate on %s, the objective of %s", [name, metric, m.from]),
		"path": concat("", ["models.", name, ".gates"]),
	}
}

deny contains finding if {
	some name, m in input.project.models
	t := training(m)
	not t.search
	count(object.get(m, "gates", {})) == 0
	finding := {
		"msg": sprintf("model %s has no gates: any version %s produces can be promoted", [name, m.from]),
		"path": concat("", ["models.", name, ".gates"]),
	}
}
