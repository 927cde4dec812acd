package weir.model.gate_test

import data.weir.model.gate

training := {
	"searched": {"search": {"objective": {"metric": "auc", "goal": "maximize"}}},
	"plain": {"command": ["train"]},
}

test_gated_models_pass if {
	count(gate.deny) == 0 with input as {"project": {"training": training, "models": {
		"a": {"from": "training.searched", "gates": {"auc": ">=0.8"}},
		"b": {"from": "training.plain", "gates": {"rmse": "<=3"}},
	}}}
}

test_missing_objective_gate_fails if {
	findings := gate.deny with input as {"project": {"training": training, "models": {
		"a": {"from": "training.searched", "gates": {"f1": ">=0.8"}},
	}}}
	findings == {{"msg": "model a has no gate on auc, the objective of training.searched", "path": "models.a.gates"}}
}

test_ungated_model_fails if {
	findings := gate.deny with input as {"project": {"training": training, "models": {
		"a": {"from": "training.searched"},
		"b": {"from": "training.plain"},
	}}}
	{f.path | some f in findings} == {"models.a.gates", "models.b.gates"}
}
