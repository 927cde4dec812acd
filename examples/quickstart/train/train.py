#!/usr/bin/env python3
"""Training step of the quickstart: logistic regression by gradient descent.

Weir runs this for each trial of training.classifier, under the step contract
(DESIGN.md section 5):

  input   WEIR_INPUT_FEATURES  the features CSV written by features/prepare.py
                               (id, standardized features, malignant)
  output  WEIR_OUTPUT_MODEL    the model as JSON: format, features, weights,
                               bias, threshold, the resolved params, row
                               counts and the validation metrics
  params  WEIR_PARAMS          optional JSON object (unknown keys are an error,
                               so that a misspelt hyperparameter cannot go
                               unnoticed):
            lr          learning rate, > 0 (default 0.1)
            l2          L2 penalty on the weights, >= 0 (default 0)
            epochs      passes over the training rows, >= 1 (default 200)
            batch_size  rows per gradient step; 0 = all rows, i.e.
                        full-batch gradient descent (default 0)
            seed        seed of the row shuffling of mini-batch training
                        (default 0; full-batch training does not shuffle)
  metrics WEIR_METRICS         one line, on the validation split:
                               auc, accuracy, loss (mean log-loss)

Rows are split by a hash of their id (train/common.py): the model is fitted
on the "train" rows, the metrics are measured on the "validation" rows, and
the "test" rows are never read here (train/evaluate.py uses them).

Deterministic: the same features and params give a byte-identical model
file on the same platform. Python 3 standard library only.
"""

import os
import random
import sys
from operator import mul

sys.dont_write_bytecode = True  # keep the code folder (hashed by Weir) clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

PARAMS = ("lr", "l2", "epochs", "batch_size", "seed")


def resolve_params(params):
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        common.fail("params: unknown %s (known: %s)" % (", ".join(unknown), ", ".join(PARAMS)))
    return {
        "lr": common.param_number(params, "lr", 0.1, minimum=0, exclusive=True),
        "l2": common.param_number(params, "l2", 0.0, minimum=0),
        "epochs": common.param_number(params, "epochs", 200, minimum=1, integer=True),
        "batch_size": common.param_number(params, "batch_size", 0, minimum=0, integer=True),
        "seed": common.param_number(params, "seed", 0, integer=True),
    }


def fit(rows, labels, p):
    """Minimizes mean log-loss + l2/2 * |w|^2 by gradient descent from zero
    weights. Returns (weights, bias)."""
    n_features = len(rows[0])
    w = [0.0] * n_features
    b = 0.0
    lr, l2 = p["lr"], p["l2"]
    order = list(range(len(rows)))
    size = p["batch_size"] or len(rows)
    rng = random.Random(p["seed"])
    shuffle = size < len(rows)
    # Full batch: the column view of the rows is computed once.
    full_cols = None if shuffle else list(zip(*rows))
    for _ in range(p["epochs"]):
        if shuffle:
            rng.shuffle(order)
        for start in range(0, len(order), size):
            batch = order[start:start + size]
            xs = [rows[i] for i in batch]
            errs = [common.sigmoid(b + sum(map(mul, w, x))) - labels[i] for x, i in zip(xs, batch)]
            cols = full_cols if full_cols is not None else list(zip(*xs))
            m = float(len(batch))
            grad = [sum(map(mul, errs, col)) / m for col in cols]
            w = [wj - lr * (gj + l2 * wj) for wj, gj in zip(w, grad)]
            b -= lr * (sum(errs) / m)
        if not all(map(_finite, w)) or not _finite(b):
            common.fail("training diverged (weights are no longer finite): lower lr (now %s)" % lr)
    return w, b


def _finite(x):
    return x == x and x not in (float("inf"), float("-inf"))


def main():
    common.set_program("train/train.py")
    features_path = common.input_path("features", "the features CSV of features/prepare.py")
    model_path = common.output_path("model")
    params = resolve_params(common.read_params())

    table = common.read_features(features_path, need_label=True)
    train_rows, train_labels = table.subset("train")
    val_rows, val_labels = table.subset("validation")
    if len(train_rows) < 2 or len(set(train_labels)) < 2:
        common.fail("%s: the training split needs rows of both classes (has %d rows)"
                    % (features_path, len(train_rows)))
    if not val_rows:
        common.fail("%s: the validation split is empty" % features_path)

    w, b = fit(train_rows, train_labels, params)

    probs = common.predict(w, b, val_rows)
    metrics = {
        "auc": common.auc(val_labels, probs),
        "accuracy": common.accuracy(val_labels, probs),
        "loss": common.log_loss(val_labels, probs),
    }
    model = {
        "format": common.MODEL_FORMAT,
        "kind": "logistic_regression",
        "label": common.LABEL,
        "positive_class": "malignant",
        "features": table.features,
        "weights": w,
        "bias": b,
        "threshold": 0.5,
        "params": params,
        "rows": {"train": len(train_rows), "validation": len(val_rows)},
        "validation_metrics": metrics,
    }
    common.write_json(model_path, model)
    common.append_metrics(metrics)
    print("train/train.py: lr=%g l2=%g epochs=%d batch_size=%d: validation auc=%.4f accuracy=%.4f loss=%.4f"
          % (params["lr"], params["l2"], params["epochs"], params["batch_size"],
             metrics["auc"], metrics["accuracy"], metrics["loss"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
