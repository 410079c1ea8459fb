"""Hyperparameter validation of the XGBoost algorithm process: one clear sentence, exit 1, before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from sm_explain_contracts.hyperparameters import HyperparameterError as UserError
from sm_explain_contracts.hyperparameters import parse_hyperparameters
from tests.local_endpoint.test_xgb_container_helpers import layout_opt_ml, run_container

# Train data that fails to parse: if the process read it, the failure would be about the data instead.
BROKEN_TRAIN = {"train": {"train.csv": "label,age\nyes,abc\n"}}


def test_values_are_typed_aliases_resolved_and_container_keys_kept_out_of_xgboost() -> None:
    parsed = parse_hyperparameters({
        "num_round": "51", "max_depth": "5", "learning_rate": "0.2", "gamma": "4", "min_child_weight": "6",
        "subsample": "0.7", "objective": "binary:logistic", "eval_metric": "logloss, auc,accuracy",
        "early_stopping_rounds": "10", "csv_weights": "0", "seed": "-3",
    }, xgboost_version="1.7.4")
    assert parsed.num_round == 51
    assert parsed.early_stopping_rounds == 10
    assert parsed.early_stopping_metric == "accuracy"
    assert parsed.container_metrics == ["accuracy"]
    assert parsed.booster_params == {
        "max_depth": 5, "eta": 0.2, "gamma": 4.0, "min_child_weight": 6.0, "subsample": 0.7,
        "objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "seed": -3,
    }


def test_what_xgboost_2_removed_reaches_only_the_1x_images_library() -> None:
    raw = {"num_round": "5", "predictor": "cpu_predictor", "objective": "reg:linear"}
    old = parse_hyperparameters(raw, xgboost_version="1.7.4")
    assert old.booster_params == {"predictor": "cpu_predictor", "objective": "reg:linear"}
    assert old.ignored == []
    new = parse_hyperparameters(raw, xgboost_version="3.0.5")
    assert new.booster_params == {"objective": "reg:squarederror"}
    assert new.ignored == ["predictor"]


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"eta": "abc"}, "Hyperparameter eta: value 'abc' is not a valid float; expected a number in [0, 1]."),
        ({"eta": "1.5"}, "Hyperparameter eta: value 1.5 is out of range; expected a number in [0, 1]."),
        ({"eta": "nan"}, "Hyperparameter eta: value nan is out of range; expected a number in [0, 1]."),
        ({"max_depth": "3.5"}, "Hyperparameter max_depth: value '3.5' is not a valid integer; expected an integer in [0, +inf)."),
        ({"subsample": "0"}, "Hyperparameter subsample: value 0 is out of range; expected a number in (0, 1]."),
        ({"num_round": "0"}, "Hyperparameter num_round: value 0 is out of range; expected an integer in [1, +inf)."),
        ({"scale_pos_weight": "0"}, "Hyperparameter scale_pos_weight: value 0 is out of range; expected a number in (0, +inf)."),
        ({"objective": "binary:logit"}, "Hyperparameter objective: value 'binary:logit' is not one of binary:logistic,"),
        ({"grow_policy": "widthwise"}, "Hyperparameter grow_policy: value 'widthwise' is not one of depthwise, lossguide."),
        ({"objective": "multi:softprob"}, "Hyperparameter num_class is required for objective multi:softprob"),
        ({"eval_metric": "logloss,auc"}, "Hyperparameter eval_metric: metric 'auc' can only be applied to binary: and rank: objectives."),
        ({"eval_metric": "logloss,precision@3"}, "Hyperparameter eval_metric: metric 'precision@3' is not supported"),
        ({"eval_metric": "los"}, "Hyperparameter eval_metric: metric 'los' is not supported"),
        ({"max_dept": "3"}, "Extraneous hyperparameter found: max_dept is not a hyperparameter of the XGBoost algorithm; did you mean max_depth?"),
    ],
)
def test_bad_hyperparameter_is_named_with_what_it_accepts(hyperparameters: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as raised:
        parse_hyperparameters({"num_round": "10", **hyperparameters}, xgboost_version="1.7.4")
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("hyperparameters", "failure"),
    [
        (
            {"num_round": "10", "eta": "abc"},
            "Hyperparameter eta: value 'abc' is not a valid float; expected a number in [0, 1].",
        ),
        (
            {"num_round": "10", "colsample_by_tree": "0.5"},
            "Extraneous hyperparameter found: colsample_by_tree is not a hyperparameter of the XGBoost algorithm; "
            "did you mean colsample_bytree?",
        ),
        ({"max_depth": "5"}, "Missing required hyperparameter: num_round (an integer in [1, +inf))."),
    ],
)
def test_process_writes_one_sentence_and_exits_1_before_reading_data(
    tmp_path: Path, hyperparameters: dict[str, str], failure: str
) -> None:
    run = run_container(layout_opt_ml(tmp_path, hyperparameters, BROKEN_TRAIN))
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.failure == failure
    assert not run.model_path.exists()
    assert "Channel train" not in run.stdout  # the data was never read


def test_help_starts_without_loading_xgboost() -> None:
    import subprocess
    import sys


    probe = (
        "import sys, runpy; sys.argv=['x', '--help']\n"
        "try:\n runpy.run_module('sm_local.xgboost_container', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in ('xgboost', 'smdebug', 'pandas', 'numpy') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], env={}, capture_output=True, text=True, check=True
    )
    assert "--framework-version" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"
