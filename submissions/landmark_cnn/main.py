"""landmark baseline: a small CNN on 32x32 photos; infer returns (image_id, class_id, confidence) with the
softmax probability as confidence, so that unsure answers (often photos of no landmark) rank last for GAP.
Classes are imbalanced: the loss weights each class by the inverse square root of its frequency.
Written as an NSML participant writes it: reserved flags, bind(save, load, infer), save per epoch, report, paused."""
import argparse
import os

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

import nsml
from nsml import DATASET_PATH, GPU_NUM

CLASSES = 40


class Net(nn.Module):
    def __init__(self, width=32):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
        self.features = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 2 * width))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * width * 16, CLASSES))

    def forward(self, x):
        return self.head(self.features(x))


def load_images(folder, names):
    arr = np.stack([np.asarray(Image.open(os.path.join(folder, n)).convert("RGB"), dtype=np.float32) for n in names])
    return torch.from_numpy(arr / 255.0 - 0.5).permute(0, 3, 1, 2).contiguous()


def probabilities(model, x, device):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + 256].to(device)).softmax(1).cpu() for i in range(0, len(x), 256)])


def bind_model(model, device):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(dir_name, "model.pt"))

    def load(dir_name, **kwargs):
        model.load_state_dict(torch.load(os.path.join(dir_name, "model.pt"), map_location=device))

    def infer(folder, **kwargs):
        names = sorted(os.listdir(os.path.join(folder, "images")))
        conf, cls = probabilities(model, load_images(os.path.join(folder, "images"), names), device).max(1)
        return [(n[:-4], int(c), float(p)) for n, c, p in zip(names, cls, conf)]

    nsml.bind(save=save, load=load, infer=infer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    config = parser.parse_args()
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if GPU_NUM and torch.cuda.is_available() else "cpu")
    model = Net().to(device)
    bind_model(model, device)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode == "train":
        labels = pd.read_csv(os.path.join(DATASET_PATH, "train", "train_label"))
        x = load_images(os.path.join(DATASET_PATH, "train", "train_data", "images"), labels.file_name)
        y = torch.tensor(labels.class_id.values)
        n_val = len(y) // 10
        xv, yv, xt, yt = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
        freq = torch.bincount(yt, minlength=CLASSES).float().clamp(min=1)
        weight = (freq.sum() / freq).sqrt().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        for epoch in range(config.epochs):
            model.train()
            perm = torch.randperm(len(yt))
            total = 0.0
            for i in range(0, len(perm), config.batch_size):
                idx = perm[i:i + config.batch_size]
                loss = nn.functional.cross_entropy(model(xt[idx].to(device)), yt[idx].to(device), weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            acc = float((probabilities(model, xv, device).argmax(1) == yv).float().mean())
            print(f"epoch {epoch}: loss {total / len(yt):.4f} valid acc {acc:.4f}")
            nsml.report(summary=True, step=epoch, epoch=epoch, train__loss=total / len(yt), valid__acc=acc)
            nsml.save(epoch)
