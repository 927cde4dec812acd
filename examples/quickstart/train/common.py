"""Helpers shared by train/train.py and train/evaluate.py.

The step contract (DESIGN.md section 5): environment variables name the
inputs (WEIR_INPUT_<NAME>), outputs (WEIR_OUTPUT_<NAME>), the params file
(WEIR_PARAMS, a JSON object, may be absent) and the metrics file
(WEIR_METRICS, JSON lines). A problem is reported on stderr, naming the
variable or file, and the program exits 1.

Also here: the deterministic split of rows by id, the features CSV reader,
and the numerics (sigmoid, log-loss, rank-based AUC, accuracy, precision,
recall). Python 3 standard library only.
"""

import csv
import hashlib
import json
import math
import os
import sys

ID = "id"
LABEL = "malignant"
MODEL_FORMAT = "weir-quickstart/logistic-regression/v1"

_prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "step"


def set_program(name):
    """Sets the program name that prefixes error messages."""
    global _prog
    _prog = name


def fail(msg):
    """Prints msg to stderr, prefixed with the program name, and exits 1."""
    print("%s: error: %s" % (_prog, msg), file=sys.stderr)
    sys.exit(1)


def warn(msg):
    print("%s: warning: %s" % (_prog, msg), file=sys.stderr)


# --- the split: keep identical to split_of in features/prepare.py -----------
#
# features/ and train/ are separate code folders (each is hashed into its
# step's cache key and shipped into images on its own), so each has its own
# copy; quickstart_test.go checks that the two copies and a Go version agree.

def split_bucket(row_id):
    """Returns the bucket 0..99 of an id: the first 8 bytes of the sha256 of
    the id string (UTF-8, surrounding spaces removed), as a big-endian
    unsigned integer, modulo 100."""
    digest = hashlib.sha256(str(row_id).strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_of(row_id):
    """Returns "test" (buckets 0..19: held out, used only by evaluate),
    "validation" (20..34: the metrics train reports for the search) or
    "train" (35..99) for an id."""
    b = split_bucket(row_id)
    if b < 20:
        return "test"
    if b < 35:
        return "validation"
    return "train"


# --- the step contract --------------------------------------------------------

def input_path(name, what="file"):
    """Returns the path in WEIR_INPUT_<NAME>; fails if unset or missing."""
    var = "WEIR_INPUT_" + name.upper()
    path = os.environ.get(var)
    if not path:
        fail("%s is not set: this step needs its %r input (%s)" % (var, name, what))
    if not os.path.isfile(path):
        fail("%s=%s: no such file" % (var, path))
    return path


def output_path(name, required=True):
    """Returns the path in WEIR_OUTPUT_<NAME>, creating its folder; fails if
    unset and required, else returns None."""
    var = "WEIR_OUTPUT_" + name.upper()
    path = os.environ.get(var)
    if not path:
        if required:
            fail("%s is not set: this step writes its %r output there" % (var, name))
        return None
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return path


def read_params():
    """Returns the JSON object in the WEIR_PARAMS file, or {} if unset."""
    path = os.environ.get("WEIR_PARAMS")
    if not path:
        return {}
    if not os.path.isfile(path):
        fail("WEIR_PARAMS=%s: no such file" % path)
    try:
        with open(path, encoding="utf-8") as f:
            params = json.load(f)
    except ValueError as e:
        fail("WEIR_PARAMS=%s is not valid JSON: %s" % (path, e))
    if not isinstance(params, dict):
        fail("WEIR_PARAMS=%s must hold a JSON object, not %s" % (path, type(params).__name__))
    return params


def param_number(params, name, default, minimum=None, exclusive=False, integer=False):
    """Returns params[name] (or default) checked to be a number (an integer
    when integer is set; 200.0 counts as 200) not below minimum (or above it,
    when exclusive)."""
    v = params.get(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        fail("params: %s must be a number, got %s" % (name, json.dumps(v)))
    if integer:
        if v != int(v):
            fail("params: %s must be an integer, got %s" % (name, json.dumps(v)))
        v = int(v)
    else:
        v = float(v)
    if minimum is not None:
        if exclusive and not v > minimum:
            fail("params: %s must be > %s, got %s" % (name, minimum, json.dumps(params.get(name, default))))
        if not exclusive and not v >= minimum:
            fail("params: %s must be >= %s, got %s" % (name, minimum, json.dumps(params.get(name, default))))
    return v


def append_metrics(metrics):
    """Appends one JSON line of metrics to WEIR_METRICS. Undefined (NaN or
    None) metrics are left out with a warning; without WEIR_METRICS the line
    goes to stderr."""
    clean = {}
    for k, v in metrics.items():
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            warn("metric %s is undefined on this data; not recorded" % k)
            continue
        clean[k] = v
    line = json.dumps(clean, sort_keys=True)
    path = os.environ.get("WEIR_METRICS")
    if not path:
        warn("WEIR_METRICS is not set; metrics not recorded: " + line)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def write_json(path, obj):
    """Writes obj as indented JSON with sorted keys (byte-stable)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


# --- data ---------------------------------------------------------------------

class Table:
    """A features CSV: ids, feature names, rows of floats, labels (0/1 ints,
    or None when the file has no label column) and each row's split."""

    def __init__(self, ids, features, rows, labels):
        self.ids = ids
        self.features = features
        self.rows = rows
        self.labels = labels
        self.splits = [split_of(i) for i in ids]

    def subset(self, split):
        """Returns (rows, labels) of one split."""
        rows = [r for r, s in zip(self.rows, self.splits) if s == split]
        labels = None
        if self.labels is not None:
            labels = [y for y, s in zip(self.labels, self.splits) if s == split]
        return rows, labels


def read_features(path, features=None, need_label=True):
    """Reads a features CSV (id, numeric feature columns, malignant). With
    features given, returns those columns in that order (a model's); else
    every column but id and the label."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            fail("%s is empty: want a header line" % path)
        header = [h.strip() for h in header]
        index = {h: i for i, h in enumerate(header)}
        if ID not in index:
            fail("%s has no %r column (its columns: %s)" % (path, ID, ", ".join(header)))
        if need_label and LABEL not in index:
            fail("%s has no %r label column" % (path, LABEL))
        if features is None:
            features = [h for h in header if h not in (ID, LABEL)]
        else:
            missing = [c for c in features if c not in index]
            if missing:
                fail("%s lacks the model's feature columns %s" % (path, ", ".join(missing)))
        if not features:
            fail("%s has no feature columns" % path)
        cols = [index[c] for c in features]
        has_label = LABEL in index
        ids, rows, labels = [], [], []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                fail("%s:%d: %d fields, want %d" % (path, line_no, len(row), len(header)))
            ids.append(row[index[ID]].strip())
            values = []
            for c, j in zip(features, cols):
                try:
                    x = float(row[j])
                except ValueError:
                    x = float("nan")
                if not math.isfinite(x):
                    fail("%s:%d: column %s: %r is not a finite number" % (path, line_no, c, row[j]))
                values.append(x)
            rows.append(values)
            if has_label:
                y = row[index[LABEL]].strip()
                if y not in ("0", "1"):
                    fail("%s:%d: %s is %r, want 0 or 1" % (path, line_no, LABEL, y))
                labels.append(int(y))
    if not rows:
        fail("%s has no data rows" % path)
    return Table(ids, features, rows, labels if has_label else None)


def read_model(path):
    """Reads and checks a model JSON written by train.py."""
    try:
        with open(path, encoding="utf-8") as f:
            model = json.load(f)
    except ValueError as e:
        fail("%s is not valid JSON: %s" % (path, e))
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        fail("%s is not a model written by train/train.py (want format %r)" % (path, MODEL_FORMAT))
    feats, weights = model.get("features"), model.get("weights")
    if not isinstance(feats, list) or not isinstance(weights, list) or len(feats) != len(weights):
        fail("%s: features and weights must be lists of the same length" % path)
    return model


# --- numerics -------------------------------------------------------------------

def sigmoid(z):
    """The logistic function, without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def predict(weights, bias, rows):
    """Returns the probability of the positive class for each row."""
    return [sigmoid(bias + math.fsum(map(float.__mul__, weights, x))) for x in rows]


def log_loss(labels, probs, eps=1e-15):
    """Mean negative log-likelihood, probabilities clipped to [eps, 1-eps]."""
    total = 0.0
    for y, p in zip(labels, probs):
        p = min(max(p, eps), 1.0 - eps)
        total -= math.log(p) if y == 1 else math.log(1.0 - p)
    return total / len(labels)


def auc(labels, scores):
    """Area under the ROC curve by ranks (the Mann-Whitney U statistic); tied
    scores get their average rank. NaN when only one class is present."""
    n_pos = sum(1 for y in labels if y == 1)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0  # ranks are 1-based
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    rank_sum = math.fsum(r for r, y in zip(ranks, labels) if y == 1)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def confusion(labels, probs, threshold=0.5):
    """Returns (tp, fp, tn, fn), predicting positive when p >= threshold."""
    tp = fp = tn = fn = 0
    for y, p in zip(labels, probs):
        if p >= threshold:
            if y == 1:
                tp += 1
            else:
                fp += 1
        elif y == 1:
            fn += 1
        else:
            tn += 1
    return tp, fp, tn, fn


def accuracy(labels, probs, threshold=0.5):
    tp, fp, tn, fn = confusion(labels, probs, threshold)
    return (tp + tn) / len(labels)
