package weir.lib.images_test

import data.weir.lib.images

sha := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

test_digest if {
	images.has_digest(concat("@", ["python:3.12", sha]))
	not images.has_digest("python:3.12")
	not images.has_digest("python@sha256:short")
}

test_pinned_by_lock if {
	images.pinned("python:3.12") with input as {"lock": {"images": {"python:3.12": sha}}}
	not images.pinned("python:3.12") with input as {"lock": {"images": {}}}
}

test_tag_and_name if {
	images.tag("python:3.12") == "3.12"
	images.tag("localhost:5000/ml/python:3.12-slim") == "3.12-slim"
	not images.tag("localhost:5000/ml/python")
	images.name("localhost:5000/ml/python:3.12") == "localhost:5000/ml/python"
	images.name(concat("@", ["python", sha])) == "python"
}

test_registry if {
	images.registry("registry.example.com/ml/python:3") == "registry.example.com"
	images.registry("localhost/python:3") == "localhost"
	not images.registry("library/python:3")
	not images.registry("python:3")
}

test_from if {
	images.from("registry.example.com/ml/x:1", "registry.example.com")
	images.from("registry.example.com/ml/x:1", "registry.example.com/ml")
	not images.from("registry.example.com/mlx/x:1", "registry.example.com/ml")
	not images.from("python:3", "python")
}
