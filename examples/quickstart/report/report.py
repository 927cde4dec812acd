#!/usr/bin/env python3
"""Report task of the quickstart: a Markdown summary of a batch of scores.

Weir runs this as tasks.report, after batch.scores, under the step contract
(DESIGN.md section 5):

  input   WEIR_INPUT_SCORES   the scores CSV of score/score.py
                              (id,probability,prediction)
  output  WEIR_OUTPUT_REPORT  Markdown: rows scored, rows predicted positive
                              and the positive rate, the mean probability,
                              and a text histogram of the probabilities in
                              ten bins
  params  none (WEIR_PARAMS is not read)
  metrics WEIR_METRICS        one line: rows, positive_rate, mean_probability
                              (skipped, with a note on stderr, when unset)

Python 3 standard library only; deterministic.
"""

import csv
import json
import math
import os
import sys

PROG = "report/report.py"
BINS = 10
BAR = 40  # characters of the longest histogram bar


def fail(msg):
    print("%s: error: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(1)


def main():
    var = "WEIR_INPUT_SCORES"
    scores_path = os.environ.get(var)
    if not scores_path:
        fail("%s is not set: this step needs its 'scores' input (the CSV of score/score.py)" % var)
    if not os.path.isfile(scores_path):
        fail("%s=%s: no such file" % (var, scores_path))
    report_path = os.environ.get("WEIR_OUTPUT_REPORT")
    if not report_path:
        fail("WEIR_OUTPUT_REPORT is not set: this step writes its 'report' output there")
    parent = os.path.dirname(report_path)
    if parent:
        os.makedirs(parent, exist_ok=True)

    probs, preds = [], []
    with open(scores_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        want = ["id", "probability", "prediction"]
        if reader.fieldnames is None or any(c not in reader.fieldnames for c in want):
            fail("%s: want the columns %s, got %s" % (scores_path, ",".join(want), reader.fieldnames))
        for line_no, row in enumerate(reader, start=2):
            try:
                p = float(row["probability"])
            except (TypeError, ValueError):
                p = float("nan")
            if not (0.0 <= p <= 1.0):
                fail("%s:%d: probability %r is not in [0, 1]" % (scores_path, line_no, row["probability"]))
            if row["prediction"] not in ("0", "1"):
                fail("%s:%d: prediction %r is neither 0 nor 1" % (scores_path, line_no, row["prediction"]))
            probs.append(p)
            preds.append(int(row["prediction"]))
    if not probs:
        fail("%s has no rows" % scores_path)

    n = len(probs)
    positives = sum(preds)
    mean = math.fsum(probs) / n
    counts = [0] * BINS
    for p in probs:
        counts[min(int(p * BINS), BINS - 1)] += 1
    top = max(counts)

    lines = [
        "# Batch scoring report",
        "",
        "| measure | value |",
        "| --- | --- |",
        "| rows scored | %d |" % n,
        "| predicted malignant | %d |" % positives,
        "| positive rate | %.1f%% |" % (100.0 * positives / n),
        "| mean probability | %.3f |" % mean,
        "",
        "## Probability of malignancy",
        "",
        "```",
    ]
    for i, c in enumerate(counts):
        lo, hi = i / BINS, (i + 1) / BINS
        bracket = "]" if i == BINS - 1 else ")"
        bar = "#" * (round(BAR * c / top) if top else 0)
        lines.append("[%.1f, %.1f%s %5d  %s" % (lo, hi, bracket, c, bar))
    lines += ["```", ""]
    with open(report_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))

    metrics = {"rows": n, "positive_rate": positives / n, "mean_probability": mean}
    line = json.dumps(metrics, sort_keys=True)
    metrics_path = os.environ.get("WEIR_METRICS")
    if metrics_path:
        with open(metrics_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    else:
        print("%s: WEIR_METRICS is not set; metrics not recorded: %s" % (PROG, line), file=sys.stderr)
    print("%s: %d rows, %d predicted malignant" % (PROG, n, positives))
    return 0


if __name__ == "__main__":
    sys.exit(main())
