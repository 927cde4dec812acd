package schema

// Configs of builtin steps, carried in Step.Config. The runtime decodes the
// one matching Step.Kind.

// IngestConfig copies a dataset's source into the artifact store.
type IngestConfig struct {
	Dataset string `json:"dataset"`
	Source  Source `json:"source"`
	// SourceDigest is the content digest of a file source at plan time.
	SourceDigest string `json:"source_digest,omitempty"`
}

// ValidateConfig checks rows against column rules and dataset checks.
type ValidateConfig struct {
	Dataset string                `json:"dataset"`
	Format  string                `json:"format"`
	Rules   map[string]ColumnRule `json:"rules,omitempty"`
	Checks  *Checks               `json:"checks,omitempty"`
}

// ProfileConfig computes per-column statistics.
type ProfileConfig struct {
	Dataset string   `json:"dataset"`
	Format  string   `json:"format"`
	PII     []string `json:"pii,omitempty"`
}

// MaterializeConfig selects columns of a feature set without user code.
type MaterializeConfig struct {
	Columns []string `json:"columns,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// SelectConfig picks the best trial by the objective.
type SelectConfig struct {
	Objective Objective `json:"objective"`
	// Trials are the addresses of the trial steps, in plan order.
	Trials []string `json:"trials"`
}

// RegisterConfig creates a model version and checks its gates.
type RegisterConfig struct {
	Model    string                `json:"model"`
	Gates    map[string]ColumnRule `json:"gates,omitempty"`
	Approval *Approval             `json:"approval,omitempty"`
	Training string                `json:"training"`
	Datasets []string              `json:"datasets,omitempty"`
	// Evaluation is the address of the evaluate step whose metrics the
	// gates read first (then the chosen trial's).
	Evaluation string     `json:"evaluation,omitempty"`
	Objective  *Objective `json:"objective,omitempty"`
}

// DeployConfig deploys a model version to a serving endpoint.
type DeployConfig struct {
	Serving string   `json:"serving"`
	Model   string   `json:"model"`
	Alias   string   `json:"alias,omitempty"`
	Weight  int      `json:"weight"`
	Spec    *Serving `json:"spec,omitempty"`
}

// MonitorConfig schedules drift and performance checks.
type MonitorConfig struct {
	Monitoring string      `json:"monitoring"`
	Serving    string      `json:"serving"`
	Spec       *Monitoring `json:"spec"`
}
