"""garbage-docs: fine-tune ELECTRA (transformers ElectraForSequenceClassification), the seed's second try.

Offline by default: an ELECTRA built from a small config and a WordPiece tokenizer trained with `tokenizers` on
the training CSV inside the session; both are saved with every checkpoint (save_pretrained). With
`-a "--pretrained PATH"` the model and tokenizer come from a local folder instead (e.g. a koELECTRA copy) — the
path users with weights take. Undersampling of the majority class and a validation report every epoch.
"""
import argparse
import os
import random
import tempfile
import time

import numpy as np
import pandas as pd
import torch
from tokenizers import BertWordPieceTokenizer
from transformers import BertTokenizerFast, ElectraConfig, ElectraForSequenceClassification

import nsml
from nsml import DATASET_PATH, GPU_NUM


def train_tokenizer(texts, vocab_size):
    wp = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    wp.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2)
    with tempfile.TemporaryDirectory() as tmp:
        wp.save_model(tmp)
        return BertTokenizerFast(vocab_file=os.path.join(tmp, "vocab.txt"), do_lower_case=False,
                                 tokenize_chinese_chars=False, strip_accents=False)


def small_electra(vocab_size, config):
    cfg = ElectraConfig(vocab_size=vocab_size, embedding_size=config.hidden, hidden_size=config.hidden,
                        num_hidden_layers=config.layers, num_attention_heads=config.heads,
                        intermediate_size=4 * config.hidden, max_position_embeddings=config.max_len + 2, num_labels=2)
    return ElectraForSequenceClassification(cfg)


def encode(tokenizer, texts, max_len, device):
    enc = tokenizer(list(texts), truncation=True, max_length=max_len, padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def predict(state, texts, config, device, batch=128):
    state["model"].eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            batch_in = encode(state["tokenizer"], texts[i:i + batch], config.max_len, device)
            out.append(state["model"](**batch_in).logits.argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=int)


def bind_model(state, config, device):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        state["model"].save_pretrained(dir_name)
        state["tokenizer"].save_pretrained(dir_name)

    def load(dir_name, **kwargs):
        state["model"] = ElectraForSequenceClassification.from_pretrained(dir_name).to(device)
        state["tokenizer"] = BertTokenizerFast.from_pretrained(dir_name)

    def infer(file_path, **kwargs):
        texts = pd.read_csv(file_path)["contents"].fillna("").astype(str).tolist()
        return predict(state, texts, config, device)

    nsml.bind(save=save, load=load, infer=infer)


def undersample(df, rng):
    n = df.label.value_counts().min()
    parts = [df[df.label == c].sample(n=n, random_state=rng.randrange(1 << 30)) for c in sorted(df.label.unique())]
    return pd.concat(parts).sample(frac=1.0, random_state=rng.randrange(1 << 30))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    parser.add_argument("--pretrained", type=str, default=None, help="a local folder with model and tokenizer")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--max_len", type=int, default=96)
    parser.add_argument("--vocab_size", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    config = parser.parse_args()
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if GPU_NUM and torch.cuda.is_available() else "cpu")
    state = {}
    bind_model(state, config, device)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode == "train":
        folder = os.path.join(DATASET_PATH, "train", "train_data")
        train = pd.read_csv(os.path.join(folder, "train_data")).fillna("")
        valid = pd.read_csv(os.path.join(folder, "valid_data")).fillna("")
        if config.pretrained:
            state["tokenizer"] = BertTokenizerFast.from_pretrained(config.pretrained)
            state["model"] = ElectraForSequenceClassification.from_pretrained(config.pretrained, num_labels=2)
        else:
            state["tokenizer"] = train_tokenizer(train.contents.astype(str), config.vocab_size)
            state["model"] = small_electra(len(state["tokenizer"]), config)
        model = state["model"].to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
        steps = config.epochs * ((2 * int(train.label.value_counts().min()) + config.batch_size - 1) // config.batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30) * max(0.0, 1 - s / steps))
        rng = random.Random(config.seed)
        for epoch in range(config.epochs):
            start = time.time()
            model.train()
            df = undersample(train, rng)
            total = 0.0
            for i in range(0, len(df), config.batch_size):
                chunk = df.iloc[i:i + config.batch_size]
                batch = encode(state["tokenizer"], chunk.contents.tolist(), config.max_len, device)
                loss = model(**batch, labels=torch.tensor(chunk.label.values, device=device)).loss
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                total += loss.item() * len(chunk)
            pred, truth = predict(state, valid.contents.tolist(), config, device), valid.label.values
            acc = float((pred == truth).mean())
            balanced = float(np.mean([(pred[truth == c] == c).mean() for c in (0, 1)]))
            print(f"epoch {epoch}: loss {total / len(df):.4f} valid acc {acc:.4f} balanced {balanced:.4f} "
                  f"({time.time() - start:.1f}s)", flush=True)
            nsml.report(summary=True, step=epoch, epoch=epoch, train__loss=total / len(df), valid__acc=acc,
                        valid__balanced_acc=balanced)
            nsml.save(epoch)
