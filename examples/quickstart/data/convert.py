#!/usr/bin/env python3
"""Re-create tumors.csv from the copy of the Breast Cancer Wisconsin
(Diagnostic) data set that Debian ships in its python3-sklearn package.

How to re-create examples/quickstart/data/tumors.csv:

    apt-get update
    cd /tmp && apt-get download python3-sklearn
    dpkg -x python3-sklearn_*.deb /tmp/skl
    python3 examples/quickstart/data/convert.py \
        /tmp/skl/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv \
        examples/quickstart/data/tumors.csv

(With python3-sklearn installed, the source argument may be left out: the
installed copy under /usr/lib/python3/dist-packages is used. With the output
argument left out, the CSV is written beside this script.)

The file in this repository was made from python3-sklearn 1.2.1+dfsg-1
(Debian bookworm); its breast_cancer.csv has the sha256 in SOURCE_SHA256. A
source with another digest is converted too, with a warning, as long as it
has the expected shape.

The source's first line is a header of counts and class names
("569,30,malignant,benign"), then one row per tumour: 30 numeric features and
the target, where 0 = malignant and 1 = benign (scikit-learn's coding). The
output has a real header:

    id                a synthetic row id, 1..569 in source order (entity key)
    mean_radius ...   the 30 features, named after scikit-learn's
    worst_fractal_dimension   feature_names in snake_case, values copied
                      verbatim (no re-formatting)
    malignant         1 if the tumour is malignant, else 0 (the positive
                      class of the quickstart is "malignant")

The conversion is deterministic: the same source gives a byte-identical
output. Python 3 standard library only.
"""

import csv
import hashlib
import math
import os
import sys

SOURCE_SHA256 = "fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed"

INSTALLED = "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv"

# scikit-learn's feature_names for load_breast_cancer, in column order.
SKLEARN_FEATURE_NAMES = [
    "mean radius", "mean texture", "mean perimeter", "mean area",
    "mean smoothness", "mean compactness", "mean concavity",
    "mean concave points", "mean symmetry", "mean fractal dimension",
    "radius error", "texture error", "perimeter error", "area error",
    "smoothness error", "compactness error", "concavity error",
    "concave points error", "symmetry error", "fractal dimension error",
    "worst radius", "worst texture", "worst perimeter", "worst area",
    "worst smoothness", "worst compactness", "worst concavity",
    "worst concave points", "worst symmetry", "worst fractal dimension",
]

FEATURES = [name.replace(" ", "_") for name in SKLEARN_FEATURE_NAMES]
HEADER = ["id"] + FEATURES + ["malignant"]


def fail(msg):
    print("convert.py: " + msg, file=sys.stderr)
    sys.exit(1)


def convert(source_text):
    """Returns the output CSV text for the source CSV text."""
    rows = list(csv.reader(source_text.splitlines()))
    if not rows:
        fail("the source is empty")
    head = rows[0]
    if len(head) != 4 or head[2:] != ["malignant", "benign"]:
        fail("unexpected first line %r: want '569,30,malignant,benign'" % ",".join(head))
    n_rows, n_features = int(head[0]), int(head[1])
    if n_features != len(FEATURES):
        fail("the source has %d features, want %d" % (n_features, len(FEATURES)))
    body = rows[1:]
    if len(body) != n_rows:
        fail("the header announces %d rows, the file has %d" % (n_rows, len(body)))

    out = [",".join(HEADER)]
    for i, row in enumerate(body, start=1):
        if len(row) != n_features + 1:
            fail("source row %d has %d fields, want %d" % (i, len(row), n_features + 1))
        values = row[:n_features]
        for name, v in zip(FEATURES, values):
            x = float(v)  # raises on garbage, which is what we want
            if not math.isfinite(x):
                fail("source row %d: %s is %r" % (i, name, v))
        target = row[n_features]
        if target not in ("0", "1"):
            fail("source row %d: target %r is neither 0 nor 1" % (i, target))
        # scikit-learn: 0 = malignant, 1 = benign.
        malignant = "1" if target == "0" else "0"
        out.append(",".join([str(i)] + values + [malignant]))
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) > 3 or (len(argv) > 1 and argv[1] in ("-h", "--help")):
        print("usage: convert.py [SOURCE_CSV [OUTPUT_CSV]]", file=sys.stderr)
        return 2
    source = argv[1] if len(argv) > 1 else INSTALLED
    output = argv[2] if len(argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "tumors.csv")
    if not os.path.isfile(source):
        fail("no source file %s: see the docstring of this script for how to get it "
             "from Debian's python3-sklearn package" % source)
    with open(source, "rb") as f:
        raw = f.read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        print("convert.py: warning: %s has sha256 %s, not %s (python3-sklearn "
              "1.2.1+dfsg-1); converting anyway" % (source, digest, SOURCE_SHA256),
              file=sys.stderr)
    text = convert(raw.decode("utf-8"))
    with open(output, "w", newline="\n", encoding="utf-8") as f:
        f.write(text)
    print("wrote %s (%d rows)" % (output, text.count("\n") - 1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
