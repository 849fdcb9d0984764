"""How a submit feeds the bound infer with the task's data_loader.py — NSML's two conventions, in one place.

A loader with `feed_infer(output_file, infer_func)` decides everything itself: the harness only calls it.

A loader older than feed_infer (AI Starthon 2019 and hackathon 2018 packs: only `test_data_loader(root)`) got
NSML's default: `infer(test_data_loader(DATASET_PATH))`, then one prediction per line in the output file. Two
return shapes of infer were in use, and both are written as NSML wrote them:
- a sequence of (confidence, label) pairs — `[(0.93, 1), (0.71, 0)]` — gives the label of each pair;
- a sequence of plain predictions — `[1, 0]`, a numpy array, strings — gives each one as it prints.
A pair is a tuple, list or 1-D array of exactly two items; anything else is a plain prediction.

Used by the in-session module (a real submit) and by the harness's loader probe (scoring.loader_probe), so a
loader is run the same way in both.
"""
from __future__ import annotations

FEED = "feed_infer"
LEGACY = "test_data_loader"


def convention(loader) -> str:
    """Which of the two the loader follows: FEED or LEGACY. A module with neither is refused by name."""
    if callable(getattr(loader, FEED, None)):
        return FEED
    if callable(getattr(loader, LEGACY, None)):
        return LEGACY
    raise AttributeError(f"data_loader.py defines neither {FEED}(output_file, infer_func) nor {LEGACY}(root)")


def feed(loader, output_file: str, infer, dataset_path: str) -> None:
    """Run LOADER's convention: its feed_infer, or NSML's default over its test_data_loader."""
    if convention(loader) == FEED:
        loader.feed_infer(output_file, infer)
        return
    predictions = infer(loader.test_data_loader(dataset_path))
    write_predictions(output_file, predictions)


def _label(prediction):
    shape = getattr(prediction, "shape", None)
    if isinstance(prediction, (tuple, list)) and len(prediction) == 2:
        return prediction[1]
    if shape is not None and len(shape) == 1 and shape[0] == 2:  # a row of a numpy (n, 2) array
        return prediction[1]
    return prediction


def write_predictions(output_file: str, predictions) -> None:
    """One prediction per line, as NSML's default wrote them (the label of a (confidence, label) pair)."""
    if predictions is None or isinstance(predictions, (str, bytes)):
        raise TypeError(f"infer returned {type(predictions).__name__}: NSML's default loader needs a sequence "
                        f"of predictions (or of (confidence, label) pairs), one per test item")
    lines = [str(_label(p)) for p in predictions]
    with open(output_file, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + ("\n" if lines else ""))
