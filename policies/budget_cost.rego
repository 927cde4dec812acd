# METADATA
# title: The plan fits the cost budget
# description: |
#   The plan's estimated cost of the steps that will run
#   (input.plan.estimate.cost) is at most data.weir.config.budget.cost. Silent
#   without a budget or an estimate.
# custom:
#   id: weir.budget.cost
#   severity: error
#   remediation: |
#     Narrow the plan (--target), shrink the search, use cheaper resources, or
#     raise budget.cost in policy.data.
package weir.budget.cost

deny contains finding if {
	limit := data.weir.config.budget.cost
	cost := input.plan.estimate.cost
	cost > limit
	finding := {
		"msg": sprintf("the plan is estimated to cost %v, above the budget of %v", [round(cost * 100) / 100, limit]),
		"path": "policy.data.budget.cost",
	}
}
