#!/usr/bin/env python3
"""Batch inference step of the quickstart: score every row of a features CSV.

Weir runs this for batch.scores, under the step contract (DESIGN.md
section 5):

  input   WEIR_INPUT_MODEL    the model JSON written by train/train.py
  input   WEIR_INPUT_DATA     a features CSV with an `id` column and the
                              model's feature columns (features/prepare.py's
                              output; a label column, if any, is ignored)
  output  WEIR_OUTPUT_SCORES  CSV: id,probability,prediction (probability of
                              "malignant" with 6 decimals; prediction 1 when
                              probability >= threshold, else 0), in input order
  params  WEIR_PARAMS         optional JSON object:
            threshold  the decision threshold (default: the model's, 0.5);
                       other keys are ignored with a warning
  metrics WEIR_METRICS        one line: rows, positive_rate

Self-contained (this code folder is hashed and shipped on its own), so the
few helpers it needs are written here rather than imported from train/.
Python 3 standard library only; deterministic.
"""

import csv
import json
import math
import os
import sys

PROG = "score/score.py"
ID = "id"
MODEL_FORMAT = "weir-quickstart/logistic-regression/v1"


def fail(msg):
    print("%s: error: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(1)


def input_path(name, what):
    var = "WEIR_INPUT_" + name.upper()
    path = os.environ.get(var)
    if not path:
        fail("%s is not set: this step needs its %r input (%s)" % (var, name, what))
    if not os.path.isfile(path):
        fail("%s=%s: no such file" % (var, path))
    return path


def output_path(name):
    var = "WEIR_OUTPUT_" + name.upper()
    path = os.environ.get(var)
    if not path:
        fail("%s is not set: this step writes its %r output there" % (var, name))
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return path


def read_params():
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
        fail("WEIR_PARAMS=%s must hold a JSON object" % path)
    return params


def append_metrics(metrics):
    line = json.dumps(metrics, sort_keys=True)
    path = os.environ.get("WEIR_METRICS")
    if not path:
        print("%s: WEIR_METRICS is not set; metrics not recorded: %s" % (PROG, line), file=sys.stderr)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def read_model(path):
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


def main():
    model_path = input_path("model", "the model JSON of train/train.py")
    data_path = input_path("data", "a features CSV")
    out_path = output_path("scores")
    params = read_params()
    ignored = sorted(set(params) - {"threshold"})
    if ignored:
        print("%s: warning: ignoring params %s (known: threshold)" % (PROG, ", ".join(ignored)),
              file=sys.stderr)

    model = read_model(model_path)
    threshold = params.get("threshold", model.get("threshold", 0.5))
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        fail("params: threshold must be a number in [0, 1], got %s" % json.dumps(threshold))
    weights = [float(x) for x in model["weights"]]
    bias = float(model["bias"])

    rows = 0
    positives = 0
    with open(data_path, newline="", encoding="utf-8") as f, \
            open(out_path, "w", newline="", encoding="utf-8") as out:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            fail("%s is empty: want a header line" % data_path)
        index = {h.strip(): i for i, h in enumerate(header)}
        if ID not in index:
            fail("%s has no %r column" % (data_path, ID))
        missing = [c for c in model["features"] if c not in index]
        if missing:
            fail("%s lacks the model's feature columns %s" % (data_path, ", ".join(missing)))
        cols = [index[c] for c in model["features"]]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([ID, "probability", "prediction"])
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                fail("%s:%d: %d fields, want %d" % (data_path, line_no, len(row), len(header)))
            x = []
            for c, j in zip(model["features"], cols):
                try:
                    v = float(row[j])
                except ValueError:
                    v = float("nan")
                if not math.isfinite(v):
                    fail("%s:%d: column %s: %r is not a finite number" % (data_path, line_no, c, row[j]))
                x.append(v)
            p = sigmoid(bias + math.fsum(map(float.__mul__, weights, x)))
            pred = 1 if p >= threshold else 0
            writer.writerow([row[index[ID]].strip(), "%.6f" % p, pred])
            rows += 1
            positives += pred
    if rows == 0:
        fail("%s has no data rows" % data_path)
    append_metrics({"rows": rows, "positive_rate": positives / rows})
    print("%s: scored %d rows, %d predicted malignant (%.1f%%)"
          % (PROG, rows, positives, 100.0 * positives / rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
