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

# incomplete are the datasets that lack a schema or checks; the rest of the
# rule only runs for them.
incomplete := {name | some name, d in input.project.datasets; not complete(d)}

complete(d) if {
	count(object.get(d, "schema", {})) > 0
	count(object.get(d, "checks", {})) > 0
}

# edges are [from, feature set] for each reference a feature set is built
# from; readers[ref] the feature sets built directly from ref. (The inner
# comprehensions are indexed by their key, so linear; see lib/runs. An
# indexed comprehension asked for a key it does not have is evaluated in
# full, so keys come from the same pairs.)
edges := [[ref, concat(".", ["features", name])] | some name, fs in input.project.features; some ref in fs.from]

readers := r if {
	r := {ref: fs | some ref in {e[0] | some e in edges}; fs := {f | some e in edges; e[0] == ref; f := e[1]}}
}

# trainers[ref] are the training entries whose features name ref.
trainers := t if {
	t := {ref: ts | some ref in {p[0] | some p in training_refs}; ts := {a | some p in training_refs; p[0] == ref; a := p[1]}}
}

training_refs := [[ref, concat(".", ["training", name])] | some name, t in input.project.training; some ref in t.features]

# used_by[dataset] are the training entries that read an incomplete
# dataset, directly or through feature sets at any depth.
used_by := {ds: users |
	some ds in incomplete
	addr := concat(".", ["datasets", ds])
	# graph.reachable reports only nodes that are keys of readers: add the
	# feature sets nobody reads (the leaves) from their readers' entries.
	inner := graph.reachable(readers, {addr})
	reached := {addr} | inner | {f | some n in inner; some f in readers[n]}
	users := {t | some ref in reached; some t in trainers[ref]}
	count(users) > 0
}

deny contains finding if {
	count(incomplete) > 0
	some ds, users in used_by
	count(object.get(input.project.datasets[ds], "schema", {})) == 0
	finding := {
		"msg": sprintf("dataset %s is used for training (%s) but declares no schema", [ds, text.list(users)]),
		"path": concat(".", ["datasets", ds, "schema"]),
	}
}

deny contains finding if {
	count(incomplete) > 0
	some ds, users in used_by
	count(object.get(input.project.datasets[ds], "checks", {})) == 0
	finding := {
		"msg": sprintf("dataset %s is used for training (%s) but declares no checks", [ds, text.list(users)]),
		"path": concat(".", ["datasets", ds, "checks"]),
	}
}
