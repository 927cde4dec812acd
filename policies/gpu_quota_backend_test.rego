package weir.gpu.quota.backend_test

import data.weir.gpu.quota.backend

config := {"gpu_quota": {"backends": {"gpu": 4, "local": 0}}}

test_within_quota_passes if {
	count(backend.deny) == 0 with input as {"project": {"training": {
		"m": {"backend": "gpu", "resources": {"gpu": 2}, "distributed": {"workers": 2}},
		"n": {"backend": "other", "resources": {"gpu": 64}},
	}}}
		with data.weir.config as config
}

test_no_quota_is_silent if {
	count(backend.deny) == 0 with input as {"project": {"training": {"m": {"backend": "gpu", "resources": {"gpu": 64}}}}}
}

test_workers_multiply if {
	findings := backend.deny with input as {"project": {"training": {
		"m": {"backend": "gpu", "resources": {"gpu": 2}, "distributed": {"workers": 3}},
	}}}
		with data.weir.config as config
	findings == {{"msg": "training.m asks for 6 GPUs per step on backend gpu, whose quota is 4", "path": "training.m.resources.gpu"}}
}

test_defaults_apply if {
	findings := backend.deny with input as {"project": {
		"defaults": {"backend": "gpu", "resources": {"gpu": 8}},
		"tasks": {"t": {"command": ["x"]}},
		"serving": {"s": {"backend": "local", "server": {"command": ["serve"], "resources": {"gpu": 1}}}},
	}}
		with data.weir.config as config
	{f.path | some f in findings} == {"defaults.resources.gpu", "serving.s.server.resources.gpu"}
}
