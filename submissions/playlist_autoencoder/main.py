"""playlist baseline: the seed's round-2 idea done right — a denoising autoencoder over the playlist's song
multi-hot, with metadata fed in as side input (the playlist's tags, and the genre and era mix of its visible songs).

The encoder and decoder need not be symmetric (where the seed got stuck): songs and side input have their own
input layers, meet in a 128-unit code, and a wider two-layer decoder scores every song. Training hides a random
part of each playlist's songs (sometimes all, as for title-and-tags-only test playlists) and asks for all of them
back, with a multinomial likelihood over songs. Written as an NSML participant writes it.
"""
import argparse
import json
import os

import numpy as np
import torch
from torch import nn

import nsml
from nsml import DATASET_PATH, GPU_NUM


class Vocab:
    def __init__(self, meta, train):
        self.n_songs = len(meta)
        self.genres = sorted({g for s in meta for g in s["song_gn_gnr_basket"]})
        self.tags = sorted({t for p in train for t in p["tags"]})
        self.song_genre = np.array([self.genres.index(s["song_gn_gnr_basket"][0]) for s in meta])
        self.song_era = np.array([min(7, max(0, (int(s["issue_date"][:4]) - 1986) // 5)) for s in meta])

    @property
    def n_side(self):
        return len(self.tags) + len(self.genres) + 8

    def side(self, playlist, songs):
        x = np.zeros(self.n_side, dtype=np.float32)
        for t in playlist["tags"]:
            if t in self.tags:
                x[self.tags.index(t)] = 1.0
        if len(songs):
            g = np.bincount(self.song_genre[songs], minlength=len(self.genres))
            e = np.bincount(self.song_era[songs], minlength=8)
            x[len(self.tags):len(self.tags) + len(self.genres)] = g / g.sum()
            x[len(self.tags) + len(self.genres):] = e / e.sum()
        return x


class DAE(nn.Module):
    def __init__(self, n_songs, n_side, code=128):
        super().__init__()
        self.song_in = nn.Linear(n_songs, 256)
        self.side_in = nn.Linear(n_side, 64)
        self.code = nn.Sequential(nn.Tanh(), nn.Dropout(0.2), nn.Linear(320, code), nn.Tanh())
        self.decoder = nn.Sequential(nn.Linear(code, 512), nn.Tanh(), nn.Linear(512, n_songs))

    def forward(self, songs, side):
        return self.decoder(self.code(torch.cat([self.song_in(songs), self.side_in(side)], dim=1)))


def inputs(vocab, playlists, keep, rng):
    x = np.zeros((len(playlists), vocab.n_songs), dtype=np.float32)
    s = np.zeros((len(playlists), vocab.n_side), dtype=np.float32)
    for i, p in enumerate(playlists):
        songs = np.array(p["songs"], dtype=int)
        if keep is not None:  # training: hide a random part (all of it, one time in ten)
            share = 0.0 if rng.random() < 0.1 else rng.uniform(0.2, 0.8)
            songs = songs[rng.random(len(songs)) < share]
        x[i, songs] = 1.0
        s[i] = vocab.side(p, songs)
    return torch.from_numpy(x), torch.from_numpy(s)


def bind_model(state, device):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        torch.save({"model": state["model"].state_dict(), "vocab": state["vocab"]}, os.path.join(dir_name, "dae.pt"))

    def load(dir_name, **kwargs):
        saved = torch.load(os.path.join(dir_name, "dae.pt"), map_location=device, weights_only=False)
        state["vocab"] = saved["vocab"]
        state["model"] = DAE(saved["vocab"].n_songs, saved["vocab"].n_side).to(device)
        state["model"].load_state_dict(saved["model"])

    def infer(folder, **kwargs):
        with open(os.path.join(folder, "test.json"), encoding="utf-8") as fh:
            test = json.load(fh)
        model, vocab = state["model"], state["vocab"]
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(test), 256):
                chunk = test[i:i + 256]
                x, s = inputs(vocab, chunk, None, None)
                scores = model(x.to(device), s.to(device)).cpu()
                scores[x > 0] = -float("inf")  # never recommend what is already there
                top = scores.topk(100, dim=1).indices.numpy()
                out += [{"id": p["id"], "songs": [int(v) for v in row]} for p, row in zip(chunk, top)]
        return out

    nsml.bind(save=save, load=load, infer=infer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    config = parser.parse_args()
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if GPU_NUM and torch.cuda.is_available() else "cpu")
    state = {}
    bind_model(state, device)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode == "train":
        folder = os.path.join(DATASET_PATH, "train", "train_data")
        with open(os.path.join(folder, "train.json"), encoding="utf-8") as fh:
            train = json.load(fh)
        with open(os.path.join(folder, "song_meta.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
        vocab = state["vocab"] = Vocab(meta, train)
        model = state["model"] = DAE(vocab.n_songs, vocab.n_side).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=1e-6)
        rng = np.random.default_rng(config.seed)
        target = torch.zeros(len(train), vocab.n_songs)
        for i, p in enumerate(train):
            target[i, p["songs"]] = 1.0
        for epoch in range(config.epochs):
            model.train()
            order = rng.permutation(len(train))
            total = 0.0
            for b in range(0, len(order), config.batch_size):
                idx = order[b:b + config.batch_size]
                x, s = inputs(vocab, [train[i] for i in idx], True, rng)
                y = target[idx].to(device)
                logp = torch.log_softmax(model(x.to(device), s.to(device)), dim=1)
                loss = -((logp * y).sum(1) / y.sum(1)).mean()  # multinomial likelihood of the whole playlist
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            if epoch % 5 == 4 or epoch == config.epochs - 1:
                print(f"epoch {epoch}: loss {total / len(train):.4f}")
                nsml.report(summary=True, step=epoch, epoch=epoch, train__loss=total / len(train))
                nsml.save(epoch)
