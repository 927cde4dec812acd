package weir.data.contract_test

import data.weir.data.contract

good := {"source": {"kind": "file"}, "schema": {"id": "string"}, "checks": {"minRows": 1}}

test_contracts_pass if {
	count(contract.deny) == 0 with input as {"project": {
		"datasets": {"a": good, "b": good, "unused": {"source": {"kind": "file"}}},
		"features": {"f": {"from": ["datasets.a"]}},
		"training": {"m": {"features": ["features.f", "datasets.b"]}},
	}}
}

test_missing_schema_and_checks_fail if {
	findings := contract.deny with input as {"project": {
		"datasets": {
			"raw": {"source": {"kind": "file"}, "checks": {"minRows": 1}},
			"deep": {"source": {"kind": "file"}, "schema": {"id": "string"}},
			"direct": {"source": {"kind": "file"}, "schema": {}, "checks": {}},
		},
		"features": {
			"base": {"from": ["datasets.raw", "datasets.deep"]},
			"top": {"from": ["features.base"]},
		},
		"training": {
			"m": {"features": ["features.top"]},
			"n": {"features": ["datasets.direct", "features.top"]},
		},
	}}
	{f.path | some f in findings} == {"datasets.raw.schema", "datasets.deep.checks", "datasets.direct.schema", "datasets.direct.checks"}
	some f in findings
	f.path == "datasets.raw.schema"
	f.msg == "dataset raw is used for training (training.m, training.n) but declares no schema"
}
