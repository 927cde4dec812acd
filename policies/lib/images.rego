# METADATA
# title: Image reference helpers
# description: |
#   Parse container image references the way registries read them:
#   [HOST[:PORT]/]PATH[:TAG][@ALGO:DIGEST].
package weir.lib.images

# has_digest(ref) holds when ref names a content digest.
has_digest(ref) if regex.match(`@[a-z0-9]+([+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$`, ref)

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

# without_digest(ref) is ref with any @digest removed.
without_digest(ref) := split(ref, "@")[0]

# last_component(ref) is the last path component (NAME[:TAG]).
last_component(ref) := c if {
	parts := split(without_digest(ref), "/")
	c := parts[count(parts) - 1]
}

# tag(ref) is the tag written in ref; undefined when there is none.
tag(ref) := t if {
	c := last_component(ref)
	contains(c, ":")
	t := substring(c, indexof(c, ":") + 1, -1)
}

# name(ref) is ref without its tag and digest: HOST/PATH or PATH.
name(ref) := n if {
	t := tag(ref)
	r := without_digest(ref)
	n := substring(r, 0, count(r) - count(t) - 1)
} else := without_digest(ref)

# registry(ref) is the registry host written in ref; undefined when ref names
# none (the container runtime's default registry is then implied).
registry(ref) := host if {
	parts := split(ref, "/")
	count(parts) > 1
	host := parts[0]
	is_host(host)
}

is_host(h) if contains(h, ".")

is_host(h) if contains(h, ":")

is_host("localhost")

# from(ref, allowed) holds when ref's registry (and path) is under the
# allowed entry: "registry.example.com" or "registry.example.com/team".
from(ref, allowed) if {
	registry(ref)
	a := trim_suffix(allowed, "/")
	n := name(ref)
	n == a
}

from(ref, allowed) if {
	registry(ref)
	a := trim_suffix(allowed, "/")
	startswith(name(ref), concat("", [a, "/"]))
}
