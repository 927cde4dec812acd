package weir.budget.gpu_hours_test

import data.weir.budget.gpu_hours

test_within_budget_passes if {
	count(gpu_hours.deny) == 0 with input as {"plan": {"estimate": {"gpu_hours": 10}}} with data.weir.config as {"budget": {"gpu_hours": 10}}
}

test_no_budget_is_silent if {
	count(gpu_hours.deny) == 0 with input as {"plan": {"estimate": {"gpu_hours": 1000}}} with data.weir.config as {"budget": {"cost": 1}}
}

test_over_budget_fails if {
	findings := gpu_hours.deny with input as {"plan": {"estimate": {"gpu_hours": 12.5}}} with data.weir.config as {"budget": {"gpu_hours": 8}}
	findings == {{"msg": "the plan is estimated to use 12.5 GPU-hours, above the budget of 8", "path": "policy.data.budget.gpu_hours"}}
}
