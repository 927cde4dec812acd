package weir.image.registry_test

import data.weir.image.registry

project := {
	"defaults": {"image": "registry.example.com/ml/base:1"},
	"training": {"m": {"image": "registry.example.com/ml/train:2"}},
	"tasks": {"t": {"image": "python:3.12"}},
	"batch": {"b": {"image": "other.example.org/x:1"}},
}

test_no_list_is_silent if {
	count(registry.deny) == 0 with input as {"project": project}
}

test_empty_list_is_silent if {
	count(registry.deny) == 0 with input as {"project": project} with data.weir.config as {"allowed_registries": []}
}

test_allowed_host_passes if {
	count(registry.deny) == 0 with input as {"project": {"training": project.training}}
		with data.weir.config as {"allowed_registries": ["registry.example.com"]}
}

test_allowed_path_prefix if {
	findings := registry.deny with input as {"project": {"training": {
		"a": {"image": "registry.example.com/ml/train:2"},
		"b": {"image": "registry.example.com/mlx/train:2"},
	}}}
		with data.weir.config as {"allowed_registries": ["registry.example.com/ml/"]}
	{f.path | some f in findings} == {"training.b.image"}
}

test_other_registry_and_implicit_registry_fail if {
	findings := registry.deny with input as {"project": project}
		with data.weir.config as {"allowed_registries": ["registry.example.com"]}
	{f.path | some f in findings} == {"tasks.t.image", "batch.b.image"}
}
