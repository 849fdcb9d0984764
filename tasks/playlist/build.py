"""Build the playlist task (AI Rush 2022 round 2, "Music AI — infer the songs of a playlist") offline and
deterministically.

A latent music world: genres, eras, artists (each of one genre and era), moods, and songs with Zipf popularity.
A playlist has one or two genres, an era, a mood; its songs are drawn from those (popular songs more often), its
tags and title words from the mood's and genres' vocabularies — so metadata genuinely helps. Test playlists show
half of their songs (some show none: only the title and tags); the hidden songs are to be found.

    python build.py --out DIR [--scale 1.0] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

GENRES = ["발라드", "댄스", "힙합", "록", "인디", "R&B", "재즈", "클래식", "트로트", "OST"]
MOODS = {"신나는": ["드라이브", "운동", "파티"], "잔잔한": ["카페", "새벽", "휴식"], "감성": ["비오는날", "이별", "밤"],
         "여름": ["바다", "여행", "청량"], "집중": ["공부", "작업", "독서"], "사랑": ["설렘", "고백", "데이트"]}
WORDS = ["노래", "음악", "모음", "플레이리스트", "명곡", "듣기좋은", "추천", "감성", "베스트", "리스트"]
SIZES = {"songs": 3000, "train": 4000, "test": 600, "test_submit": 20}


def world(rng, n_songs):
    n_artists = max(30, n_songs // 8)
    artist_genre = rng.integers(len(GENRES), size=n_artists)
    artist_year = rng.integers(1990, 2022, size=n_artists)
    song_artist = rng.integers(n_artists, size=n_songs)
    song_mood = rng.integers(len(MOODS), size=n_songs)
    song_year = np.clip(artist_year[song_artist] + rng.integers(-3, 4, size=n_songs), 1985, 2022)
    popularity = 1.0 / (1 + rng.permutation(n_songs)) ** 0.9
    meta = [{"id": i, "song_name": f"{rng.choice(WORDS)} {i}", "artist_id_basket": [int(song_artist[i])],
             "artist_name_basket": [f"artist{int(song_artist[i]):04d}"], "album_name": f"album{i // 7:05d}",
             "song_gn_gnr_basket": [f"GN{int(artist_genre[song_artist[i]]) + 1:02d}00"],
             "issue_date": f"{int(song_year[i])}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"}
            for i in range(n_songs)]
    return meta, artist_genre[song_artist], song_year, song_mood, popularity


def playlists(rng, n, start_id, genre, year, mood, pop):
    moods = list(MOODS)
    out = []
    for k in range(n):
        gs = rng.choice(len(GENRES), size=int(rng.integers(1, 3)), replace=False)
        era = int(rng.integers(1990, 2022))
        m = int(rng.integers(len(moods)))
        w = pop ** 0.7 * np.where(np.isin(genre, gs), 1.0, 0.02) * np.exp(-np.abs(year - era) / 5.0) \
            * np.where(mood == m, 1.0, 0.25)
        size = int(rng.integers(10, 41))
        songs = rng.choice(len(pop), size=size, replace=False, p=w / w.sum())
        tags = list(dict.fromkeys([moods[m], *rng.choice(MOODS[moods[m]], size=int(rng.integers(0, 3))),
                                   GENRES[int(gs[0])]]))
        title = f"{rng.choice(MOODS[moods[m]])} {GENRES[int(gs[-1])]} {rng.choice(WORDS)}"
        out.append({"id": start_id + k, "plylst_title": title, "tags": tags, "songs": [int(s) for s in songs],
                    "like_cnt": int(rng.zipf(2.0)), "updt_date": f"20{int(rng.integers(15, 22))}-01-01 00:00:00.000"})
    return out


def hide(rng, pls):
    visible, hidden = [], []
    for p in pls:
        songs = list(p["songs"])
        rng.shuffle(songs)
        keep = 0 if rng.random() < 0.1 else len(songs) // 2
        visible.append(dict(p, songs=songs[:keep]))
        hidden.append({"id": p["id"], "songs": songs[keep:]})
    return visible, hidden


def dump(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def build(out: Path, scale: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n_songs = max(300, round(SIZES["songs"] * scale))
    meta, genre, year, mood, pop = world(rng, n_songs)
    counts, next_id = {}, 0
    for split in ("train", "test", "test_submit"):
        n = SIZES[split] if split == "test_submit" else max(50, round(SIZES[split] * scale))
        pls = playlists(rng, n, next_id, genre, year, mood, pop)
        next_id += n
        counts[split] = n
        if split == "train":
            dump(out / "train" / "train_data" / "train.json", pls)
            dump(out / "train" / "train_data" / "song_meta.json", meta)
            (out / "train" / "train_label").write_text("labels are the songs of train_data/train.json\n")
        else:
            visible, hidden = hide(rng, pls)
            dump(out / split / "test_data" / "test.json", visible)
            dump(out / split / "test_data" / "song_meta.json", meta)
            dump(out / split / "test_label", hidden)
    counts["songs"] = n_songs
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.corpus:
        raise SystemExit("--corpus: playlist is generated, it takes no corpus")
    print(build(args.out, args.scale, args.seed))


if __name__ == "__main__":
    main()
