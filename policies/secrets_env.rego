# METADATA
# title: Secrets are references, not values
# description: |
#   An environment variable whose name says it holds a secret (password,
#   token, secret, API or private key, credentials) is a secret reference
#   ({secret: "env:NAME"} or "file:PATH"), never a plain value: plain values
#   are written into plans, state and logs. A SQL source's DSN (other than
#   SQLite's file name) is a secret reference too.
# custom:
#   id: weir.secrets.env
#   severity: error
#   remediation: 'Write the variable as {secret: "env:NAME"} and provide NAME in the environment of weir apply.'
package weir.secrets.env

import data.weir.lib.runs

secret_name := `(?i)(passw(or)?d|secret|token|api_?key|private_?key|credential|access_?key)`

deny contains finding if {
	some site, run in runs.sites
	some var, env in run.env
	regex.match(secret_name, var)
	env.value != ""
	finding := {
		"msg": sprintf("%s sets %s as a plain value; it looks like a secret", [site, var]),
		"path": concat("", [site, ".env.", var]),
	}
}

deny contains finding if {
	some name, d in input.project.datasets
	d.source.kind == "sql"
	d.source.driver != "sqlite"
	d.source.dsn.value != ""
	finding := {
		"msg": sprintf("dataset %s has its DSN as a plain value; DSNs carry credentials", [name]),
		"path": concat("", ["datasets.", name, ".source.dsn"]),
	}
}
