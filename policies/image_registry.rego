# METADATA
# title: Images come from allowed registries
# description: |
#   When data.weir.config.allowed_registries lists registries (a host such as
#   "registry.example.com", or a host and path prefix such as
#   "registry.example.com/ml"), every image names one of them explicitly. An
#   image without a registry host (python:3.12) is refused, since it is pulled
#   from whatever the container runtime's default registry is. When no list is
#   configured (absent or empty) the rule is silent.
# custom:
#   id: weir.image.registry
#   severity: error
#   remediation: |
#     Pull the image through an allowed registry (a mirror), or add its
#     registry to policy.data.allowed_registries.
package weir.image.registry

import data.weir.lib.images
import data.weir.lib.runs
import data.weir.lib.text

allowed := data.weir.config.allowed_registries

deny contains finding if {
	count(allowed) > 0
	some path, ref in runs.images
	not allowed_image(ref)
	finding := {
		"msg": sprintf("image %q is not from an allowed registry (%s)", [ref, text.list(allowed)]),
		"path": path,
	}
}

allowed_image(ref) if {
	some a in allowed
	images.from(ref, a)
}
