package weir.resources.required_test

import data.weir.resources.required

test_resources_set_pass if {
	count(required.warn) == 0 with input as {"project": {
		"training": {"m": {"resources": {"cpu": 2}}},
		"features": {"f": {"transform": {"resources": {"memory": "1Gi"}}}},
	}}
}

test_defaults_pass if {
	count(required.warn) == 0 with input as {"project": {
		"defaults": {"resources": {"cpu": 1}},
		"tasks": {"t": {"command": ["true"]}},
		"batch": {"b": {"command": ["score"]}},
	}}
}

test_missing_resources_warn if {
	findings := required.warn with input as {"project": {
		"training": {"m": {"resources": {"cpu": 2}, "evaluate": {"command": ["eval"]}}},
		"serving": {"s": {"server": {"command": ["serve"]}}},
		"features": {"f": {"from": ["datasets.d"]}},
	}}
	{f.path | some f in findings} == {"training.m.evaluate", "serving.s.server"}
}
