# METADATA
# title: The plan fits the GPU-hour budget
# description: |
#   The plan's estimated GPU-hours of the steps that will run
#   (input.plan.estimate.gpu_hours) are at most
#   data.weir.config.budget.gpu_hours. Silent without a budget or an estimate.
# custom:
#   id: weir.budget.gpu_hours
#   severity: error
#   remediation: |
#     Narrow the plan (--target), shrink the search or its GPU requests, or
#     raise budget.gpu_hours in policy.data.
package weir.budget.gpu_hours

deny contains finding if {
	limit := data.weir.config.budget.gpu_hours
	hours := input.plan.estimate.gpu_hours
	hours > limit
	finding := {
		"msg": sprintf("the plan is estimated to use %v GPU-hours, above the budget of %v", [round(hours * 100) / 100, limit]),
		"path": "policy.data.budget.gpu_hours",
	}
}
