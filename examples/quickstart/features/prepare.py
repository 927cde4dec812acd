#!/usr/bin/env python3
"""Feature transform of the quickstart: standardize the tumour measurements.

Weir runs this as the transform of the feature set (features.tumor_v1), under
the step contract (DESIGN.md section 5):

  input   WEIR_INPUT_DATA       the tumours CSV: id, 30 numeric features,
                                and (optionally) the 0/1 label `malignant`
  output  WEIR_OUTPUT_FEATURES  CSV: id, the kept features as z-scores, and
                                `malignant` when the input has it
  output  WEIR_OUTPUT_STATS     optional: JSON of the mean and standard
                                deviation used per feature (written only
                                when the variable is set)
  params  WEIR_PARAMS           optional JSON object:
            columns  list of feature names to keep, in that order
                     (default: every column but `id` and `malignant`)
  metrics WEIR_METRICS          one line: rows, columns, train_rows,
                                validation_rows, test_rows

The z-scores use the mean and standard deviation of the TRAINING rows only,
so nothing about the validation or test rows leaks into the features. Rows
are assigned to a split by hashing their id (split_of below); the training
step (train/common.py) computes the same split. Each code folder is kept
self-contained (a code folder is hashed into its step's cache key and copied
into container images on its own, so features/ cannot import from train/);
the split function is therefore written twice, and
examples/quickstart/quickstart_test.go checks that both copies, and an
independent Go version, agree.

Python 3 standard library only; the output is a deterministic function of
the input and the params.
"""

import csv
import hashlib
import json
import math
import os
import sys

PROG = "features/prepare.py"
ID = "id"
LABEL = "malignant"


def fail(msg):
    print("%s: error: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(1)


# --- split: keep identical to split_of in train/common.py ------------------

def split_bucket(row_id):
    """Returns the bucket 0..99 of an id: the first 8 bytes of the sha256 of
    the id string (UTF-8, surrounding spaces removed), as a big-endian
    unsigned integer, modulo 100."""
    digest = hashlib.sha256(str(row_id).strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_of(row_id):
    """Returns "test" (buckets 0..19), "validation" (20..34) or "train"
    (35..99) for an id."""
    b = split_bucket(row_id)
    if b < 20:
        return "test"
    if b < 35:
        return "validation"
    return "train"


# --- the step contract ------------------------------------------------------

def input_path(name):
    var = "WEIR_INPUT_" + name.upper()
    path = os.environ.get(var)
    if not path:
        fail("%s is not set: this step needs its %r input (a path to the tumours CSV)" % (var, name))
    if not os.path.isfile(path):
        fail("%s=%s: no such file" % (var, path))
    return path


def output_path(name, required=True):
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


def append_metrics(metrics):
    path = os.environ.get("WEIR_METRICS")
    if not path:
        print("%s: WEIR_METRICS is not set; metrics not recorded: %s"
              % (PROG, json.dumps(metrics, sort_keys=True)), file=sys.stderr)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(metrics, sort_keys=True) + "\n")


# --- the transform -----------------------------------------------------------

def read_table(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            fail("%s is empty: want a header line" % path)
        header = [h.strip() for h in header]
        if ID not in header:
            fail("%s has no %r column (its columns: %s)" % (path, ID, ", ".join(header)))
        if len(set(header)) != len(header):
            fail("%s has duplicate column names" % path)
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                fail("%s:%d: %d fields, want %d" % (path, line_no, len(row), len(header)))
            rows.append((line_no, row))
    if not rows:
        fail("%s has no data rows" % path)
    return header, rows


def choose_columns(params, header):
    available = [h for h in header if h not in (ID, LABEL)]
    unknown = sorted(set(params) - {"columns"})
    if unknown:
        print("%s: warning: ignoring unknown params %s (known: columns)"
              % (PROG, ", ".join(unknown)), file=sys.stderr)
    cols = params.get("columns")
    if cols is None:
        return available
    if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols):
        fail("params: columns must be a non-empty list of column names, got %s" % json.dumps(cols))
    missing = [c for c in cols if c not in available]
    if missing:
        fail("params: columns %s are not feature columns of the input (available: %s)"
             % (", ".join(missing), ", ".join(available)))
    if len(set(cols)) != len(cols):
        fail("params: columns lists a column twice")
    return cols


def parse_number(path, line_no, column, text):
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if text.strip() == "" or not math.isfinite(x):
        fail("%s:%d: column %s: %r is not a finite number" % (path, line_no, column, text))
    return x


def main():
    data = input_path("data")
    out = output_path("features")
    stats_out = output_path("stats", required=False)
    params = read_params()

    header, rows = read_table(data)
    columns = choose_columns(params, header)
    has_label = LABEL in header
    index = {h: i for i, h in enumerate(header)}

    ids, labels, values, splits = [], [], [], []
    seen = set()
    for line_no, row in rows:
        row_id = row[index[ID]].strip()
        if not row_id:
            fail("%s:%d: empty %s" % (data, line_no, ID))
        if row_id in seen:
            fail("%s:%d: duplicate %s %s" % (data, line_no, ID, row_id))
        seen.add(row_id)
        ids.append(row_id)
        splits.append(split_of(row_id))
        values.append([parse_number(data, line_no, c, row[index[c]]) for c in columns])
        if has_label:
            y = row[index[LABEL]].strip()
            if y not in ("0", "1"):
                fail("%s:%d: %s is %r, want 0 or 1" % (data, line_no, LABEL, y))
            labels.append(y)

    train = [v for v, s in zip(values, splits) if s == "train"]
    if len(train) < 2:
        fail("only %d training rows: cannot compute standardization statistics" % len(train))
    means, stds = [], []
    for j, c in enumerate(columns):
        col = [v[j] for v in train]
        mean = math.fsum(col) / len(col)
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in col) / len(col))
        if std == 0.0:
            print("%s: warning: column %s is constant on the training rows; it is only centred"
                  % (PROG, c), file=sys.stderr)
            std = 1.0
        means.append(mean)
        stds.append(std)

    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([ID] + columns + ([LABEL] if has_label else []))
        for i, row_id in enumerate(ids):
            z = [repr((x - m) / s) for x, m, s in zip(values[i], means, stds)]
            w.writerow([row_id] + z + ([labels[i]] if has_label else []))

    if stats_out:
        stats = {
            "split": "train",
            "rows": len(train),
            "columns": [{"name": c, "mean": m, "std": s} for c, m, s in zip(columns, means, stds)],
        }
        with open(stats_out, "w", encoding="utf-8") as f:
            json.dump(stats, f, indent=2, sort_keys=True)
            f.write("\n")

    counts = {s: splits.count(s) for s in ("train", "validation", "test")}
    append_metrics({
        "rows": len(ids),
        "columns": len(columns),
        "train_rows": counts["train"],
        "validation_rows": counts["validation"],
        "test_rows": counts["test"],
    })
    print("%s: %d rows, %d features standardized on %d training rows (validation %d, test %d)"
          % (PROG, len(ids), len(columns), counts["train"], counts["validation"], counts["test"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
