"""Build the landmark task (AI Rush 2022 round 1, landmark classification) offline and deterministically.

Procedural 32x32 colour photos of 40 "landmarks": each is a structure (tower, dome, pyramid, arch, bridge, ring,
cross, twin towers) in a colour scheme, seen at a random place, size and light against a sky-and-ground
background with clutter. Training classes are imbalanced (Zipf); the test set adds 15% photos of no landmark,
as the contest did. Metric: GAP, global average precision over one (class, confidence) prediction per image.

    python build.py --out DIR [--scale 1.0] [--seed 0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32
SHAPES = ["tower", "dome", "pyramid", "arch", "bridge", "ring", "cross", "twin"]
PALETTES = [(200, 60, 50), (60, 90, 200), (230, 200, 80), (90, 170, 90), (150, 80, 170)]
CLASSES = len(SHAPES) * len(PALETTES)
SIZES = {"train": 4000, "test": 1000, "test_submit": 20}


def mask(shape: str, yy, xx, cy, cx, s):
    dy, dx = (yy - cy) / s, (xx - cx) / s
    if shape == "tower":
        return (np.abs(dx) < 1.5) & (dy > -8) & (dy < 8) | (np.abs(dx) < 3) & (dy > 6) & (dy < 8)
    if shape == "dome":
        return ((dx ** 2 + (dy - 2) ** 2) < 36) & (dy < 2) | (np.abs(dx) < 6) & (dy >= 2) & (dy < 6)
    if shape == "pyramid":
        return (dy > -6) & (dy < 6) & (np.abs(dx) < (dy + 6) * 0.7)
    if shape == "arch":
        outer = (np.abs(dx) < 7) & (dy > -6) & (dy < 7)
        return outer & ~(((dx ** 2 + (dy - 1) ** 2) < 16) | ((np.abs(dx) < 4) & (dy > 1)))
    if shape == "bridge":
        return ((np.abs(dy + 1) < 1) & (np.abs(dx) < 9)) | ((np.abs(np.abs(dx) - 6) < 1) & (dy > -6) & (dy < 6))
    if shape == "ring":
        r2 = dx ** 2 + dy ** 2
        return (r2 < 42) & (r2 > 16)
    if shape == "cross":
        return ((np.abs(dx) < 1.5) & (np.abs(dy) < 8)) | ((np.abs(dy + 3) < 1.5) & (np.abs(dx) < 5))
    return ((np.abs(dx - 3) < 1.3) | (np.abs(dx + 3) < 1.3)) & (dy > -7) & (dy < 7)  # twin


def photo(rng, label: int | None) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    horizon = rng.uniform(18, 26)
    sky = np.array([rng.uniform(90, 180), rng.uniform(140, 210), rng.uniform(190, 250)])
    ground = np.array([rng.uniform(60, 130), rng.uniform(70, 140), rng.uniform(40, 90)])
    img = np.where((yy < horizon)[..., None], sky, ground) + rng.normal(0, 8, (SIZE, SIZE, 3))
    for _ in range(int(rng.integers(0, 4))):  # clutter: trees, clouds, people
        cy, cx, r = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(1, 3.5)
        img[((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2] = rng.uniform(30, 230, 3)
    if label is not None:
        shape, palette = SHAPES[label % len(SHAPES)], PALETTES[label // len(SHAPES)]
        s = rng.uniform(0.8, 1.3)
        cy, cx = rng.uniform(11, 20), rng.uniform(10, 22)
        light = rng.uniform(0.7, 1.2)
        colour = np.clip(np.array(palette) * light + rng.normal(0, 12, 3), 0, 255)
        img[mask(shape, yy, xx, cy, cx, s)] = colour
    img = img * rng.uniform(0.8, 1.15) + rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_split(rng, folder: Path, labels: list[int | None], prefix: str):
    folder.mkdir(parents=True)
    rows = []
    for i, label in enumerate(labels):
        image_id = f"{prefix}{i:06d}"
        name = f"{image_id}.png"
        Image.fromarray(photo(rng, label), mode="RGB").save(folder / name)
        rows.append((image_id, -1 if label is None else label, name))
    return rows


def build(out: Path, scale: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, CLASSES + 1) ** 0.8  # imbalanced: Zipf-like class frequencies
    order = rng.permutation(CLASSES)
    p = np.empty(CLASSES)
    p[order] = weights / weights.sum()
    counts = {}
    for split in ("train", "test", "test_submit"):
        n = SIZES[split] if split == "test_submit" else max(80, round(SIZES[split] * scale))
        labels: list[int | None] = [int(c) for c in rng.choice(CLASSES, size=n, p=p)]
        if split != "train":
            labels = [None if rng.random() < 0.15 else c for c in labels]  # photos of no landmark
        if split == "train":
            rows = write_split(rng, out / "train" / "train_data" / "images", labels, "tr")
            (out / "train" / "train_label").write_text(
                "image_id,class_id,file_name\n" + "".join(f"{i},{c},{f}\n" for i, c, f in rows))
        else:
            rows = write_split(rng, out / split / "test_data" / "images", labels, "te")
            (out / split / "test_label").write_text(
                "image_id,class_id\n" + "".join(f"{i},{c}\n" for i, c, _f in rows))
        counts[split] = n
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.corpus:
        raise SystemExit("--corpus: landmark is generated, it takes no corpus")
    print(build(args.out, args.scale, args.seed))


if __name__ == "__main__":
    main()
