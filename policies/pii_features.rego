# METADATA
# title: PII columns are not used as features
# description: |
#   Columns a dataset lists in `pii` do not reach training: a feature set's
#   `columns` list does not name one; a feature set built without user code
#   (no transform) over a dataset with PII lists the columns it keeps, so a
#   reviewer can check none is PII; and training does not read a dataset
#   with PII directly. A waiver accepts a reviewed exception.
# custom:
#   id: weir.pii.features
#   severity: error
#   remediation: |
#     Drop the PII column from `columns` (or hash it in a transform and list
#     the derived column), list the kept columns explicitly, or train on a
#     feature set instead of the raw dataset. Add a waiver with a reason
#     if the use is approved.
package weir.pii.features

import data.weir.lib.text

# pii[dataset] is the set of PII columns of each dataset that has some.
pii := {name: {c | some c in d.pii} | some name, d in input.project.datasets; count(object.get(d, "pii", [])) > 0}

deny contains finding if {
	some name, fs in input.project.features
	some ref in fs.from
	cols := pii[trim_prefix(ref, "datasets.")]
	some i, col in fs.columns
	cols[col]
	finding := {
		"msg": sprintf("feature set %s keeps column %q, which %s marks as PII", [name, col, ref]),
		"path": sprintf("features.%s.columns[%d]", [name, i]),
	}
}

deny contains finding if {
	some name, fs in input.project.features
	not fs.columns
	not fs.transform
	some ref in fs.from
	cols := pii[trim_prefix(ref, "datasets.")]
	finding := {
		"msg": sprintf("feature set %s lists no columns over %s, which holds PII columns (%s); list the columns it keeps", [name, ref, text.list(cols)]),
		"path": concat(".", ["features", name]),
	}
}

deny contains finding if {
	some name, t in input.project.training
	some i, ref in t.features
	startswith(ref, "datasets.")
	cols := pii[trim_prefix(ref, "datasets.")]
	finding := {
		"msg": sprintf("training %s reads %s directly, which holds PII columns (%s)", [name, ref, text.list(cols)]),
		"path": sprintf("training.%s.features[%d]", [name, i]),
	}
}
