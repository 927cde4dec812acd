#!/usr/bin/env python3
"""Evaluation step of the quickstart: the chosen model on held-out rows.

Weir runs this as the evaluate step of training.classifier, under the step
contract (DESIGN.md section 5):

  input   WEIR_INPUT_MODEL    the model JSON written by train/train.py
  input   WEIR_INPUT_DATA     a features CSV with the `malignant` label
                              (features/prepare.py's output)
  output  WEIR_OUTPUT_REPORT  optional (written only when set): JSON with the
                              split, row counts, threshold, the metrics and
                              the confusion matrix {tp, fp, tn, fn}
  params  WEIR_PARAMS         optional JSON object:
            threshold  predict malignant when the probability is >= this
                       (default: the model's, 0.5); other keys are ignored
                       with a warning (Weir may hand evaluation the
                       trial's training params)
  metrics WEIR_METRICS        one line, on the "test" split only: auc,
                              accuracy, precision, recall

Only the rows of the "test" split (train/common.py's split_of) are scored:
training fits on "train" and reports on "validation", so "test" is data the
model and the search have never seen. Python 3 standard library only.
"""

import os
import sys

sys.dont_write_bytecode = True  # keep the code folder (hashed by Weir) clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

SPLIT = "test"


def main():
    common.set_program("train/evaluate.py")
    model_path = common.input_path("model", "the model JSON of train/train.py")
    data_path = common.input_path("data", "a labelled features CSV")
    report_path = common.output_path("report", required=False)
    params = common.read_params()
    ignored = sorted(set(params) - {"threshold"})
    if ignored:
        common.warn("ignoring params %s (known: threshold)" % ", ".join(ignored))

    model = common.read_model(model_path)
    threshold = common.param_number(params, "threshold", model.get("threshold", 0.5), minimum=0)
    if threshold > 1:
        common.fail("params: threshold must be <= 1, got %s" % threshold)

    table = common.read_features(data_path, features=model["features"], need_label=True)
    rows, labels = table.subset(SPLIT)
    if not rows:
        common.fail("%s has no rows in the %r split" % (data_path, SPLIT))

    probs = common.predict(model["weights"], model["bias"], rows)
    tp, fp, tn, fn = common.confusion(labels, probs, threshold)
    if tp + fp == 0:
        common.warn("no row is predicted positive: precision is reported as 0")
    metrics = {
        "auc": common.auc(labels, probs),
        "accuracy": (tp + tn) / len(labels),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
    }
    common.append_metrics(metrics)

    if report_path:
        common.write_json(report_path, {
            "split": SPLIT,
            "rows": len(rows),
            "positives": sum(labels),
            "threshold": threshold,
            "metrics": {k: v for k, v in metrics.items() if v == v},
            "confusion_matrix": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
            "model_params": model.get("params", {}),
        })
    print("train/evaluate.py: %d %s rows: auc=%.4f accuracy=%.4f precision=%.4f recall=%.4f (tp=%d fp=%d tn=%d fn=%d)"
          % (len(rows), SPLIT, metrics["auc"], metrics["accuracy"], metrics["precision"],
             metrics["recall"], tp, fp, tn, fn))
    return 0


if __name__ == "__main__":
    sys.exit(main())
