"""garbage-docs baseline: the seed's first try — embedding + LSTM + linear + sigmoid, with undersampling of the
majority (normal) class in every epoch.

Tokens: each eojeol (word) gives two tokens, its last two characters (the particle or ending, which carries
Korean word order) and its first character; a shuffled document breaks the sequence of endings.

Written as an NSML participant writes it: reserved flags, bind(save, load, infer), save per epoch, report, paused.
The vocabulary is built from the training data and saved with each checkpoint (submit runs see no training data).
"""
import argparse
import os
import random
import time
from collections import Counter

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import nsml
from nsml import DATASET_PATH, GPU_NUM

PAD, UNK = 0, 1


def tokens(text, max_words):
    out = []
    for word in str(text).split()[:max_words]:
        out.append("S:" + word[-2:])
        out.append("F:" + word[:1])
    return out


class Vocab:
    def __init__(self, size):
        self.size = size
        self.index = {}

    def build(self, texts, max_words):
        counts = Counter(tok for t in texts for tok in tokens(t, max_words))
        self.index = {tok: i + 2 for i, (tok, _) in enumerate(counts.most_common(self.size - 2))}

    def encode(self, text, max_words):
        return [self.index.get(tok, UNK) for tok in tokens(text, max_words)] or [UNK]


class LSTMClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_dim):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(4 * hidden_dim, 1)

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, _) = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=-1e9)
        pooled = torch.cat([out.max(dim=1).values, torch.cat([h[0], h[1]], dim=1)], dim=1)
        return torch.sigmoid(self.fc(pooled)).squeeze(1)


def batches(vocab, texts, labels, batch_size, max_words, device):
    for i in range(0, len(texts), batch_size):
        enc = [vocab.encode(t, max_words) for t in texts[i:i + batch_size]]
        lengths = torch.tensor([len(e) for e in enc])
        ids = torch.zeros(len(enc), int(lengths.max()), dtype=torch.long)
        for j, e in enumerate(enc):
            ids[j, :len(e)] = torch.tensor(e)
        y = None if labels is None else torch.tensor(labels[i:i + batch_size], dtype=torch.float32, device=device)
        yield ids.to(device), lengths, y


def predict(model, vocab, texts, config, device):
    model.eval()
    out = []
    with torch.no_grad():
        for ids, lengths, _ in batches(vocab, texts, None, 128, config.max_words, device):
            out.append(model(ids, lengths).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def bind_model(model, vocab, config, device):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        torch.save({"model": model.state_dict(), "vocab": vocab.index}, os.path.join(dir_name, "model.pt"))

    def load(dir_name, **kwargs):
        state = torch.load(os.path.join(dir_name, "model.pt"), map_location=device)
        model.load_state_dict(state["model"])
        vocab.index = state["vocab"]

    def infer(file_path, **kwargs):
        texts = pd.read_csv(file_path)["contents"].fillna("").astype(str).tolist()
        return (predict(model, vocab, texts, config, device) > 0.5).astype(int)

    nsml.bind(save=save, load=load, infer=infer)


def undersample(df, rng):
    """Balance the classes by dropping majority-class rows at random (a new draw every epoch)."""
    counts = df["label"].value_counts()
    keep = [df[df.label == lbl].sample(n=counts.min(), random_state=rng.randrange(1 << 30)) for lbl in counts.index]
    return pd.concat(keep).sample(frac=1.0, random_state=rng.randrange(1 << 30))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max_words", type=int, default=150)
    parser.add_argument("--vocab_size", type=int, default=4000)
    parser.add_argument("--embed_dim", type=int, default=64)
    parser.add_argument("--hidden_dim", type=int, default=96)
    parser.add_argument("--seed", type=int, default=1)
    config = parser.parse_args()

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if GPU_NUM and torch.cuda.is_available() else "cpu")
    vocab = Vocab(config.vocab_size)
    model = LSTMClassifier(config.vocab_size, config.embed_dim, config.hidden_dim).to(device)
    bind_model(model, vocab, config, device)

    if config.pause:
        nsml.paused(scope=locals())

    if config.mode == "train":
        data_dir = os.path.join(DATASET_PATH, "train", "train_data")
        train = pd.read_csv(os.path.join(data_dir, "train_data")).fillna("")
        valid = pd.read_csv(os.path.join(data_dir, "valid_data")).fillna("")
        vocab.build(train["contents"].astype(str), config.max_words)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        loss_fn = nn.BCELoss()
        rng = random.Random(config.seed)
        for epoch in range(config.epochs):
            start = time.time()
            model.train()
            epoch_df = undersample(train, rng)
            total, seen, said = 0.0, 0, time.time()
            for ids, lengths, y in batches(vocab, epoch_df["contents"].tolist(), epoch_df["label"].tolist(),
                                           config.batch_size, config.max_words, device):
                optimizer.zero_grad()
                loss = loss_fn(model(ids, lengths), y)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                total += loss.item() * len(y)
                seen += len(y)
                if time.time() - said > 10:  # where it is inside a long epoch, every 10 s
                    said = time.time()
                    print(f"epoch {epoch}: {seen}/{len(epoch_df)} documents, loss {total / seen:.4f} "
                          f"({said - start:.0f}s, {torch.get_num_threads()} thread(s))", flush=True)
            train_loss = total / len(epoch_df)
            valid_pred = (predict(model, vocab, valid["contents"].tolist(), config, device) > 0.5).astype(int)
            truth = valid["label"].values
            valid_acc = float((valid_pred == truth).mean())
            # valid_data is imbalanced like train: the mean of per-class recalls tracks the balanced test set
            balanced = float(np.mean([(valid_pred[truth == c] == c).mean() for c in (0, 1)]))
            print(f"epoch {epoch}: train loss {train_loss:.4f} valid acc {valid_acc:.4f} "
                  f"balanced {balanced:.4f} ({time.time() - start:.1f}s)")
            nsml.report(summary=True, step=epoch, epoch=epoch, train__loss=train_loss, valid__acc=valid_acc,
                        valid__balanced_acc=balanced)
            nsml.save(epoch)
