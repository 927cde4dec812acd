package schema

// The IR: plain Go structs that mirror weir.cue field for field. The loader
// decodes a checked spec into a Project; every later pass reads the IR, never
// CUE. TestIRMirrorsSchema holds the two together.

// Project is a whole spec.
type Project struct {
	Project     string                 `json:"project"`
	Owner       string                 `json:"owner,omitempty"`
	Description string                 `json:"description,omitempty"`
	Labels      map[string]string      `json:"labels,omitempty"`
	Defaults    *Defaults              `json:"defaults,omitempty"`
	Backends    map[string]*Backend    `json:"backends,omitempty"`
	Datasets    map[string]*Dataset    `json:"datasets,omitempty"`
	Features    map[string]*FeatureSet `json:"features,omitempty"`
	Training    map[string]*Training   `json:"training,omitempty"`
	Models      map[string]*Model      `json:"models,omitempty"`
	Serving     map[string]*Serving    `json:"serving,omitempty"`
	Monitoring  map[string]*Monitoring `json:"monitoring,omitempty"`
	Batch       map[string]*Batch      `json:"batch,omitempty"`
	Tasks       map[string]*Task       `json:"tasks,omitempty"`
	Governance  *Governance            `json:"governance,omitempty"`
	Policy      *Policy                `json:"policy,omitempty"`
}

// Sections lists the spec's sections that hold named elements, in the order
// the compiler walks them. Addresses start with one of these.
var Sections = []string{"datasets", "features", "training", "models", "serving", "monitoring", "batch", "tasks"}

// TopLevelFields lists every field of #Project, for "did you mean".
var TopLevelFields = []string{"project", "owner", "description", "labels", "defaults", "backends",
	"datasets", "features", "training", "models", "serving", "monitoring", "batch", "tasks", "governance", "policy"}

// Defaults are values steps inherit.
type Defaults struct {
	Backend   string     `json:"backend,omitempty"`
	Resources *Resources `json:"resources,omitempty"`
	Retries   *int       `json:"retries,omitempty"`
	Timeout   string     `json:"timeout,omitempty"`
	Image     string     `json:"image,omitempty"`
}

// Backend configures one place where steps run.
type Backend struct {
	Kind           string         `json:"kind"`
	Parallelism    int            `json:"parallelism,omitempty"`
	GPUs           int            `json:"gpus,omitempty"`
	GPUType        string         `json:"gpuType,omitempty"`
	Namespace      string         `json:"namespace,omitempty"`
	Context        string         `json:"context,omitempty"`
	Kubeconfig     string         `json:"kubeconfig,omitempty"`
	ServiceAccount string         `json:"serviceAccount,omitempty"`
	Queue          string         `json:"queue,omitempty"`
	Host           string         `json:"host,omitempty"`
	Registry       string         `json:"registry,omitempty"`
	Region         string         `json:"region,omitempty"`
	Prices         *Prices        `json:"prices,omitempty"`
	Config         map[string]any `json:"config,omitempty"`
}

// Prices are a backend's prices.
type Prices struct {
	CPUHour       float64 `json:"cpuHour,omitempty"`
	GPUHour       float64 `json:"gpuHour,omitempty"`
	MemoryGiBHour float64 `json:"memoryGiBHour,omitempty"`
}

// Resources are what a step asks of its backend.
type Resources struct {
	CPU     float64 `json:"cpu,omitempty"`
	Memory  string  `json:"memory,omitempty"`
	GPU     int     `json:"gpu,omitempty"`
	GPUType string  `json:"gpuType,omitempty"`
}

// EnvVar is an environment variable: a plain Value, or a Secret reference
// ("env:NAME" or "file:PATH") whose value never enters a plan or state.
type EnvVar struct {
	Value  string `json:"value,omitempty"`
	Secret string `json:"secret,omitempty"`
}

// Run is what every place that runs user code accepts.
type Run struct {
	Image            string            `json:"image,omitempty"`
	Command          []string          `json:"command,omitempty"`
	Code             string            `json:"code,omitempty"`
	Env              map[string]EnvVar `json:"env,omitempty"`
	Resources        *Resources        `json:"resources,omitempty"`
	Backend          string            `json:"backend,omitempty"`
	Retries          *int              `json:"retries,omitempty"`
	Timeout          string            `json:"timeout,omitempty"`
	ExpectedDuration string            `json:"expectedDuration,omitempty"`
	Network          bool              `json:"network,omitempty"`
	CacheIgnore      []string          `json:"cacheIgnore,omitempty"`
}

// Dataset is a data source with its contract.
type Dataset struct {
	Description string `json:"description,omitempty"`
	Source      Source `json:"source"`
	// Schema maps a column to its constraint as CUE source text (e.g.
	// "int & >=0"); Rules holds the same constraints compiled for the
	// runtime's row validator.
	Schema map[string]string     `json:"schema,omitempty" weir:"constraint"`
	Rules  map[string]ColumnRule `json:"-"`
	Checks *Checks               `json:"checks,omitempty"`
	PII    []string              `json:"pii,omitempty"`
}

// Source is where a dataset's data comes from.
type Source struct {
	Kind     string  `json:"kind"`
	URI      string  `json:"uri,omitempty"`
	Format   string  `json:"format,omitempty"`
	SHA256   string  `json:"sha256,omitempty"`
	Region   string  `json:"region,omitempty"`
	Endpoint string  `json:"endpoint,omitempty"`
	Driver   string  `json:"driver,omitempty"`
	DSN      *EnvVar `json:"dsn,omitempty"`
	Query    string  `json:"query,omitempty"`
}

// Checks are quality checks over a whole dataset.
type Checks struct {
	MinRows         *int               `json:"minRows,omitempty"`
	MaxRows         *int               `json:"maxRows,omitempty"`
	MaxNullFraction map[string]float64 `json:"maxNullFraction,omitempty"`
	Unique          []string           `json:"unique,omitempty"`
}

// FeatureSet derives features from datasets.
type FeatureSet struct {
	Description string   `json:"description,omitempty"`
	From        []string `json:"from"`
	Entity      []string `json:"entity,omitempty"`
	Columns     []string `json:"columns,omitempty"`
	Transform   *Run     `json:"transform,omitempty"`
	TTL         string   `json:"ttl,omitempty"`
}

// Search is a hyperparameter search.
type Search struct {
	Method string `json:"method"`
	// Params maps a hyperparameter to a list of values or a Range.
	Params      map[string]SearchParam `json:"params"`
	Seed        int64                  `json:"seed,omitempty"`
	Budget      int                    `json:"budget,omitempty"`
	Parallelism int                    `json:"parallelism,omitempty"`
	Objective   Objective              `json:"objective"`
}

// SearchParam is either a list of Values or a Range.
type SearchParam struct {
	Values []any  `json:"values,omitempty"`
	Range  *Range `json:"range,omitempty"`
}

// Range is a numeric range for random search.
type Range struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	Log bool    `json:"log,omitempty"`
	Int bool    `json:"int,omitempty"`
}

// Objective names a metric and its direction.
type Objective struct {
	Metric string `json:"metric"`
	Goal   string `json:"goal"`
}

// Training trains a model.
type Training struct {
	Run
	Description string         `json:"description,omitempty"`
	Features    []string       `json:"features"`
	Params      map[string]any `json:"params,omitempty"`
	Search      *Search        `json:"search,omitempty"`
	Distributed *Distributed   `json:"distributed,omitempty"`
	Outputs     []string       `json:"outputs,omitempty"`
	Evaluate    *Evaluate      `json:"evaluate,omitempty"`
}

// Distributed training settings.
type Distributed struct {
	Workers int `json:"workers"`
}

// Evaluate runs user code on held-out data against the chosen model.
type Evaluate struct {
	Run
	Data string `json:"data,omitempty"`
}

// Model is a registry entry fed by training.
type Model struct {
	Description string `json:"description,omitempty"`
	From        string `json:"from"`
	// Gates maps a metric to its constraint as CUE source text; GateRules
	// holds them compiled.
	Gates     map[string]string     `json:"gates,omitempty" weir:"constraint"`
	GateRules map[string]ColumnRule `json:"-"`
	Approval  *Approval             `json:"approval,omitempty"`
	// Aliases maps an alias to a version number or "latest".
	Aliases map[string]AliasTarget `json:"aliases,omitempty"`
}

// AliasTarget is a version number, or Latest.
type AliasTarget struct {
	Version int  `json:"version,omitempty"`
	Latest  bool `json:"latest,omitempty"`
}

// Approval says whether promotion needs a human approval.
type Approval struct {
	Required  bool     `json:"required,omitempty"`
	Approvers []string `json:"approvers,omitempty"`
}

// Serving is an online endpoint for a model.
type Serving struct {
	Description string      `json:"description,omitempty"`
	Model       string      `json:"model"`
	Environment string      `json:"environment,omitempty"`
	Backend     string      `json:"backend,omitempty"`
	Server      *Run        `json:"server,omitempty"`
	Port        int         `json:"port,omitempty"`
	Autoscale   *Autoscale  `json:"autoscale,omitempty"`
	Canary      *Canary     `json:"canary,omitempty"`
	Cache       *Cache      `json:"cache,omitempty"`
	RequestLog  *RequestLog `json:"requestLog,omitempty"`
}

// Autoscale bounds the number of replicas.
type Autoscale struct {
	Min       *int    `json:"min,omitempty"`
	Max       int     `json:"max,omitempty"`
	TargetRPS float64 `json:"targetRPS,omitempty"`
	TargetCPU int     `json:"targetCPU,omitempty"`
}

// Canary rolls out a new version in traffic steps.
type Canary struct {
	Steps      []int       `json:"steps"`
	Interval   string      `json:"interval,omitempty"`
	RollbackOn *RollbackOn `json:"rollbackOn,omitempty"`
}

// RollbackOn are the SLOs whose breach rolls back.
type RollbackOn struct {
	ErrorRate  *float64 `json:"errorRate,omitempty"`
	LatencyP99 string   `json:"latencyP99,omitempty"`
}

// Cache caches responses.
type Cache struct {
	TTL        string `json:"ttl"`
	MaxEntries int    `json:"maxEntries,omitempty"`
}

// RequestLog records requests for drift monitoring.
type RequestLog struct {
	Sample float64 `json:"sample"`
}

// Monitoring watches a served model.
type Monitoring struct {
	Serving     string       `json:"serving,omitempty"`
	Schedule    string       `json:"schedule,omitempty"`
	Drift       *Drift       `json:"drift,omitempty"`
	Performance *Performance `json:"performance,omitempty"`
	Alerts      []Alert      `json:"alerts,omitempty"`
}

// Drift compares live inputs with a reference.
type Drift struct {
	Reference string   `json:"reference"`
	Method    string   `json:"method,omitempty"`
	Threshold float64  `json:"threshold"`
	Schedule  string   `json:"schedule,omitempty"`
	Columns   []string `json:"columns,omitempty"`
}

// Performance compares predictions with delayed labels.
type Performance struct {
	Labels   string   `json:"labels"`
	Metric   string   `json:"metric"`
	Min      *float64 `json:"min,omitempty"`
	Schedule string   `json:"schedule,omitempty"`
}

// Alert fires when a metric crosses a threshold. Above and Below hold a
// number or a duration string.
type Alert struct {
	Metric string `json:"metric"`
	Above  any    `json:"above,omitempty"`
	Below  any    `json:"below,omitempty"`
	For    string `json:"for,omitempty"`
	Notify string `json:"notify"`
}

// Batch scores a dataset with a model on a schedule.
type Batch struct {
	Run
	Model    string `json:"model"`
	Input    string `json:"input"`
	Schedule string `json:"schedule,omitempty"`
}

// Task is any other step.
type Task struct {
	Run
	Description string   `json:"description,omitempty"`
	Needs       []string `json:"needs,omitempty"`
	Outputs     []string `json:"outputs,omitempty"`
}

// Governance is who owns what and what model cards say.
type Governance struct {
	Owners    []string            `json:"owners,omitempty"`
	Roles     map[string][]string `json:"roles,omitempty"`
	ModelCard *ModelCard          `json:"modelCard,omitempty"`
}

// ModelCard fields copied into generated model cards.
type ModelCard struct {
	IntendedUse           string `json:"intendedUse,omitempty"`
	Limitations           string `json:"limitations,omitempty"`
	EthicalConsiderations string `json:"ethicalConsiderations,omitempty"`
	License               string `json:"license,omitempty"`
	Contact               string `json:"contact,omitempty"`
}

// Policy configures compliance checks.
type Policy struct {
	Bundles     []string          `json:"bundles,omitempty"`
	Builtin     *bool             `json:"builtin,omitempty"`
	Data        map[string]any    `json:"data,omitempty"`
	Enforcement map[string]string `json:"enforcement,omitempty"`
	Waivers     []Waiver          `json:"waivers,omitempty"`
	Timeout     string            `json:"timeout,omitempty"`
}

// Waiver accepts one rule's findings on one address until it expires.
type Waiver struct {
	Rule    string `json:"rule"`
	Address string `json:"address"`
	Reason  string `json:"reason"`
	Expires string `json:"expires"`
}
