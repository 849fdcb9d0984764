"""The GPU check's training entry (bench/gpu.py): a small CNN on face-age's 48x48 faces, bf16 autocast, a fixed
number of steps on batches drawn on the device, written as an NSML participant writes it (bind, report, save).

It times its own steps (after a warm-up, the device synchronised at both ends), so the same code measures the
same work in a session and bare:

    python main.py --bare TRAIN_FOLDER --steps 300     # bare: one JSON line, no nsml module needed
    nsml run -d face-age -g 1 -a "--steps 300" .       # in a session: the same figures through nsml.report

`--steps 0` only says which devices it sees (the check's `-g 0` session)."""
import time

STARTED = time.time()  # before the imports: the check compares sessions' lifetimes (the second must follow the first)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


class Net(nn.Module):
    def __init__(self, width, classes=5):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
        self.features = nn.Sequential(block(1, width), block(width, 2 * width), block(2 * width, 4 * width),
                                      block(4 * width, 4 * width))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * 9, classes))

    def forward(self, x):
        return self.head(self.features(x))


def load_images(folder, names):
    from PIL import Image
    arr = np.stack([np.asarray(Image.open(os.path.join(folder, n)), dtype=np.float32) for n in names])
    arr = (arr - arr.mean(axis=(1, 2), keepdims=True)) / (arr.std(axis=(1, 2), keepdims=True) + 1e-6)
    return torch.from_numpy(arr).unsqueeze(1)


def load_train(train_folder):
    import csv
    with open(os.path.join(train_folder, "train_label"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = load_images(os.path.join(train_folder, "train_data", "images"), [r["file_name"] for r in rows])
    return x, torch.tensor([int(r["age_class"]) for r in rows])


def devices_seen():
    """What this process sees: CUDA_VISIBLE_DEVICES, how many devices torch finds, and their names."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "devices": count, "torch": torch.__version__,
            "names": [torch.cuda.get_device_name(i) for i in range(count)]}


def train(model, x, y, steps, batch, warmup, device):
    """STEPS optimiser steps on random batches (the data already on DEVICE), bf16 autocast: steps per second
    over the timed steps, and the last loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup:
            sync()
            start = time.perf_counter()
        idx = torch.randint(len(y), (batch,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return steps / (time.perf_counter() - start), loss.item()


def predict(model, x, device):
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        return torch.cat([model(x[i:i + 1024].to(device)).argmax(1).cpu() for i in range(0, len(x), 1024)]).numpy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="train")  # NSML's reserved flags
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", default="0")
    parser.add_argument("--bare", default=None, help="Run outside NSML on this train folder; print one JSON line.")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--width", type=int, default=64)
    config = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seen = devices_seen()
    model = Net(config.width).to(device).to(memory_format=torch.channels_last)
    if config.bare is not None:
        x, y = load_train(config.bare)
        rate, loss = train(model, x.to(device), y.to(device), config.steps, config.batch, config.warmup, device)
        print(json.dumps({"steps_per_s": rate, "loss": loss, **seen}))
        return
    import nsml
    print("gpu-check: sees", json.dumps({**seen, "started": STARTED}), flush=True)

    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(dir_name, "model.pt"))

    def load(dir_name, **kwargs):
        model.load_state_dict(torch.load(os.path.join(dir_name, "model.pt"), map_location=device))

    def infer(folder, **kwargs):
        names = sorted(os.listdir(os.path.join(folder, "images")))
        return predict(model, load_images(os.path.join(folder, "images"), names), device).tolist()

    nsml.bind(save=save, load=load, infer=infer)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode != "train":
        return
    if config.steps <= 0:
        nsml.report(summary=True, step=0, visible_gpus=seen["devices"])
        return
    x, y = load_train(os.path.join(nsml.DATASET_PATH, "train"))
    rate, loss = train(model, x.to(device), y.to(device), config.steps, config.batch, config.warmup, device)
    print(f"gpu-check: {rate:.2f} steps/s, loss {loss:.4f}", flush=True)
    nsml.report(summary=True, step=config.steps, steps_per_s=rate, train__loss=loss, visible_gpus=seen["devices"])
    nsml.save("final")
    del x, y
    if device.type == "cuda":
        torch.cuda.synchronize()
    print("gpu-check: done", json.dumps({"ended": time.time()}), flush=True)  # the GPU is let go when it exits


if __name__ == "__main__":
    main()
