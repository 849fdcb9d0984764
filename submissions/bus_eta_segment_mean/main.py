"""bus-eta baseline: the mean seconds per metre of each (route, origin stop, target stop) seen in training,
falling back to the route's and then the overall mean pace. Written as an NSML participant writes it."""
import argparse
import json
import os

import pandas as pd

import nsml
from nsml import DATASET_PATH


def fit(trips):
    trips = trips.assign(pace=trips.travel_s / trips.distance_m)
    seg = trips.groupby(["route_id", "origin_stop_seq", "target_stop_seq"]).pace.mean()
    return {"segment": {f"{r}/{o}/{t}": float(v) for (r, o, t), v in seg.items()},
            "route": {str(r): float(v) for r, v in trips.groupby("route_id").pace.mean().items()},
            "overall": float(trips.pace.mean())}


def predict(model, trips):
    out = []
    for row in trips.itertuples():
        pace = model["segment"].get(f"{row.route_id}/{row.origin_stop_seq}/{row.target_stop_seq}")
        if pace is None:
            pace = model["route"].get(str(row.route_id), model["overall"])
        out.append(pace * row.distance_m)
    return out


def bind_model(model):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        with open(os.path.join(dir_name, "model.json"), "w") as fh:
            json.dump(model, fh)

    def load(dir_name, **kwargs):
        with open(os.path.join(dir_name, "model.json")) as fh:
            model.update(json.load(fh))

    def infer(folder, **kwargs):
        return predict(model, pd.read_csv(os.path.join(folder, "trips.csv")))

    nsml.bind(save=save, load=load, infer=infer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    config = parser.parse_args()
    model = {}
    bind_model(model)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode == "train":
        trips = pd.read_csv(os.path.join(DATASET_PATH, "train", "train_data", "trips.csv"))
        valid = trips[trips.trip_id % 10 == 0]
        model.update(fit(trips[trips.trip_id % 10 != 0]))
        rmse = float(((pd.Series(predict(model, valid)) - valid.travel_s.values) ** 2).mean() ** 0.5)
        print(f"valid rmse {rmse:.1f}")
        nsml.report(summary=True, step=0, valid__rmse=rmse)
        model.update(fit(trips))
        nsml.save(0)
