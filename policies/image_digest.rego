# METADATA
# title: Images are pinned by digest
# description: |
#   Every container image the spec names is pinned to a content digest,
#   either in the reference itself (NAME@sha256:...) or in weir.lock, so a
#   step runs the same bits on every backend and every apply.
# custom:
#   id: weir.image.digest
#   severity: error
#   remediation: |
#     Run `weir plan` with registry access so the resolve pass pins the tag in
#     weir.lock, or write the image as NAME@sha256:DIGEST.
package weir.image.digest

import data.weir.lib.images
import data.weir.lib.runs

deny contains finding if {
	some path, ref in runs.images
	object.get(input.lock.images, ref, "") == ""
	not images.has_digest(ref)
	finding := {
		"msg": sprintf("image %q is not pinned by digest (in the reference or in weir.lock)", [ref]),
		"path": path,
	}
}
