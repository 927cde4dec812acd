package weir.image.digest_test

import data.weir.image.digest

sha := "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

test_digest_in_reference_passes if {
	ref := concat("@", ["python", sha])
	count(digest.deny) == 0 with input as {"project": {"training": {"m": {"image": ref}}}}
}

test_digest_in_lock_passes if {
	count(digest.deny) == 0 with input as {
		"project": {"training": {"m": {"image": "python:3.12"}}},
		"lock": {"images": {"python:3.12": sha}},
	}
}

test_unpinned_image_fails if {
	findings := digest.deny with input as {
		"project": {"training": {"m": {"image": "python:3.12"}}, "defaults": {"image": "busybox:1.36"}},
		"lock": {"images": {"other:1": sha}},
	}
	{f.path | some f in findings} == {"training.m.image", "defaults.image"}
}

test_empty_lock_entry_fails if {
	findings := digest.deny with input as {
		"project": {"tasks": {"t": {"image": "python:3.12"}}},
		"lock": {"images": {"python:3.12": ""}},
	}
	count(findings) == 1
}
