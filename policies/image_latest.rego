# METADATA
# title: No latest tag
# description: |
#   Images do not use the `latest` tag, written or implied by leaving the tag
#   out: what it points to changes under the same name, so a reviewer cannot
#   tell which version runs. A reference pinned by digest is accepted.
# custom:
#   id: weir.image.latest
#   severity: error
#   remediation: Name an explicit version tag (python:3.12-slim) or a digest.
package weir.image.latest

import data.weir.lib.images
import data.weir.lib.runs

deny contains finding if {
	some path, ref in runs.images
	not images.has_digest(ref)
	why := latest(ref)
	finding := {"msg": sprintf("image %q %s", [ref, why]), "path": path}
}

latest(ref) := "uses the latest tag" if endswith(ref, ":latest")

# No ":" after the last "/": no tag (a port is not a tag).
latest(ref) := "has no tag, which means latest" if not regex.match(`:[^/]*$`, ref)
