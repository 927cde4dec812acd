package weir.lib.serving_test

import data.weir.lib.serving

test_target if {
	serving.target("api", {}) == "serving.api"
	serving.target("mon", {"serving": "serving.api"}) == "serving.api"
	serving.target("mon", {"serving": "api"}) == "serving.api"
}

test_watchers if {
	w := serving.watchers with input as {"project": {"monitoring": {
		"api": {},
		"extra": {"serving": "serving.api"},
		"other": {"serving": "serving.web"},
	}}}
	w == {"serving.api": {"api", "extra"}, "serving.web": {"other"}}
}

test_production if {
	serving.production({})
	serving.production({"environment": "production"})
	not serving.production({"environment": "staging"})
}

test_model_name if {
	serving.model_name("models.churn@production") == "churn"
	serving.model_name("models.churn") == "churn"
	not serving.model_name("training.churn")
}
