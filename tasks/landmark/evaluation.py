"""Organizer side of landmark: GAP, global average precision (the Google Landmark Recognition metric).

    python evaluation.py --prediction FILE --test_label_path FILE   → prints one float

One (class_id, confidence) per image at most; all predictions are sorted by confidence and
GAP = (1/M) * sum_i P(i) * rel(i), where M is the number of test images that show a landmark, P(i) the precision
of the first i predictions and rel(i) 1 when prediction i names the right landmark. Predicting a landmark for a
photo of none costs precision, so confidence matters. Malformed predictions are rejected with a line starting
"invalid prediction" on stderr and exit code 2.
"""
import argparse
import sys

import numpy as np
import pandas as pd

CLASSES = 40


def invalid(message):
    print(f"invalid prediction: {message}", file=sys.stderr)
    sys.exit(2)


def gap(labels: pd.DataFrame, pred: pd.DataFrame) -> float:
    truth = labels.set_index("image_id")["class_id"]
    pred = pred.sort_values("confidence", ascending=False, kind="stable")
    rel = (pred["image_id"].map(truth).to_numpy() == pred["class_id"].to_numpy()).astype(float)
    precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    m = int((labels.class_id >= 0).sum())
    return float((precision * rel).sum() / m) if m else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prediction", required=True)
    parser.add_argument("--test_label_path", required=True)
    args = parser.parse_args()
    labels = pd.read_csv(args.test_label_path, dtype={"image_id": str}, keep_default_na=False)
    try:  # every field as text, parsed once below
        pred = pd.read_csv(args.prediction, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        invalid(f"not a CSV: {str(exc).splitlines()[0][:200]}")
    if list(pred.columns) != ["image_id", "class_id", "confidence"]:
        invalid(f"expected columns image_id,class_id,confidence, got {','.join(map(str, pred.columns))[:200]}")
    class_text = pred["class_id"].str.strip()
    conf = pd.to_numeric(pred["confidence"].str.strip(), errors="coerce")
    if not class_text.isin([str(c) for c in range(CLASSES)]).all():
        invalid(f"class_id must be an integer from 0 to {CLASSES - 1}")
    if conf.isna().any() or not np.isfinite(conf).all():
        invalid("confidence must be a finite number")
    if pred["image_id"].duplicated().any():
        invalid(f"more than one prediction for image {pred['image_id'][pred['image_id'].duplicated()].iloc[0]!r}")
    unknown = set(pred["image_id"]) - set(labels["image_id"])
    if unknown:
        invalid(f"{len(unknown)} unknown image ids, e.g. {sorted(unknown)[0]!r}")
    print(gap(labels, pd.DataFrame({"image_id": pred["image_id"], "class_id": class_text.astype(int),
                                    "confidence": conf})))


if __name__ == "__main__":
    main()
