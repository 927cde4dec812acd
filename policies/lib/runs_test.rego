package weir.lib.runs_test

import data.weir.lib.runs

project := {
	"defaults": {"image": "base:1", "backend": "gpu", "resources": {"gpu": 1}},
	"features": {"f": {"from": ["datasets.d"], "transform": {"image": "feat:1"}}, "plain": {"from": ["datasets.d"]}},
	"training": {"m": {"image": "train:1", "backend": "local", "distributed": {"workers": 3}, "resources": {"gpu": 2}, "evaluate": {"command": ["e"]}}},
	"batch": {"b": {"command": ["s"]}},
	"tasks": {"t": {"command": ["t"]}},
	"serving": {"s": {"model": "models.m", "backend": "k8s", "server": {"image": "srv:1"}}, "builtin": {"model": "models.m"}},
}

test_sites if {
	s := runs.sites with input as {"project": project}
	object.keys(s) == {"features.f.transform", "training.m", "training.m.evaluate", "batch.b", "tasks.t", "serving.s.server"}
}

test_images if {
	i := runs.images with input as {"project": project}
	i == {
		"defaults.image": "base:1",
		"features.f.transform.image": "feat:1",
		"training.m.image": "train:1",
		"serving.s.server.image": "srv:1",
	}
}

test_backend if {
	runs.backend("training.m", project.training.m) == "local"
	runs.backend("serving.s.server", project.serving.s.server) == "k8s" with input as {"project": project}
	runs.backend("tasks.t", project.tasks.t) == "gpu" with input as {"project": project}
	runs.backend("tasks.t", project.tasks.t) == "local" with input as {"project": {}}
}

test_gpus if {
	runs.gpus(project.training.m) == 6 with input as {"project": project}
	runs.gpus(project.training.m.evaluate) == 1 with input as {"project": project}
	runs.gpus({"resources": {"cpu": 1}}) == 0 with input as {"project": project}
	runs.gpus({}) == 0 with input as {"project": {}}
}
