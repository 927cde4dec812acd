package weir.image.latest_test

import data.weir.image.latest

test_versioned_tag_passes if {
	count(latest.deny) == 0 with input as {"project": {"training": {"m": {"image": "registry.example.com:5000/ml/python:3.12"}}}}
}

test_digest_without_tag_passes if {
	count(latest.deny) == 0 with input as {"project": {"batch": {"b": {"image": "python@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}}
}

test_latest_tag_fails if {
	findings := latest.deny with input as {"project": {"tasks": {"t": {"image": "python:latest"}}}}
	findings == {{"msg": "image \"python:latest\" uses the latest tag", "path": "tasks.t.image"}}
}

test_missing_tag_fails if {
	findings := latest.deny with input as {"project": {"features": {"f": {"transform": {"image": "registry.example.com:5000/python"}}}}}
	findings == {{"msg": "image \"registry.example.com:5000/python\" has no tag, which means latest", "path": "features.f.transform.image"}}
}
