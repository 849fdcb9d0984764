"""playlist baseline: item-based kNN on co-occurrence. A candidate's score is the sum, over the playlist's seed
songs, of their cosine co-occurrence; a playlist with no seed songs borrows the songs of training playlists that
share its tags; popularity fills what is left. Written as an NSML participant writes it."""
import argparse
import json
import os
import pickle

import numpy as np
from scipy import sparse

import nsml
from nsml import DATASET_PATH


def fit(train, n_songs):
    rows = [i for i, p in enumerate(train) for _ in p["songs"]]
    cols = [s for p in train for s in p["songs"]]
    x = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(train), n_songs))
    counts = np.asarray(x.sum(0)).ravel()
    norm = 1.0 / np.sqrt(np.maximum(counts, 1))
    cooc = (x.T @ x).tocsr()
    cooc.setdiag(0)
    cooc = sparse.diags(norm) @ cooc @ sparse.diags(norm)
    tag_songs = {}
    for p in train:
        for t in p["tags"]:
            tag_songs.setdefault(t, []).extend(p["songs"])
    tag_counts = {t: np.bincount(v, minlength=n_songs).astype(np.float32) for t, v in tag_songs.items()}
    return {"cooc": cooc.tocsr(), "popularity": counts, "tags": tag_counts}


def recommend(model, playlist, k=100):
    pop = model["popularity"]
    seeds = playlist["songs"]
    if seeds:
        scores = np.asarray(model["cooc"][seeds].sum(0)).ravel()
    else:
        scores = sum((model["tags"].get(t, 0) for t in playlist["tags"]), np.zeros_like(pop, dtype=np.float32))
    scores = scores + 1e-6 * pop / pop.max()  # popularity breaks ties and fills the rest
    scores[seeds] = -np.inf
    return [int(s) for s in np.argsort(-scores)[:k]]


def bind_model(state):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        with open(os.path.join(dir_name, "knn.pkl"), "wb") as fh:
            pickle.dump(state["model"], fh)

    def load(dir_name, **kwargs):
        with open(os.path.join(dir_name, "knn.pkl"), "rb") as fh:
            state["model"] = pickle.load(fh)

    def infer(folder, **kwargs):
        with open(os.path.join(folder, "test.json"), encoding="utf-8") as fh:
            return [{"id": p["id"], "songs": recommend(state["model"], p)} for p in json.load(fh)]

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
        folder = os.path.join(DATASET_PATH, "train", "train_data")
        with open(os.path.join(folder, "train.json"), encoding="utf-8") as fh:
            train = json.load(fh)
        with open(os.path.join(folder, "song_meta.json"), encoding="utf-8") as fh:
            n_songs = len(json.load(fh))
        state["model"] = fit(train, n_songs)
        nsml.report(summary=True, step=0, playlists=len(train))
        nsml.save(0)
