"""Organizer side of garbage-docs: feed the hidden test documents to the participant's infer.

infer(file_path) gets the path of the test CSV (column `contents`) and returns one label per document
(1 = shuffled/nonsense, 0 = normal), as a list, array or Series.  One label per line is written.
"""
import os

from nsml import DATASET_PATH


def test_data_path():
    return os.path.join(DATASET_PATH, "test", "test_data")


def feed_infer(output_file, infer_func):
    predictions = infer_func(test_data_path())
    predictions = [int(p) for p in list(predictions)]
    with open(output_file, "w", encoding="utf-8") as fh:
        fh.write("\n".join(str(p) for p in predictions) + "\n")
    if os.stat(output_file).st_size == 0:
        raise RuntimeError("prediction file is empty")
