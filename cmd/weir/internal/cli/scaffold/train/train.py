"""A stand-in training step: replace it with yours.

Weir runs it under the step contract: it reads WEIR_INPUT_FEATURES (a CSV),
writes the model to WEIR_OUTPUT_MODEL and appends metrics as JSON lines to
WEIR_METRICS.
"""
import csv
import json
import os

params = {}
if os.environ.get("WEIR_PARAMS"):
    with open(os.environ["WEIR_PARAMS"]) as f:
        params = json.load(f)
threshold = float(params.get("threshold", 0.5))

with open(os.environ["WEIR_INPUT_FEATURES"], newline="") as f:
    rows = list(csv.DictReader(f))
correct = sum((float(r["x"]) > threshold) == (r["label"] == "1") for r in rows)

with open(os.environ["WEIR_OUTPUT_MODEL"], "w") as f:
    json.dump({"threshold": threshold}, f)
with open(os.environ["WEIR_METRICS"], "a") as f:
    f.write(json.dumps({"accuracy": correct / len(rows)}) + "\n")
