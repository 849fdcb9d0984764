"""bus-eta baseline: gradient-boosted trees (scikit-learn HistGradientBoostingRegressor) on the trip record —
route, hour, day of week, weather, stops, distance, dwell and the delay accumulated so far — predicting the
pace (seconds per metre), which is then scaled by the distance. Written as an NSML participant writes it."""
import argparse
import os
import pickle

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

import nsml
from nsml import DATASET_PATH

WEATHER = {"clear": 0, "rain": 1, "snow": 2}
FEATURES = ["route_id", "day_of_week", "hour", "weather", "origin_stop_seq", "target_stop_seq", "distance_m",
            "n_stops_between", "dwell_origin_s", "upstream_delay_s", "weekend"]


def features(trips):
    x = trips.assign(weather=trips.weather.map(WEATHER).fillna(0), weekend=(trips.day_of_week >= 5).astype(int))
    return x[FEATURES].to_numpy(dtype=float)


def bind_model(state):
    def save(dir_name, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        with open(os.path.join(dir_name, "model.pkl"), "wb") as fh:
            pickle.dump(state["model"], fh)

    def load(dir_name, **kwargs):
        with open(os.path.join(dir_name, "model.pkl"), "rb") as fh:
            state["model"] = pickle.load(fh)

    def infer(folder, **kwargs):
        trips = pd.read_csv(os.path.join(folder, "trips.csv"))
        pace = state["model"].predict(features(trips))
        return np.clip(pace, 0, None) * trips.distance_m.values

    nsml.bind(save=save, load=load, infer=infer)


def train(trips, config):
    model = HistGradientBoostingRegressor(max_iter=config.max_iter, learning_rate=config.lr,
                                          categorical_features=[0], random_state=config.seed)
    return model.fit(features(trips), (trips.travel_s / trips.distance_m).values)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", type=str, default="train")
    parser.add_argument("--pause", type=int, default=0)
    parser.add_argument("--iteration", type=str, default="0")
    parser.add_argument("--max_iter", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    config = parser.parse_args()
    state = {}
    bind_model(state)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode == "train":
        trips = pd.read_csv(os.path.join(DATASET_PATH, "train", "train_data", "trips.csv"))
        held = trips.trip_id % 10 == 0
        state["model"] = train(trips[~held], config)
        valid = trips[held]
        pred = state["model"].predict(features(valid)) * valid.distance_m.values
        rmse = float(np.sqrt(np.mean((pred - valid.travel_s.values) ** 2)))
        print(f"valid rmse {rmse:.1f}")
        nsml.report(summary=True, step=0, valid__rmse=rmse)
        state["model"] = train(trips, config)
        nsml.save(0)
