# Weir quickstart in HCL: the same project as examples/quickstart/weir.cue
# (a tumour classifier, end to end, on this machine), and the same plan.
#
# A dataset's column constraints and a model's gates are CUE constraints,
# written here as strings: "int & >=1", ">=0.9". References to elements
# are HCL traversals (features.tumor_v1) or, with a model alias, strings.
#
# The code folders, the data and the programs are those of
# examples/quickstart (linked here).

project     = "quickstart"
owner       = "ml-platform@example.com"
description = "Classify breast tumours as malignant or benign from cell-nucleus measurements."

backend "local" {
  kind        = "local"
  parallelism = 2
}

defaults {
  backend   = "local"
  timeout   = "10m"
  resources = { cpu = 1, memory = "1Gi" }
}

locals {
  # The 30 measurements: mean, standard error and "worst" of ten nucleus
  # features (see data/LICENSE.md).
  measurements = [
    "radius", "texture", "perimeter", "area", "smoothness", "compactness",
    "concavity", "concave_points", "symmetry", "fractal_dimension",
  ]
  features = concat(
    [for m in local.measurements : "mean_${m}"],
    [for m in local.measurements : "${m}_error"],
    [for m in local.measurements : "worst_${m}"],
  )
}

dataset "tumors" {
  description = "Breast Cancer Wisconsin (Diagnostic), 569 tumours; CC BY 4.0, see data/LICENSE.md."
  source {
    kind   = "file"
    uri    = "data/tumors.csv"
    format = "csv"
    sha256 = "d591eb96bbf23030398d5e61facd2a382e06f49828dc75b2e2ef2b07f6467cde"
  }
  # Every measurement is non-negative; none may be null.
  schema = merge(
    { id = "int & >=1", malignant = "0 | 1" },
    { for f in local.features : f => "number & >=0" },
  )
  checks {
    minRows         = 500
    maxNullFraction = { id = 0, malignant = 0 }
    unique          = ["id"]
  }
}

feature "tumor_v1" {
  description = "The 30 measurements as z-scores (mean and std of the training split only)."
  from        = datasets.tumors
  entity      = "id"
  transform {
    command = ["python3", "prepare.py"]
    code    = "./features"
  }
}

training "classifier" {
  description      = "Logistic regression by gradient descent."
  features         = features.tumor_v1
  command          = ["python3", "train.py"]
  code             = "./train"
  params           = { epochs = 200 }
  expectedDuration = "5s"
  search {
    method    = "grid"
    params    = { lr = [0.05, 0.2, 0.5], l2 = [0, 0.01] }
    objective = { metric = "auc", goal = "maximize" }
  }
  evaluate {
    command = ["python3", "evaluate.py"]
    code    = "./train"
  }
}

model "classifier" {
  description = "Probability that a tumour is malignant."
  from        = training.classifier
  # Checked against the evaluate step's held-out metrics.
  gates   = { auc = ">=0.9", accuracy = ">=0.85" }
  aliases = { production = "latest" }
}

serving "classifier" {
  model       = "models.classifier@production"
  environment = "development"
  port        = 8080
  autoscale   = { min = 1, max = 2, targetRPS = 50 }
  canary {
    steps      = [50, 100]
    interval   = "1m"
    rollbackOn = { errorRate = 0.01, latencyP99 = "250ms" }
  }
  cache      = { ttl = "5m" }
  requestLog = { sample = 1.0 }
}

monitoring "classifier" {
  drift = {
    reference = features.tumor_v1
    method    = "psi"
    threshold = 0.2
    schedule  = "@hourly"
  }
  alerts = [{ metric = "latency_p99", above = "250ms", for = "5m", notify = "webhook:http://localhost:9099/alerts" }]
}

# Batch inference over the feature set, on every apply (no schedule).
batch "scores" {
  model   = "models.classifier@production"
  input   = features.tumor_v1
  command = ["python3", "score.py"]
  code    = "./score"
}

task "report" {
  description = "A Markdown summary of the latest scores."
  needs       = [batch.scores]
  command     = ["python3", "report.py"]
  code        = "./report"
  outputs     = ["report"]
}

governance {
  owners = ["ml-platform@example.com"]
  roles {
    apply   = ["team:ml-platform"]
    approve = ["team:ml-platform"]
    promote = ["team:ml-platform"]
  }
  modelCard {
    intendedUse           = "Teaching and testing Weir: a small, real binary classification task."
    limitations           = "569 tumours from one clinic (University of Wisconsin, 1990s); features are standardized with this data's statistics; not validated for any clinical use."
    ethicalConsiderations = "Medical data: a model trained on it must not be used to diagnose anyone."
    license               = "Data: CC BY 4.0 (Wolberg, Mangasarian, Street & Street, UCI Machine Learning Repository, doi:10.24432/C5DW2B)."
    contact               = "ml-platform@example.com"
  }
}
