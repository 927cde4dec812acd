# METADATA
# title: Resources are set for user code
# description: |
#   Every run site (feature transforms, training, evaluation, batch scoring,
#   tasks, model servers) sets resources, or defaults.resources gives them, so
#   schedulers can place the step and cost estimates mean something.
# custom:
#   id: weir.resources.required
#   severity: warning
#   remediation: Add resources (cpu, memory, gpu) to the entry, or set defaults.resources.
package weir.resources.required

import data.weir.lib.runs

warn contains finding if {
	some path, run in runs.sites
	not has_resources(run)
	finding := {"msg": sprintf("%s sets no resources and there are no defaults.resources", [path]), "path": path}
}

has_resources(run) if count(runs.resources(run)) > 0
