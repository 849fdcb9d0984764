"""garbage-docs: the seed's third try, in a second session as NSML participants did it.

It loads the fine-tuned ELECTRA of another session with
`nsml.load(checkpoint=..., session="USER/garbage-docs/N")` (both given with -a), freezes the encoder, and replaces
the classifier with a CNN over the hidden states — convolutions over the sequence of hidden states, max-pooling,
a linear layer — training only that head. Its own checkpoints hold the encoder and the head, so it is submitted
like any session.

    nsml run -d garbage-docs -a "--load_session alice/garbage-docs/1 --load_checkpoint 19" submissions/garbage_docs_electra_cnn
"""
import argparse
import os
import random
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import BertTokenizerFast, ElectraForSequenceClassification, ElectraModel

import nsml
from nsml import DATASET_PATH, GPU_NUM


class CNNHead(nn.Module):
    def __init__(self, hidden, channels=64, kernels=(2, 3, 5)):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(hidden, channels, k, padding=k // 2) for k in kernels)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(channels * len(kernels), 2)

    def forward(self, hidden_states, mask):
        x = hidden_states.transpose(1, 2)  # (batch, hidden, tokens)
        pooled = []
        for conv in self.convs:
            y = torch.relu(conv(x))[:, :, :x.shape[2]]
            pooled.append(y.masked_fill(~mask[:, None, :].bool(), -1e9).max(dim=2).values)
        return self.fc(self.drop(torch.cat(pooled, dim=1)))


def encode(tokenizer, texts, max_len, device):
    enc = tokenizer(list(texts), truncation=True, max_length=max_len, padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def logits(state, batch):
    with torch.no_grad():  # the encoder is frozen
        hidden = state["encoder"](**batch).last_hidden_state
    return state["head"](hidden, batch["attention_mask"])


def predict(state, texts, config, device):
    state["head"].eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 128):
            out.append(logits(state, encode(state["tokenizer"], texts[i:i + 128], config.max_len, device))
                       .argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=int)


def freeze(encoder):
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


def bind_model(state, config, device):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        state["encoder"].save_pretrained(os.path.join(dir_name, "encoder"))
        state["tokenizer"].save_pretrained(os.path.join(dir_name, "encoder"))
        torch.save(state["head"].state_dict(), os.path.join(dir_name, "head.pt"))

    def load(dir_name, **kwargs):
        state["encoder"] = freeze(ElectraModel.from_pretrained(os.path.join(dir_name, "encoder")).to(device))
        state["tokenizer"] = BertTokenizerFast.from_pretrained(os.path.join(dir_name, "encoder"))
        state["head"] = CNNHead(state["encoder"].config.hidden_size).to(device)
        state["head"].load_state_dict(torch.load(os.path.join(dir_name, "head.pt"), map_location=device))

    def infer(file_path, **kwargs):
        texts = pd.read_csv(file_path)["contents"].fillna("").astype(str).tolist()
        return predict(state, texts, config, device)

    nsml.bind(save=save, load=load, infer=infer)


def load_finetuned_electra(state, device):
    """load_fn for the ELECTRA session's checkpoint (saved with save_pretrained)."""
    def load(dir_name, **kwargs):
        model = ElectraForSequenceClassification.from_pretrained(dir_name)
        state["encoder"] = freeze(model.electra.to(device))
        state["tokenizer"] = BertTokenizerFast.from_pretrained(dir_name)
    return load


def undersample(df, rng):
    n = df.label.value_counts().min()
    parts = [df[df.label == c].sample(n=n, random_state=rng.randrange(1 << 30)) for c in sorted(df.label.unique())]
    return pd.concat(parts).sample(frac=1.0, random_state=rng.randrange(1 << 30))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    parser.add_argument("--load_session", type=str, default=None, help="USER/garbage-docs/N of the ELECTRA session")
    parser.add_argument("--load_checkpoint", type=str, default=None, help="its checkpoint to start from")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max_len", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    config = parser.parse_args()
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if GPU_NUM and torch.cuda.is_available() else "cpu")
    state = {}
    bind_model(state, config, device)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode == "train":
        if not (config.load_session and config.load_checkpoint):
            raise SystemExit("give the ELECTRA session: -a '--load_session USER/garbage-docs/N --load_checkpoint K'")
        nsml.load(checkpoint=config.load_checkpoint, session=config.load_session,
                  load_fn=load_finetuned_electra(state, device))
        state["head"] = CNNHead(state["encoder"].config.hidden_size).to(device)
        folder = os.path.join(DATASET_PATH, "train", "train_data")
        train = pd.read_csv(os.path.join(folder, "train_data")).fillna("")
        valid = pd.read_csv(os.path.join(folder, "valid_data")).fillna("")
        opt = torch.optim.Adam(state["head"].parameters(), lr=config.lr)
        rng = random.Random(config.seed)
        for epoch in range(config.epochs):
            start = time.time()
            state["head"].train()
            df = undersample(train, rng)
            total = 0.0
            for i in range(0, len(df), config.batch_size):
                chunk = df.iloc[i:i + config.batch_size]
                batch = encode(state["tokenizer"], chunk.contents.tolist(), config.max_len, device)
                loss = nn.functional.cross_entropy(logits(state, batch), torch.tensor(chunk.label.values, device=device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(chunk)
            pred, truth = predict(state, valid.contents.tolist(), config, device), valid.label.values
            acc = float((pred == truth).mean())
            balanced = float(np.mean([(pred[truth == c] == c).mean() for c in (0, 1)]))
            print(f"epoch {epoch}: loss {total / len(df):.4f} valid acc {acc:.4f} balanced {balanced:.4f} "
                  f"({time.time() - start:.1f}s)", flush=True)
            nsml.report(summary=True, step=epoch, epoch=epoch, train__loss=total / len(df), valid__acc=acc,
                        valid__balanced_acc=balanced)
            nsml.save(epoch)
