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
    try:
        pred = pd.read_csv(args.prediction)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        invalid(f"not a CSV: {str(exc).splitlines()[0][:200]}")
    if list(pred.columns) != ["id", "travel_s"]:
        invalid(f"expected columns id,travel_s, got {','.join(map(str, pred.columns))[:200]}")
    ids = pd.to_numeric(pred["id"], errors="coerce")
    values = pd.to_numeric(pred["travel_s"], errors="coerce")
    if ids.isna().any() or values.isna().any():
        invalid("id and travel_s must be numbers")
    if not np.isfinite(values).all() or (values < 0).any():
        invalid("travel_s must be finite and >= 0")
    if ids.duplicated().any():
        invalid(f"duplicate id {int(ids[ids.duplicated()].iloc[0])}")
    if set(ids.astype(int)) != set(labels["id"]):
        invalid(f"expected the {len(labels)} test ids exactly, got {len(ids)} rows")
    merged = labels.merge(pd.DataFrame({"id": ids.astype(int), "pred": values}), on="id")
    from sklearn.metrics import mean_squared_error

    print(float(np.sqrt(mean_squared_error(merged["travel_s"], merged["pred"]))))


if __name__ == "__main__":
    main()
