package weir.budget.cost_test

import data.weir.budget.cost

test_within_budget_passes if {
	count(cost.deny) == 0 with input as {"plan": {"estimate": {"cost": 99.5}}} with data.weir.config as {"budget": {"cost": 100}}
}

test_no_budget_or_estimate_is_silent if {
	count(cost.deny) == 0 with input as {"plan": {"estimate": {"cost": 1e9}}}
	count(cost.deny) == 0 with input as {"plan": {}} with data.weir.config as {"budget": {"cost": 1}}
}

test_over_budget_fails if {
	findings := cost.deny with input as {"plan": {"estimate": {"cost": 123.456}}} with data.weir.config as {"budget": {"cost": 100}}
	findings == {{"msg": "the plan is estimated to cost 123.46, above the budget of 100", "path": "policy.data.budget.cost"}}
}
