"""Build the bus-eta task (AI Rush 2022 round 1, "실시간 버스 도착 예정시간 예측") offline and deterministically.

A simulated city: routes of 8-20 stops, each segment with its length and congestion, each stop with its dwell
time. A trip's speed depends on the hour (morning and evening peaks), the day of week, the weather and a
per-trip traffic factor that shows in the delay already accumulated ("upstream delay"). A record observes a trip
at an origin stop and asks when it reaches a later stop: `travel_s`, seconds from leaving the origin.

    python build.py --out DIR [--scale 1.0] [--seed 0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

WEATHER = ["clear", "rain", "snow"]
WEATHER_SPEED = {"clear": 1.0, "rain": 0.85, "snow": 0.65}
SIZES = {"train": 3000, "test": 800, "test_submit": 20}  # trips; each trip gives 3 records


def make_network(rng):
    stops = []
    routes = []
    for r in range(12):
        n = int(rng.integers(8, 21))
        speed = float(rng.uniform(5.0, 9.0))  # m/s, latent
        routes.append({"route_id": r, "n_stops": n, "speed": speed})
        for s in range(n):
            stops.append({"route_id": r, "stop_seq": s, "stop_id": f"R{r:02d}S{s:02d}",
                          "dist_from_prev_m": 0.0 if s == 0 else float(rng.uniform(300, 1500)),
                          "congestion": float(rng.uniform(0.7, 1.4)), "dwell_base_s": float(rng.uniform(10, 40))})
    return pd.DataFrame(routes), pd.DataFrame(stops)


def hour_factor(hour):
    peak = np.exp(-((hour - 8.0) ** 2) / 2.0) + np.exp(-((hour - 18.0) ** 2) / 3.0)
    return 1.15 - 0.5 * peak - 0.15 * ((hour >= 10) & (hour <= 16))


def simulate(rng, routes, stops, n_trips, start_id):
    rows = []
    hours = np.concatenate([np.arange(5, 24)])
    hour_p = np.array([1, 3, 6, 9, 6, 4, 4, 4, 4, 4, 4, 5, 7, 9, 7, 4, 3, 2, 1], dtype=float)
    for t in range(n_trips):
        route = routes.iloc[int(rng.integers(len(routes)))]
        seg = stops[stops.route_id == route.route_id].reset_index(drop=True)
        dow = int(rng.integers(7))
        hour = int(rng.choice(hours, p=hour_p / hour_p.sum()))
        weather = str(rng.choice(WEATHER, p=[0.7, 0.2, 0.1]))
        traffic = float(rng.lognormal(0.0, 0.15))
        mult = hour_factor(hour) * (1.1 if dow >= 5 else 1.0) * WEATHER_SPEED[weather] / traffic
        dwell = seg.dwell_base_s.values * (1.3 if weather != "clear" else 1.0) * rng.lognormal(0, 0.25, len(seg))
        run = seg.dist_from_prev_m.values / (route.speed * mult / seg.congestion.values)
        run = run * rng.lognormal(0, 0.08, len(seg))
        arrive = np.cumsum(run + np.r_[0.0, dwell[:-1]])  # arrival time at each stop from the first departure
        sched = np.cumsum(seg.dist_from_prev_m.values / (route.speed / seg.congestion.values)
                          + np.r_[0.0, seg.dwell_base_s.values[:-1]])
        for _ in range(3):
            o = int(rng.integers(0, len(seg) - 2))
            d = int(rng.integers(o + 1, len(seg)))
            rows.append({
                "trip_id": start_id + t, "route_id": int(route.route_id), "day_of_week": dow, "hour": hour,
                "weather": weather, "origin_stop_seq": o, "target_stop_seq": d,
                "distance_m": round(float(seg.dist_from_prev_m.values[o + 1:d + 1].sum()), 1),
                "n_stops_between": d - o - 1, "dwell_origin_s": round(float(dwell[o]), 1),
                "upstream_delay_s": round(float(arrive[o] - sched[o]), 1),
                "travel_s": round(float(arrive[d] - arrive[o] - 0.0 + dwell[o]), 1),
            })
    return pd.DataFrame(rows)


def build(out: Path, scale: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    routes, stops = make_network(rng)
    public_stops = stops[["route_id", "stop_seq", "stop_id", "dist_from_prev_m"]]
    counts = {}
    next_id = 0
    for split in ("train", "test", "test_submit"):
        n = SIZES[split] if split == "test_submit" else max(20, round(SIZES[split] * scale))
        df = simulate(rng, routes, stops, n, next_id)
        next_id += n
        df.insert(0, "id", range(len(df)))
        counts[split] = len(df)
        if split == "train":
            folder = out / "train" / "train_data"
            folder.mkdir(parents=True)
            df.drop(columns=["id"]).to_csv(folder / "trips.csv", index=False)
            public_stops.to_csv(folder / "stops.csv", index=False)
            (out / "train" / "train_label").write_text("labels are the travel_s column of train_data/trips.csv\n")
        else:
            folder = out / split / "test_data"
            folder.mkdir(parents=True)
            df.drop(columns=["travel_s"]).to_csv(folder / "trips.csv", index=False)
            public_stops.to_csv(folder / "stops.csv", index=False)
            df[["id", "travel_s"]].to_csv(out / split / "test_label", index=False)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.corpus:
        raise SystemExit("--corpus: bus-eta is generated, it takes no corpus")
    print(build(args.out, args.scale, args.seed))


if __name__ == "__main__":
    main()
