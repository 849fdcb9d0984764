"""garbage-docs baseline: always predict the training set's majority label.

Written as an NSML participant writes it: reserved flags, bind(save, load, infer), save per epoch, report, paused.
"""
import argparse
import json
import os

import pandas as pd

import nsml
from nsml import DATASET_PATH


def bind_model(state):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        with open(os.path.join(dir_name, "state.json"), "w") as fh:
            json.dump(state, fh)

    def load(dir_name, **kwargs):
        with open(os.path.join(dir_name, "state.json")) as fh:
            state.update(json.load(fh))

    def infer(file_path, **kwargs):
        data = pd.read_csv(file_path)
        return [state["label"]] * len(data)

    nsml.bind(save=save, load=load, infer=infer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    parser.add_argument("--epochs", type=int, default=1)
    config = parser.parse_args()

    state = {"label": 0}
    bind_model(state)
    if config.pause:
        nsml.paused(scope=locals())

    if config.mode == "train":
        train = pd.read_csv(os.path.join(DATASET_PATH, "train", "train_data", "train_data"))
        valid = pd.read_csv(os.path.join(DATASET_PATH, "train", "train_data", "valid_data"))
        state["label"] = int(train["label"].value_counts().idxmax())
        for epoch in range(config.epochs):
            acc = float((valid["label"] == state["label"]).mean())
            print(f"epoch {epoch}: majority label {state['label']}, valid accuracy {acc:.4f}")
            nsml.report(summary=True, step=epoch, epoch=epoch, valid__acc=acc, valid__balanced_acc=0.5)
            nsml.save(epoch)
