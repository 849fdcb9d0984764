"""Organizer side of playlist: infer(test_data_folder) gets the folder holding test.json and song_meta.json and
returns, for every test playlist, its 100 most likely hidden songs: a list of {"id", "songs"} or a dict id → songs."""
import json
import os

from nsml import DATASET_PATH


def feed_infer(output_file, infer_func):
    answers = infer_func(os.path.join(DATASET_PATH, "test", "test_data"))
    if isinstance(answers, dict):
        answers = [{"id": int(k), "songs": [int(s) for s in v]} for k, v in answers.items()]
    else:
        answers = [{"id": int(a["id"]), "songs": [int(s) for s in a["songs"]]} for a in answers]
    with open(output_file, "w", encoding="utf-8") as fh:
        json.dump(answers, fh)
