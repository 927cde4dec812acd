# METADATA
# title: Images come from allowed registries
# description: |
#   When data.weir.config.allowed_registries lists registries (a host such as
#   "registry.example.com", or a host and path prefix such as
#   "registry.example.com/ml"), every image is under one of them: it starts
#   with the entry followed by "/", ":" or "@". An image without a registry
#   host (python:3.12) is pulled from whatever the container runtime's default
#   registry is, and matches no entry that names a host. When no list is
#   configured (absent or empty) the rule is silent.
# custom:
#   id: weir.image.registry
#   severity: error
#   remediation: |
#     Pull the image through an allowed registry (a mirror), or add its
#     registry to policy.data.allowed_registries.
package weir.image.registry

import data.weir.lib.runs
import data.weir.lib.text

allowed := data.weir.config.allowed_registries

# prefixes are what an allowed image starts with: the entry followed by a
# path ("/"), a tag (":") or a digest ("@"), computed once.
prefixes := {concat("", [trim_suffix(a, "/"), sep]) | some a in allowed; some sep in ["/", ":", "@"]}

deny contains finding if {
	count(allowed) > 0
	some path, ref in runs.images
	not strings.any_prefix_match(ref, prefixes)
	finding := {
		"msg": sprintf("image %q is not from an allowed registry (%s)", [ref, text.list(allowed)]),
		"path": path,
	}
}
