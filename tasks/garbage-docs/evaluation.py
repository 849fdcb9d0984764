"""Organizer side of garbage-docs: accuracy of the predicted labels.

    python evaluation.py --prediction FILE --test_label_path FILE   → prints one float

Predictions: one label (0 or 1) per line, in the order of test_data.  Malformed predictions are rejected with a
line starting "invalid prediction" on stderr and exit code 2.
"""
import argparse
import csv
import sys


def invalid(message):
    print(f"invalid prediction: {message}", file=sys.stderr)
    sys.exit(2)


def read_labels(path):
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [int(r["label"]) for r in rows]


def read_predictions(path, expected):
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh.read().splitlines()]
    except UnicodeDecodeError:
        invalid("the file is not UTF-8 text")
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) != expected:
        invalid(f"expected {expected} lines (one label per test document), got {len(lines)}")
    preds = []
    for i, line in enumerate(lines, 1):
        if line not in ("0", "1"):
            invalid(f"line {i}: expected 0 or 1, got {line[:40]!r}")
        preds.append(int(line))
    return preds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prediction", required=True)
    parser.add_argument("--test_label_path", required=True)
    args = parser.parse_args()
    labels = read_labels(args.test_label_path)
    preds = read_predictions(args.prediction, len(labels))
    from sklearn.metrics import accuracy_score  # after validation: malformed input is rejected fast

    print(accuracy_score(labels, preds))


if __name__ == "__main__":
    main()
