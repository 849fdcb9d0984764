"""Organizer side of garbage-docs: accuracy of the predicted labels.

    python evaluation.py --prediction FILE --test_label_path FILE   → prints one float

Predictions: one label (0 or 1) per line, in the order of test_data.  Malformed predictions are rejected with a
line starting "invalid prediction" on stderr and exit code 2.
"""
import argparse
import csv
import sys

import numpy as np

ZERO, ONE, NEWLINE = ord("0"), ord("1"), ord("\n")


def invalid(message):
    print(f"invalid prediction: {message}", file=sys.stderr)
    sys.exit(2)


def one_digit_per_line(data):
    """The common shape, checked and parsed in one vectorised pass: "0" or "1" then a newline on every line
    (the last newline optional). Returns the digits, or None for any other shape (parsed line by line)."""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) % 2 or not (buf[1::2] == NEWLINE).all():
        return None
    digits = buf[0::2]
    if not ((digits == ZERO) | (digits == ONE)).all():
        return None
    return (digits - ZERO).astype(np.int8)


def read_labels(path):
    with open(path, "rb") as fh:
        header, _, body = fh.read().partition(b"\n")
    if header.strip() == b"label":
        fast = one_digit_per_line(body)
        if fast is not None:
            return fast
    with open(path, encoding="utf-8", newline="") as fh:
        return np.array([int(r["label"]) for r in csv.DictReader(fh)], dtype=np.int8)


def read_predictions(path, expected):
    with open(path, "rb") as fh:
        data = fh.read()
    fast = one_digit_per_line(data)
    if fast is not None and len(fast) == expected:
        return fast
    try:  # anything else: line by line, for a message that names the line
        lines = [ln.strip() for ln in data.decode("utf-8").splitlines()]
    except UnicodeDecodeError:
        invalid("the file is not UTF-8 text")
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) != expected:
        invalid(f"expected {expected} lines (one label per test document), got {len(lines)}")
    for i, line in enumerate(lines, 1):
        if line not in ("0", "1"):
            invalid(f"line {i}: expected 0 or 1, got {line[:40]!r}")
    return np.array([int(line) for line in lines], dtype=np.int8)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prediction", required=True)
    parser.add_argument("--test_label_path", required=True)
    args = parser.parse_args()
    labels = read_labels(args.test_label_path)
    preds = read_predictions(args.prediction, len(labels))
    print(float(np.mean(preds == labels)))


if __name__ == "__main__":
    main()
