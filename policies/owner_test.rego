package weir.owner_test

import data.weir.owner

test_owner_passes if {
	count(owner.deny) == 0 with input as {"project": {"project": "churn", "owner": "ml@example.com"}}
}

test_governance_owners_pass if {
	count(owner.deny) == 0 with input as {"project": {"project": "churn", "governance": {"owners": ["team:ml"]}}}
}

test_missing_owner_fails if {
	findings := owner.deny with input as {"project": {"project": "churn", "owner": "  ", "governance": {"owners": [""]}}}
	findings == {{"msg": "project churn names no owner (owner or governance.owners)", "path": "project"}}
}
