package weir.gpu.quota.project_test

import data.weir.gpu.quota.project

step(addr, element, kind, action, gpu) := {
	"address": addr, "element": element, "kind": kind, "action": action,
	"run": {"resources": {"gpu": gpu}},
}

plan := {"steps": [
	step("training.a.trial[lr=1]", "training.a", "trial", "run", 2),
	step("training.a.trial[lr=2]", "training.a", "trial", "run", 2),
	step("training.a.trial[lr=3]", "training.a", "trial", "run", 2),
	step("training.a.trial[lr=4]", "training.a", "trial", "cached", 2),
	step("training.b", "training.b", "train", "run", 1),
	step("features.f", "features.f", "transform", "run", 8),
]}

test_within_quota_passes if {
	# a: 2 GPUs x 3 running trials, capped by parallelism 2 -> 4; b: 1.
	count(project.deny) == 0 with input as {"plan": plan, "project": {"training": {"a": {"search": {"parallelism": 2}}}}}
		with data.weir.config as {"gpu_quota": {"project": 5}}
}

test_no_quota_is_silent if {
	count(project.deny) == 0 with input as {"plan": plan}
}

test_over_quota_fails if {
	findings := project.deny with input as {"plan": plan, "project": {"training": {"a": {}}}}
		with data.weir.config as {"gpu_quota": {"project": 6}}
	findings == {{
		"msg": "the plan's training can hold 7 GPUs at once (training.a, training.b), above the project quota of 6",
		"path": "policy.data.gpu_quota.project",
	}}
}

test_workers_count if {
	p := {"steps": [{"address": "training.d", "element": "training.d", "kind": "train", "action": "run", "run": {"workers": 4, "resources": {"gpu": 2}}}]}
	count(project.deny) == 1 with input as {"plan": p} with data.weir.config as {"gpu_quota": {"project": 7}}
}
