package weir.serving.monitored_test

import data.weir.serving.monitored

alert := {"metric": "latency_p99", "above": "250ms", "notify": "webhook:https://hooks.example.com/ml"}

test_monitored_passes if {
	count(monitored.deny) == 0 with input as {"project": {
		"serving": {"api": {"model": "models.m"}, "web": {"model": "models.m"}},
		"monitoring": {
			"api": {"alerts": [alert]},
			"web_drift": {"serving": "serving.web"},
			"web_alerts": {"serving": "serving.web", "alerts": [alert]},
		},
	}}
}

test_unmonitored_fails if {
	findings := monitored.deny with input as {"project": {"serving": {"api": {"model": "models.m"}}, "monitoring": {"other": {"alerts": [alert]}}}}
	findings == {{"msg": "serving.api is not monitored: no monitoring entry watches it", "path": "serving.api"}}
}

test_no_alerts_fails if {
	findings := monitored.deny with input as {"project": {
		"serving": {"api": {"model": "models.m"}},
		"monitoring": {"api": {"drift": {"reference": "datasets.d", "threshold": 0.1}}, "more": {"serving": "serving.api", "alerts": []}},
	}}
	{f.path | some f in findings} == {"monitoring.api.alerts", "monitoring.more.alerts"}
}
