package state

// migrations are applied in order, each in its own transaction together with
// the schema_version update; migrations[i] takes the database from version i
// to version i+1. Never edit a released migration: append a new one.
//
// Times are TEXT in timeFormat (UTC, fixed width, so they sort as strings).
// Tables are STRICT, so a wrong type is an error rather than a silent
// conversion.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE serial (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value INTEGER NOT NULL
) STRICT;
INSERT INTO serial (id, value) VALUES (1, 0);

CREATE TABLE lock (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	lock_id   TEXT NOT NULL,
	operation TEXT NOT NULL,
	user      TEXT NOT NULL,
	host      TEXT NOT NULL,
	pid       INTEGER NOT NULL,
	created   TEXT NOT NULL
) STRICT;

CREATE TABLE runs (
	id            TEXT PRIMARY KEY,
	project       TEXT NOT NULL,
	spec_hash     TEXT NOT NULL,
	plan_checksum TEXT NOT NULL,
	user          TEXT NOT NULL,
	host          TEXT NOT NULL,
	pid           INTEGER NOT NULL,
	lock_id       TEXT NOT NULL,
	command       TEXT NOT NULL,
	status        TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
	started       TEXT NOT NULL,
	ended         TEXT
) STRICT;
CREATE INDEX runs_started ON runs (started);
CREATE INDEX runs_running ON runs (id) WHERE status = 'running';

CREATE TABLE executions (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id    TEXT NOT NULL REFERENCES runs (id),
	address   TEXT NOT NULL,
	kind      TEXT NOT NULL,
	cache_key TEXT NOT NULL,
	backend   TEXT NOT NULL,
	status    TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled', 'cached', 'interrupted')),
	attempt   INTEGER NOT NULL,
	exit_code INTEGER NOT NULL,
	error     TEXT NOT NULL,
	started   TEXT NOT NULL,
	ended     TEXT,
	log_path  TEXT NOT NULL
) STRICT;
CREATE INDEX executions_run ON executions (run_id);
-- The cache: the latest succeeded execution of a key is one index probe.
CREATE INDEX executions_cache ON executions (cache_key, id) WHERE status = 'succeeded';
CREATE INDEX executions_running ON executions (run_id) WHERE status = 'running';

CREATE TABLE artifacts (
	digest  TEXT PRIMARY KEY,
	size    INTEGER NOT NULL,
	is_dir  INTEGER NOT NULL,
	created TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE outputs (
	execution_id INTEGER NOT NULL REFERENCES executions (id),
	name         TEXT NOT NULL,
	digest       TEXT NOT NULL REFERENCES artifacts (digest),
	size         INTEGER NOT NULL,
	is_dir       INTEGER NOT NULL,
	PRIMARY KEY (execution_id, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX outputs_digest ON outputs (digest);

CREATE TABLE params (
	execution_id INTEGER NOT NULL REFERENCES executions (id),
	name         TEXT NOT NULL,
	value        TEXT NOT NULL, -- JSON
	PRIMARY KEY (execution_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE metrics (
	execution_id INTEGER NOT NULL REFERENCES executions (id),
	seq          INTEGER NOT NULL,
	name         TEXT NOT NULL,
	step         INTEGER NOT NULL,
	value        REAL, -- NULL is NaN: SQLite stores NaN as NULL
	PRIMARY KEY (execution_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE model_versions (
	model           TEXT NOT NULL,
	version         INTEGER NOT NULL CHECK (version > 0),
	execution_id    INTEGER REFERENCES executions (id),
	run_id          TEXT REFERENCES runs (id),
	artifact_digest TEXT NOT NULL,
	status          TEXT NOT NULL CHECK (status IN ('candidate', 'rejected', 'approved')),
	gates           TEXT NOT NULL, -- JSON
	metrics         TEXT NOT NULL, -- JSON
	lineage         TEXT NOT NULL, -- JSON
	created         TEXT NOT NULL,
	PRIMARY KEY (model, version)
) STRICT;
CREATE INDEX model_versions_digest ON model_versions (artifact_digest);

CREATE TABLE approvals (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	model    TEXT NOT NULL,
	version  INTEGER NOT NULL,
	approver TEXT NOT NULL,
	comment  TEXT NOT NULL,
	created  TEXT NOT NULL,
	UNIQUE (model, version, approver),
	FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
) STRICT;

-- Every move of an alias. prev_id links to the entry that was current
-- before, so a rollback walks back the chain of promotions.
CREATE TABLE alias_history (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	model   TEXT NOT NULL,
	alias   TEXT NOT NULL,
	version INTEGER NOT NULL,
	action  TEXT NOT NULL CHECK (action IN ('promote', 'rollback')),
	prev_id INTEGER REFERENCES alias_history (id),
	actor   TEXT NOT NULL,
	created TEXT NOT NULL,
	FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
) STRICT;
CREATE INDEX alias_history_alias ON alias_history (model, alias, id);

CREATE TABLE aliases (
	model      TEXT NOT NULL,
	alias      TEXT NOT NULL,
	version    INTEGER NOT NULL,
	history_id INTEGER NOT NULL REFERENCES alias_history (id),
	PRIMARY KEY (model, alias),
	FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	time      TEXT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	subject   TEXT NOT NULL,
	details   TEXT NOT NULL, -- canonical JSON
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
) STRICT;
`,
	// 2: the key parts of executions, so a plan can say what changed.
	`
CREATE TABLE key_parts (
	execution_id INTEGER PRIMARY KEY REFERENCES executions (id),
	parts        TEXT NOT NULL
) STRICT;
CREATE INDEX executions_address ON executions (address, id);
`,
}
