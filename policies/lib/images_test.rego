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
