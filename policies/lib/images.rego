# METADATA
# title: Image reference helpers
# description: |
#   Whether a container image reference ([HOST[:PORT]/]PATH[:TAG][@ALGO:DIGEST])
#   is pinned to a digest, in itself or in weir.lock.
package weir.lib.images

# has_digest(ref) holds when ref names a content digest.
has_digest(ref) if {
	contains(ref, "@")
	regex.match(`@[a-z0-9]+([+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$`, ref)
}

# locked(ref) holds when weir.lock pins ref to a digest.
locked(ref) if {
	d := input.lock.images[ref]
	is_string(d)
	d != ""
}

# pinned(ref) holds when ref is pinned by digest, in the reference itself or
# in weir.lock.
pinned(ref) if has_digest(ref)

pinned(ref) if locked(ref)
