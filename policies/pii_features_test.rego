package weir.pii.features_test

import data.weir.pii.features

datasets := {
	"customers": {"source": {"kind": "file"}, "pii": ["email", "phone"]},
	"events": {"source": {"kind": "file"}},
}

test_clean_feature_sets_pass if {
	count(features.deny) == 0 with input as {"project": {
		"datasets": datasets,
		"features": {
			"listed": {"from": ["datasets.customers"], "columns": ["tenure", "monthly"]},
			"coded": {"from": ["datasets.customers"], "transform": {"command": ["python", "f.py"]}},
			"no_pii": {"from": ["datasets.events"]},
		},
		"training": {"m": {"features": ["features.listed", "datasets.events"]}},
	}}
}

test_pii_column_fails if {
	findings := features.deny with input as {"project": {
		"datasets": datasets,
		"features": {"f": {"from": ["datasets.customers"], "columns": ["tenure", "email"]}},
	}}
	findings == {{"msg": "feature set f keeps column \"email\", which datasets.customers marks as PII", "path": "features.f.columns[1]"}}
}

test_no_columns_without_transform_fails if {
	findings := features.deny with input as {"project": {
		"datasets": datasets,
		"features": {"f": {"from": ["datasets.events", "datasets.customers"]}},
	}}
	{f.path | some f in findings} == {"features.f"}
}

test_training_on_pii_dataset_fails if {
	findings := features.deny with input as {"project": {
		"datasets": datasets,
		"training": {"m": {"features": ["datasets.customers"]}},
	}}
	findings == {{"msg": "training m reads datasets.customers directly, which holds PII columns (email, phone)", "path": "training.m.features[0]"}}
}
