"""Organizer side of bus-eta: infer(test_data_folder) returns one travel time (seconds) per row of trips.csv."""
import os

import pandas as pd

from nsml import DATASET_PATH


def feed_infer(output_file, infer_func):
    folder = os.path.join(DATASET_PATH, "test", "test_data")
    ids = pd.read_csv(os.path.join(folder, "trips.csv"))["id"]
    predictions = list(infer_func(folder))
    pd.DataFrame({"id": ids.values[:len(predictions)], "travel_s": predictions[:len(ids)]}).to_csv(
        output_file, index=False)
