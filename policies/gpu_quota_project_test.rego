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

# a asks for 2 GPUs per trial over 4 trials, b for 1: the spec bounds the
# demand at 9, so the plan is scanned when the quota is below that.
training := {
	"a": {"resources": {"gpu": 2}, "search": {"params": {"lr": {"values": [1, 2, 3, 4]}}}},
	"b": {"resources": {"gpu": 1}},
}

test_within_quota_passes if {
	# a: one trial is cached, 3 x 2 GPUs run; b: 1.
	count(project.deny) == 0 with input as {"plan": plan, "project": {"training": training}}
		with data.weir.config as {"gpu_quota": {"project": 7}}
}

test_parallelism_caps_demand if {
	# a: 3 running trials capped by parallelism 2 -> 4; b: 1.
	t := object.union(training, {"a": {"search": {"parallelism": 2}}})
	count(project.deny) == 0 with input as {"plan": plan, "project": {"training": t}}
		with data.weir.config as {"gpu_quota": {"project": 5}}
}

test_no_quota_is_silent if {
	count(project.deny) == 0 with input as {"plan": plan, "project": {"training": training}}
}

test_over_quota_fails if {
	findings := project.deny with input as {"plan": plan, "project": {"training": training}}
		with data.weir.config as {"gpu_quota": {"project": 6}}
	findings == {{
		"msg": "the plan's training can hold 7 GPUs at once (training.a, training.b), above the project quota of 6",
		"path": "policy.data.gpu_quota.project",
	}}
}

test_workers_count if {
	p := {"steps": [{"address": "training.d", "element": "training.d", "kind": "train", "action": "run", "run": {"workers": 4, "resources": {"gpu": 2}}}]}
	count(project.deny) == 1 with input as {"plan": p, "project": {"training": {"d": {"resources": {"gpu": 2}, "distributed": {"workers": 4}}}}}
		with data.weir.config as {"gpu_quota": {"project": 7}}
}

test_spec_bound_skips_the_plan if {
	# The spec bounds the demand at 2 x parallelism 2 + 1 = 5 <= 5, so the
	# plan is not scanned.
	t := object.union(training, {"a": {"search": {"parallelism": 2}}})
	project.bound == 5 with input as {"plan": plan, "project": {"training": t}}
	count(project.deny) == 0 with input as {"plan": plan, "project": {"training": t}}
		with data.weir.config as {"gpu_quota": {"project": 5}}
}

test_bound if {
	b := project.bound with input as {"project": {"defaults": {"resources": {"gpu": 1}}, "training": {
		"grid": {"search": {"params": {"lr": {"values": [1, 2]}, "l2": {"values": [0, 1, 2]}}}},
		"random": {"search": {"budget": 5, "params": {"lr": {"range": {"min": 0, "max": 1}}}}},
		"plain": {"resources": {"gpu": 2}, "distributed": {"workers": 2}},
	}}}
	b == ((6 + 5) + 4)
}

test_no_bound_with_unbudgeted_range if {
	not project.bound with input as {"project": {"training": {"r": {"search": {"params": {"lr": {"range": {"min": 0, "max": 1}}}}}}}}
}
