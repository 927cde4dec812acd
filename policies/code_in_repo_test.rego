package weir.code.in_repo_test

import data.weir.code.in_repo

test_relative_code_passes if {
	count(in_repo.deny) == 0 with input as {"project": {
		"training": {"m": {"code": "./train", "evaluate": {"code": "eval/../eval2"}}},
		"tasks": {"t": {"code": "."}, "u": {"code": "a/b/../../c"}},
	}}
}

test_escaping_code_fails if {
	findings := in_repo.deny with input as {"project": {
		"training": {"m": {"code": "../shared/train"}},
		"tasks": {
			"abs": {"code": "/opt/code"},
			"win": {"code": `C:\code`},
			"home": {"code": "~/code"},
			"url": {"code": "https://example.com/repo.git"},
			"deep": {"code": "a/./../../b"},
		},
	}}
	{f.path | some f in findings} == {
		"training.m.code", "tasks.abs.code", "tasks.win.code",
		"tasks.home.code", "tasks.url.code", "tasks.deep.code",
	}
	some f in findings
	f.path == "training.m.code"
	f.msg == "training.m.code \"../shared/train\" climbs out of the project with .."
}
