package weir.serving.production_test

import data.weir.serving.production

guarded := {
	"models": {"m": {"from": "training.t", "approval": {"required": true}}},
	"serving": {"api": {"model": "models.m@production", "canary": {"steps": [10, 100]}, "requestLog": {"sample": 0.5}}},
	"monitoring": {"api": {"drift": {"reference": "datasets.d", "threshold": 0.2}}},
}

test_guarded_production_passes if {
	count(production.deny) == 0 with input as {"project": guarded}
}

test_staging_is_not_checked if {
	count(production.deny) == 0 with input as {"project": {
		"models": {"m": {"from": "training.t"}},
		"serving": {"api": {"model": "models.m", "environment": "staging"}},
	}}
}

test_unguarded_production_fails if {
	findings := production.deny with input as {"project": {
		"models": {"m": {"from": "training.t", "approval": {"required": false}}},
		"serving": {"api": {"model": "models.m", "environment": "production", "requestLog": {"sample": 0}}},
		"monitoring": {"watch": {"serving": "serving.api", "alerts": [{"metric": "error_rate", "notify": "email:x@example.com"}]}},
	}}
	{f.path | some f in findings} == {"models.m.approval.required", "serving.api.canary", "serving.api.requestLog", "serving.api"}
}
