package weir.secrets.env_test

import data.weir.secrets.env

test_secret_references_pass if {
	count(env.deny) == 0 with input as {"project": {
		"training": {"m": {"env": {"API_TOKEN": {"secret": "env:API_TOKEN"}, "LOG_LEVEL": {"value": "debug"}}}},
		"datasets": {
			"db": {"source": {"kind": "sql", "driver": "postgres", "dsn": {"secret": "env:DSN"}}},
			"lite": {"source": {"kind": "sql", "driver": "sqlite", "dsn": {"value": "local.db"}}},
		},
	}}
}

test_plain_secrets_fail if {
	findings := env.deny with input as {"project": {
		"tasks": {"t": {"env": {"DB_PASSWORD": {"value": "hunter2"}, "HOME": {"value": "/tmp"}}}},
		"datasets": {"db": {"source": {"kind": "sql", "driver": "postgres", "dsn": {"value": "postgres://u:p@h/db"}}}},
	}}
	{f.path | some f in findings} == {"tasks.t.env.DB_PASSWORD", "datasets.db.source.dsn"}
}
