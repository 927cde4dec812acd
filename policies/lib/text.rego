# METADATA
# title: Message helpers
# description: Render lists in finding messages, shortened when long.
package weir.lib.text

# list(xs) renders a set or array of strings sorted and comma-separated,
# naming at most three and counting the rest.
list(xs) := concat(", ", s) if {
	s := sort(xs)
	count(s) <= 3
}

list(xs) := sprintf("%s and %d more", [concat(", ", array.slice(s, 0, 3)), count(s) - 3]) if {
	s := sort(xs)
	count(s) > 3
}
