"""Organizer side of bus-eta: RMSE (seconds) of the predicted travel times; lower is better.

    python evaluation.py --prediction FILE --test_label_path FILE   → prints one float

Predictions: CSV with columns id,travel_s, one row per test id. Malformed predictions are rejected with a line
starting "invalid prediction" on stderr and exit code 2.
"""
import argparse
import sys

import numpy as np
import pandas as pd


def invalid(message):
    print(f"invalid prediction: {message}", file=sys.stderr)
    sys.exit(2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prediction", required=True)
    parser.add_argument("--test_label_path", required=True)
    args = parser.parse_args()
    labels = pd.read_csv(args.test_label_path)
    try:  # every field as text, parsed once below in the type it is matched on
        pred = pd.read_csv(args.prediction, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        invalid(f"not a CSV: {str(exc).splitlines()[0][:200]}")
    if list(pred.columns) != ["id", "travel_s"]:
        invalid(f"expected columns id,travel_s, got {','.join(map(str, pred.columns))[:200]}")
    id_text = pred["id"].str.strip()
    if not id_text.str.fullmatch(r"[0-9]{1,15}").all():
        invalid("id must be a whole number as in test_data (e.g. 17), not a decimal or other text")
    ids = id_text.astype(np.int64)
    values = pd.to_numeric(pred["travel_s"].str.strip(), errors="coerce")
    if values.isna().any() or not np.isfinite(values).all() or (values < 0).any():
        invalid("travel_s must be a finite number >= 0")
    if ids.duplicated().any():
        invalid(f"duplicate id {int(ids[ids.duplicated()].iloc[0])}")
    expected = set(labels["id"].astype(np.int64))
    if set(ids) != expected:
        missing, unknown = len(expected - set(ids)), len(set(ids) - expected)
        invalid(f"expected the {len(labels)} test ids exactly, got {len(ids)} rows "
                f"({missing} missing, {unknown} unknown)")
    truth = labels.assign(id=labels["id"].astype(np.int64))
    merged = truth.merge(pd.DataFrame({"id": ids, "pred": values}), on="id")
    print(float(np.sqrt(np.mean((merged["travel_s"].to_numpy(float) - merged["pred"].to_numpy(float)) ** 2))))


if __name__ == "__main__":
    main()
