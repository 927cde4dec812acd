# METADATA
# title: Code lives in the repository
# description: |
#   The `code` folder of every run site is a relative path inside the
#   project: not absolute, not a URL, and no `..` that climbs out of it. Code
#   outside the repository is not reviewed with the spec and not reproducible
#   from a commit.
# custom:
#   id: weir.code.in_repo
#   severity: error
#   remediation: Move the code into the repository and point `code` at it with a relative path.
package weir.code.in_repo

import data.weir.lib.runs

deny contains finding if {
	some site, run in runs.sites
	code := run.code
	regex.match(`^[/\\~]|^[A-Za-z]:|://|\.\.`, code) # one cheap test before the details
	why := problem(code)
	finding := {
		"msg": sprintf("%s.code %q %s", [site, code, why]),
		"path": concat(".", [site, "code"]),
	}
}

problem(code) := "is an absolute path" if {
	absolute(code)
} else := "is a URL, not a folder of the repository" if {
	contains(code, "://")
} else := "climbs out of the project with .." if {
	escapes(code)
}

absolute(code) if startswith(code, "/")

absolute(code) if startswith(code, `\`)

absolute(code) if startswith(code, "~")

absolute(code) if indexof(code, ":") == 1

# escapes(code) holds when some prefix of the path has climbed more `..`
# than it has descended.
escapes(code) if {
	contains(code, "..")
	parts := [p | some p in split(replace(code, `\`, "/"), "/"); p != ""; p != "."]
	count(parts) > 0
	some i in numbers.range(1, count(parts))
	ups := count([p | some p in array.slice(parts, 0, i); p == ".."])
	ups * 2 > i
}
