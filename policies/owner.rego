# METADATA
# title: The project has an owner
# description: |
#   The spec names who is accountable for the project: `owner`, or at least
#   one entry of governance.owners.
# custom:
#   id: weir.owner
#   severity: error
#   remediation: Add owner (an e-mail or "team:NAME") at the top of the spec.
package weir.owner

deny contains finding if {
	not has_owner
	finding := {"msg": sprintf("project %s names no owner (owner or governance.owners)", [input.project.project]), "path": "project"}
}

has_owner if trim_space(input.project.owner) != ""

has_owner if {
	some o in input.project.governance.owners
	trim_space(o) != ""
}
