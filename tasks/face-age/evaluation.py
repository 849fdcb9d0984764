"""Organizer side of face-age: accuracy over the test images.

    python evaluation.py --prediction FILE --test_label_path FILE   → prints one float

Predictions: CSV file_name,age_class with one row per test image and classes 0-4. Malformed predictions are
rejected with a line starting "invalid prediction" on stderr and exit code 2.
"""
import argparse
import sys

import pandas as pd


def invalid(message):
    print(f"invalid prediction: {message}", file=sys.stderr)
    sys.exit(2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prediction", required=True)
    parser.add_argument("--test_label_path", required=True)
    args = parser.parse_args()
    labels = pd.read_csv(args.test_label_path, dtype={"file_name": str}, keep_default_na=False)
    try:  # file names as text (never "NaN"), classes parsed once below
        pred = pd.read_csv(args.prediction, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        invalid(f"not a CSV: {str(exc).splitlines()[0][:200]}")
    if list(pred.columns) != ["file_name", "age_class"]:
        invalid(f"expected columns file_name,age_class, got {','.join(map(str, pred.columns))[:200]}")
    class_text = pred["age_class"].str.strip()
    if not class_text.isin(["0", "1", "2", "3", "4"]).all():
        invalid("age_class must be an integer from 0 to 4")
    if pred["file_name"].duplicated().any():
        invalid(f"duplicate file_name {pred['file_name'][pred['file_name'].duplicated()].iloc[0]!r}")
    if set(pred["file_name"]) != set(labels["file_name"]):
        invalid(f"expected one row for each of the {len(labels)} test images, got {len(pred)}")
    merged = labels.merge(pred.assign(pred=class_text.astype(int)), on="file_name")
    print(float((merged["age_class_x"].to_numpy() == merged["pred"].to_numpy()).mean()))


if __name__ == "__main__":
    main()
