"""Build the face-age task (AI Rush 2022 round 1, face age classification) offline and deterministically.

Procedural 48x48 grey faces. Each face has a latent age; the five classes are age bands (child, teen, young
adult, middle-aged, senior). Age shows the way it does in photos, through several cues at once, each noisy:
the face grows longer and the eyes smaller and higher with age, forehead wrinkles appear and deepen from the
thirties, hair greys and thins, skin gets spots. Nuisances: position, scale, brightness, contrast, background.

    python build.py --out DIR [--scale 1.0] [--seed 0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 48
BANDS = [(3, 12), (13, 19), (20, 34), (35, 54), (55, 85)]  # the five classes
SIZES = {"train": 3000, "test": 1000, "test_submit": 20}


def ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def face(rng, age: float) -> np.ndarray:
    t = (age - 3) / 82  # 0 (child) .. 1 (senior)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    bg = rng.uniform(40, 200)
    img = np.full((SIZE, SIZE), bg) + rng.normal(0, 6, (SIZE, SIZE))
    cx, cy = 24 + rng.normal(0, 1.5), 26 + rng.normal(0, 1.5)
    s = rng.uniform(0.9, 1.1)
    rx = 14 * s
    ry = rx * (1.0 + 0.28 * t + rng.normal(0, 0.04))  # longer with age
    skin = rng.uniform(150, 215)
    hair = 35 + 180 * max(0.0, t - 0.35) / 0.65 + rng.normal(0, 12)  # greys late
    head = ellipse(yy, xx, cy, cx, ry, rx)
    hair_top = ellipse(yy, xx, cy - ry * 0.35, cx, ry * (0.75 - 0.25 * max(0, t - 0.6)), rx * 1.08) & (yy < cy - ry * 0.25)
    img[hair_top] = hair
    img[head & ~hair_top] = skin
    eye_y = cy + ry * (0.12 - 0.22 * t) + rng.normal(0, 0.8)  # eyes sit higher in an adult face
    eye_r = 2.8 - 1.2 * t + rng.normal(0, 0.2)
    for dx in (-1, 1):
        ex = cx + dx * rx * 0.42
        img[ellipse(yy, xx, eye_y, ex, eye_r, eye_r * 1.3)] = 30
    mouth_y = cy + ry * 0.55
    img[(np.abs(yy - mouth_y) < 0.9) & (np.abs(xx - cx) < rx * 0.35)] = skin - 70
    n_wrinkles = int(np.clip((age - 30) / 12 + rng.normal(0, 0.7), 0, 5))
    for k in range(n_wrinkles):  # forehead lines
        wy = cy - ry * 0.18 - k * 1.8
        depth = 25 + 40 * t
        img[(np.abs(yy - wy) < 0.5) & (np.abs(xx - cx) < rx * 0.5) & head & ~hair_top] -= depth
    n_spots = rng.poisson(12 * max(0.0, t - 0.4))
    for _ in range(n_spots):
        sy, sx = cy + rng.normal(0, ry * 0.4), cx + rng.normal(0, rx * 0.4)
        img[ellipse(yy, xx, sy, sx, 0.8, 0.8) & head] -= 30
    img = (img - img.mean()) * rng.uniform(0.8, 1.2) + img.mean() + rng.normal(0, 10)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_split(rng, n, folder: Path):
    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        label = int(rng.integers(5))
        age = rng.uniform(*BANDS[label])
        name = f"{i:06d}.png"
        Image.fromarray(face(rng, age), mode="L").save(folder / name)
        rows.append((name, label))
    return rows


def write_labels(path: Path, rows) -> None:
    path.write_text("file_name,age_class\n" + "".join(f"{n},{c}\n" for n, c in rows))


def build(out: Path, scale: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    counts = {}
    for split in ("train", "test", "test_submit"):
        n = SIZES[split] if split == "test_submit" else max(50, round(SIZES[split] * scale))
        if split == "train":
            rows = make_split(rng, n, out / "train" / "train_data" / "images")
            write_labels(out / "train" / "train_label", rows)
        else:
            rows = make_split(rng, n, out / split / "test_data" / "images")
            write_labels(out / split / "test_label", rows)
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
        raise SystemExit("--corpus: face-age is generated, it takes no corpus")
    print(build(args.out, args.scale, args.seed))


if __name__ == "__main__":
    main()
