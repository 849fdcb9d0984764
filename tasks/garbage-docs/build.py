"""Build the garbage-docs task (AI Rush 2022 round 1, "엉터리 문서 검출") offline and deterministically.

Source text: real Korean prose that ships in the `konlpy` package (the Constitution of the Republic of Korea
and ten National Assembly bills), or the user's own UTF-8 text files (--corpus).  Each source is cut into
sentences and split into disjoint stretches: the first 70% feed training, the next 10% validation, the last 20%
the test set, so that no test sentence is ever seen in training.

A document is a window of consecutive sentences (up to 2,000 characters).  A nonsense document (label 1) is a
normal one whose eojeol, phrases or clauses were shuffled, at a strength drawn per document, so that some are
badly scrambled and some have only a few words out of place.  Training data is imbalanced (3 normal : 1
nonsense, as in the contest); the test set is balanced.

    python build.py --out DIR [--scale 1.0] [--seed 0] [--corpus FILE ...]
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import random
import re
import sys
from pathlib import Path

MAX_CHARS = 2000
SPLITS = (("train", 0.0, 0.7), ("valid", 0.7, 0.8), ("test", 0.8, 1.0))
SIZES = {"train": 2400, "valid": 300, "test": 600, "test_submit": 20}
NONSENSE_SHARE = {"train": 0.25, "valid": 0.25, "test": 0.5, "test_submit": 0.5}
CLAUSE_ENDINGS = (",", "고", "며", "나", "면", "서", "여", "는데", "지만", "므로", ".")
SENTENCE_END = re.compile(r"(?<=[.?!。])\s+")


def konlpy_corpus() -> list[Path]:
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("garbage-docs needs the konlpy package for its Korean text: "
                 "pip install --no-deps konlpy==0.6.0 (or pass --corpus FILE)")
    base = Path(list(spec.submodule_search_locations)[0]) / "data" / "corpus"
    files = [base / "kolaw" / "constitution.txt"] + sorted((base / "kobill").glob("*.txt"))
    return [f for f in files if f.exists()]


def sentences(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"\s+", " ", text)
    out = []
    for sent in SENTENCE_END.split(text):
        sent = sent.strip()
        words = sent.split()
        if len(words) >= 4 and sum(ch.isalpha() for ch in sent) >= 10:
            out.append(sent)
    return out


def cut(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    return text[:MAX_CHARS].rsplit(" ", 1)[0]


def window(rng: random.Random, stretch: list[str]) -> str:
    k = rng.choice((1, 2, 2, 3, 3, 4, 5, 6, 8))
    start = rng.randrange(max(1, len(stretch) - k + 1))
    return cut(" ".join(stretch[start:start + k]))


def _permute(rng: random.Random, items: list, share: float) -> list:
    """Shuffle a share of the positions (at least two); the result always differs from the input."""
    if len(items) < 2 or len(set(items)) < 2:
        return items
    n = max(2, round(share * len(items)))
    for _ in range(20):
        idx = sorted(rng.sample(range(len(items)), min(n, len(items))))
        moved = idx[:]
        rng.shuffle(moved)
        out = items[:]
        for a, b in zip(idx, moved):
            out[a] = items[b]
        if out != items:
            return out
    out = items[:]
    out[0], out[-1] = out[-1], out[0]
    return out


def scramble(rng: random.Random, doc: str) -> str:
    words = doc.split()
    share = rng.choice((0.1, 0.2, 0.3, 0.5, 0.8, 1.0))
    how = rng.choice(("eojeol", "phrase", "clause"))
    if how == "clause":
        clauses, current = [], []
        for word in words:
            current.append(word)
            if word.endswith(CLAUSE_ENDINGS):
                clauses.append(" ".join(current))
                current = []
        clauses += [" ".join(current)] if current else []
        if len(clauses) >= 3:
            return " ".join(_permute(rng, clauses, max(share, 0.5)))
        how = "phrase"
    if how == "phrase" and len(words) >= 6:
        size = rng.choice((2, 3, 4))
        phrases = [" ".join(words[i:i + size]) for i in range(0, len(words), size)]
        return " ".join(_permute(rng, phrases, share))
    return " ".join(_permute(rng, words, share))


def make_split(rng: random.Random, stretches: list[list[str]], size: int, nonsense_share: float):
    weights = [len(s) for s in stretches]
    rows = []
    n_bad = round(size * nonsense_share)
    labels = [1] * n_bad + [0] * (size - n_bad)
    rng.shuffle(labels)
    for label in labels:
        stretch = rng.choices(stretches, weights=weights)[0]
        doc = window(rng, stretch)
        if label:
            doc = scramble(rng, doc)
        rows.append((doc, label))
    return rows


def write_csv(path: Path, header: list[str], rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def build(out: Path, scale: float, seed: int, corpus: list[Path]) -> dict:
    files = corpus or konlpy_corpus()
    per_file = [s for s in (sentences(f) for f in files) if len(s) >= 10]
    if not per_file:
        sys.exit("--corpus: no usable text (need files with at least 10 sentences of 4+ words)")
    stretches = {name: [s[int(a * len(s)):int(b * len(s))] for s in per_file] for name, a, b in SPLITS}
    stretches = {k: [s for s in v if s] for k, v in stretches.items()}
    rng = random.Random(seed)
    data = {}
    for split in ("train", "valid", "test", "test_submit"):
        source = stretches["valid" if split == "test_submit" else split]
        size = max(8, round(SIZES[split] * scale)) if split != "test_submit" else SIZES[split]
        data[split] = make_split(rng, source, size, NONSENSE_SHARE[split])
    write_csv(out / "train" / "train_data" / "train_data", ["contents", "label"], data["train"])
    write_csv(out / "train" / "train_data" / "valid_data", ["contents", "label"], data["valid"])
    (out / "train" / "train_label").write_text("labels are the 'label' column of train_data/*\n", encoding="utf-8")
    for split, folder in (("test", "test"), ("test_submit", "test_submit")):
        write_csv(out / folder / "test_data", ["contents"], [(doc,) for doc, _ in data[split]])
        write_csv(out / folder / "test_label", ["label"], [(label,) for _, label in data[split]])
    return {k: len(v) for k, v in data.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", action="append", type=Path, default=[])
    args = parser.parse_args(argv)
    counts = build(args.out, args.scale, args.seed, args.corpus)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
