"""playlist baseline: the 100 songs that appear in the most training playlists, minus the playlist's own songs.
Written as an NSML participant writes it."""
import argparse
import json
import os
from collections import Counter

import nsml
from nsml import DATASET_PATH


def bind_model(state):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        with open(os.path.join(dir_name, "popular.json"), "w") as fh:
            json.dump(state["popular"], fh)

    def load(dir_name, **kwargs):
        with open(os.path.join(dir_name, "popular.json")) as fh:
            state["popular"] = json.load(fh)

    def infer(folder, **kwargs):
        with open(os.path.join(folder, "test.json"), encoding="utf-8") as fh:
            test = json.load(fh)
        out = []
        for p in test:
            seen = set(p["songs"])
            out.append({"id": p["id"], "songs": [s for s in state["popular"] if s not in seen][:100]})
        return out

    nsml.bind(save=save, load=load, infer=infer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    config = parser.parse_args()
    state = {}
    bind_model(state)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode == "train":
        with open(os.path.join(DATASET_PATH, "train", "train_data", "train.json"), encoding="utf-8") as fh:
            train = json.load(fh)
        counts = Counter(s for p in train for s in p["songs"])
        state["popular"] = [s for s, _ in counts.most_common(200)]
        nsml.report(summary=True, step=0, songs_seen=len(counts))
        nsml.save(0)
