# METADATA
# title: Training data has a schema and checks
# description: |
#   Every dataset that training reads, directly or through feature sets (at
#   any depth), declares a schema (row constraints) and checks (dataset-level
#   quality checks), so bad data stops the pipeline before a model learns
#   from it.
# custom:
#   id: weir.data.contract
#   severity: error
#   remediation: Add schema and checks (e.g. minRows, maxNullFraction) to the dataset.
package weir.data.contract

import data.weir.lib.text

# sources[addr] are the addresses a feature set is built from.
sources[addr] := {r | some r in fs.from} if {
	some name, fs in input.project.features
	addr := concat(".", ["features", name])
}

# used_by[dataset] are the training entries that read the dataset.
used_by[ds] contains concat(".", ["training", name]) if {
	some name, t in input.project.training
	some ref in reads(t)
	startswith(ref, "datasets.")
	ds := trim_prefix(ref, "datasets.")
}

reads(t) := direct | via if {
	direct := {r | some r in t.features}
	reached := graph.reachable(sources, direct)
	via := {r | some f in reached; some r in sources[f]}
}

deny contains finding if {
	some ds, users in used_by
	d := input.project.datasets[ds]
	count(object.get(d, "schema", {})) == 0
	finding := {
		"msg": sprintf("dataset %s is used for training (%s) but declares no schema", [ds, text.list(users)]),
		"path": concat(".", ["datasets", ds, "schema"]),
	}
}

deny contains finding if {
	some ds, users in used_by
	d := input.project.datasets[ds]
	count(object.get(d, "checks", {})) == 0
	finding := {
		"msg": sprintf("dataset %s is used for training (%s) but declares no checks", [ds, text.list(users)]),
		"path": concat(".", ["datasets", ds, "checks"]),
	}
}
