"""Organizer side of playlist: mean nDCG@100 of the predicted songs against each test playlist's hidden songs.

    python evaluation.py --prediction FILE --test_label_path FILE   → prints one float

Predictions: JSON list of {"id": playlist id, "songs": [100 distinct song ids]}, one entry per test playlist.
Malformed predictions are rejected with a line starting "invalid prediction" on stderr and exit code 2.
"""
import argparse
import json
import os
import sys

import numpy as np

K = 100


def invalid(message):
    print(f"invalid prediction: {message}", file=sys.stderr)
    sys.exit(2)


def ndcg(predicted: np.ndarray, hidden: list[set]) -> float:
    """predicted: (n, K) song ids; hidden: the true songs per playlist. Vectorised over playlists and ranks."""
    n = len(hidden)
    width = int(max(predicted.max(initial=0), max((max(h) for h in hidden if h), default=0))) + 1
    truth = np.zeros((n, width), dtype=bool)
    rows = np.repeat(np.arange(n), [len(h) for h in hidden])
    truth[rows, np.fromiter((s for h in hidden for s in h), dtype=int, count=len(rows))] = True
    rel = truth[np.arange(n)[:, None], predicted]  # (n, K): is the song at each rank a hidden one
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    ideal = np.cumsum(discounts)[np.minimum(truth.sum(axis=1), K) - 1]
    return float(np.mean(np.where(truth.any(axis=1), (rel * discounts).sum(axis=1) / ideal, 0.0)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prediction", required=True)
    parser.add_argument("--test_label_path", required=True)
    args = parser.parse_args()
    with open(args.test_label_path, encoding="utf-8") as fh:
        labels = {p["id"]: set(p["songs"]) for p in json.load(fh)}
    meta = os.path.join(os.path.dirname(args.test_label_path), "test_data", "song_meta.json")
    with open(meta, encoding="utf-8") as fh:
        known = {s["id"] for s in json.load(fh)}
    try:
        with open(args.prediction, encoding="utf-8") as fh:
            pred = json.load(fh)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested past Python's limit
        invalid(f"not JSON: {str(exc)[:200]}")
    if not isinstance(pred, list) or not all(isinstance(p, dict) and {"id", "songs"} <= set(p) for p in pred):
        invalid('expected a JSON list of {"id": ..., "songs": [...]}')
    ids = [p["id"] for p in pred]
    if not all(type(i) is int for i in ids):  # parsed once, as the integers the test data uses
        invalid("playlist ids must be integers as in the test data (not text, decimals or lists)")
    if len(set(ids)) != len(ids):
        invalid("a playlist id appears more than once")
    if set(ids) != set(labels):
        invalid(f"expected one entry for each of the {len(labels)} test playlists, got {len(ids)}")
    rows = []
    for p in pred:
        songs = p["songs"]
        if not isinstance(songs, list) or len(songs) != K:
            invalid(f"playlist {p['id']}: expected {K} songs, got {len(songs) if isinstance(songs, list) else 0}")
        if len(set(map(str, songs))) != K:
            invalid(f"playlist {p['id']}: duplicate songs")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s in known for s in songs):
            invalid(f"playlist {p['id']}: unknown song ids")
        rows.append(songs)
    print(ndcg(np.array(rows), [labels[i] for i in ids]))


if __name__ == "__main__":
    main()
