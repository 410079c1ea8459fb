"""Runs inside a built-in image's environment (its own xgboost and smdebug): train, write what the image writes.

`python image_training_script.py CONFIG.json`; CONFIG names an .npz of the data (or staged CSVs) and says what to
write (see
tests/runtime/image_training.py, its only caller). Standard library, numpy, xgboost and smdebug only: it must
run with every xgboost from 0.90 to 3.2, so it uses each one's own callback style. The model is saved the way
the image's train.py saves it (`pkl.dump(bst, f, protocol=N)` or `bst.save_model(path)`), independently of the
local endpoint's container code, so tests compare that code against the images' own way.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import xgboost as xgb


def _read_csv_channels(channels: dict[str, str]) -> dict[str, np.ndarray]:
    """Headerless CSVs with the label first, as the built-in algorithm reads them."""
    import pandas as pd

    data = {}
    for channel, path in channels.items():
        frame = pd.read_csv(path, header=None, dtype="float32")
        data[f"{channel}_features"] = frame.iloc[:, 1:].to_numpy()
        data[f"{channel}_labels"] = frame.iloc[:, 0].to_numpy()
    return data


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    if config.get("hook"):
        from smdebug.xgboost import Hook  # noqa: F401  (imported before the clock starts, as a warm process has)
    started = time.perf_counter()
    data = _read_csv_channels(config["csv"]) if config.get("csv") else dict(np.load(config["data"]))
    dtrain = xgb.DMatrix(data["train_features"], label=data["train_labels"])
    evals = [(dtrain, "train")]
    dvalidation = None
    if "validation_features" in data:
        dvalidation = xgb.DMatrix(data["validation_features"], label=data["validation_labels"])
        evals.append((dvalidation, "validation"))
    loaded = time.perf_counter()
    modern = hasattr(xgb.callback, "TrainingCallback")
    callbacks = []
    hook_config = config.get("hook")
    if hook_config:
        from smdebug import SaveConfig
        from smdebug.xgboost import Hook

        hook = Hook(out_dir=hook_config["out_dir"], include_collections=hook_config["collections"],
                    save_config=SaveConfig(save_interval=hook_config["save_interval"]),
                    train_data=dtrain, validation_data=dvalidation)
        callbacks.append(hook)
    slow = float(config.get("slow_seconds") or 0)
    if slow and modern:
        class Slow(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):  # type: ignore[no-untyped-def]
                time.sleep(slow)
                return False

        callbacks.append(Slow())
    elif slow:
        callbacks.append(lambda env: time.sleep(slow))
    hooked = time.perf_counter()
    evals_result: dict = {}
    booster = xgb.train(config["params"], dtrain, config["rounds"], evals=evals, callbacks=callbacks,
                        evals_result=evals_result, verbose_eval=False)
    if hook_config and hasattr(hook, "close"):
        hook.close()  # flushes the writers now rather than at exit
    trained = time.perf_counter()
    if config.get("model_path"):
        path = Path(config["model_path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        if config["save"] == "save_model":
            booster.save_model(str(path))
        else:
            with path.open("wb") as handle:
                pickle.dump(booster, handle, protocol=int(config["save"].removeprefix("pickle:")))
    if config.get("contribs_path"):
        rows = xgb.DMatrix(data[config.get("contribs_of", "train_features")])
        np.save(config["contribs_path"], booster.predict(rows, pred_contribs=True))
    final = {f"{name}:{metric}": float(values[-1]) for name, metrics in evals_result.items()
             for metric, values in metrics.items()}
    print(json.dumps({"xgboost": xgb.__version__, "final_metrics": final,
                      "seconds": {"load": loaded - started, "hook": hooked - loaded, "train": trained - hooked}}))


if __name__ == "__main__":
    main(sys.argv[1])
