"""garbage-docs baseline: logistic regression on hashed character n-grams that span word boundaries.

A shuffled document has unusual transitions between words (an eojeol's ending followed by an unlikely next
word); n-grams that cross the space see them.  Fast on a CPU (seconds), so contest simulations can train
many of them.  Written as an NSML participant writes it: reserved flags, bind, save per epoch, report, paused.
"""
import argparse
import os
import pickle

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

import nsml
from nsml import DATASET_PATH


def bind_model(state, config):
    def featurize(texts):
        vec = HashingVectorizer(analyzer="char", ngram_range=(config.ngram_min, config.ngram_max),
                                n_features=1 << config.hash_bits, alternate_sign=False, norm="l2")
        return vec.transform(texts)

    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        with open(os.path.join(dir_name, "model.pkl"), "wb") as fh:
            pickle.dump(state["model"], fh)

    def load(dir_name, **kwargs):
        with open(os.path.join(dir_name, "model.pkl"), "rb") as fh:
            state["model"] = pickle.load(fh)

    def infer(file_path, **kwargs):
        data = pd.read_csv(file_path)
        return state["model"].predict(featurize(data["contents"].astype(str))).tolist()

    nsml.bind(save=save, load=load, infer=infer)
    return featurize


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    parser.add_argument("--ngram_min", type=int, default=2)
    parser.add_argument("--ngram_max", type=int, default=4)
    parser.add_argument("--hash_bits", type=int, default=18)
    parser.add_argument("--C", type=float, default=4.0)
    parser.add_argument("--train_fraction", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    config = parser.parse_args()

    state = {"model": None}
    featurize = bind_model(state, config)
    if config.pause:
        nsml.paused(scope=locals())

    if config.mode == "train":
        train = pd.read_csv(os.path.join(DATASET_PATH, "train", "train_data", "train_data"))
        valid = pd.read_csv(os.path.join(DATASET_PATH, "train", "train_data", "valid_data"))
        train = train.sample(frac=config.train_fraction, random_state=config.seed)
        model = LogisticRegression(C=config.C, max_iter=300, class_weight="balanced", random_state=config.seed)
        model.fit(featurize(train["contents"].astype(str)), train["label"])
        state["model"] = model
        pred = model.predict(featurize(valid["contents"].astype(str)))
        acc = float(np.mean(pred == valid["label"].to_numpy()))
        print(f"valid accuracy {acc:.4f} ({len(train)} training documents)")
        nsml.report(summary=True, step=0, epoch=0, valid__acc=acc)
        nsml.save(0)
