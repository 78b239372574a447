from __future__ import annotations

import keras
import numpy as np
import pytest

from mlreg.data import load
from mlreg.engines.keras import execute, train_run
from mlreg.records import HIST_EDGES, columns
from mlreg.spec import ExperimentSpec
from tests.conftest import tiny_spec_dict

pytestmark = pytest.mark.backends  # run again under the other Keras backend in CI


def _run(**overrides):
    run = ExperimentSpec.from_dict(tiny_spec_dict(**overrides)).expand()[0]
    return run, load(run.data)


def test_same_validation_losses_as_handwritten_keras():
    run, ds = _run(seeds=[7], model={"hidden": [16], "l2": 1e-3, "dropout": 0.2},
                   training={"epochs": 4, "learning_rate": 3e-3}, early_stopping={"enabled": False})
    res = train_run(run, ds)

    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax", kernel_regularizer=keras.regularizers.L2(1e-3)),
    ])
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalCrossentropy(name="ce")])
    hist = model.fit(ds.x_train, ds.y_train, validation_data=(ds.x_val, ds.y_val), epochs=4,
                     batch_size=32, verbose=0).history

    ours = res.history
    np.testing.assert_allclose([r["val_data_loss"] for r in ours], hist["val_ce"], rtol=0, atol=1e-6)
    np.testing.assert_allclose([r["val_loss"] for r in ours], hist["val_loss"], rtol=0, atol=1e-6)
    np.testing.assert_allclose([r["loss"] for r in ours], hist["loss"], rtol=0, atol=1e-6)
    # and the honest columns add up: val_loss = val_data_loss + penalty
    for r in ours:
        assert r["val_loss"] == pytest.approx(r["val_data_loss"] + r["penalty"], abs=1e-5)


def test_same_run_twice_gives_the_same_history():
    run, ds = _run(model={"dropout": 0.3, "l1": 1e-4})
    a, b = train_run(run, ds), train_run(run, ds)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert a.weights == b.weights


def test_columns_and_summary_are_honest():
    run, ds = _run(model={"l2": 1e-2, "dropout": 0.2}, training={"epochs": 6},
                   early_stopping={"patience": 50})
    res = train_run(run, ds)
    cols = columns(ds.task, list(run.params_for_csv()))
    assert list(res.history_rows()[0]) == cols["history.csv"] and set(res.row()) <= set(cols["runs.csv"])
    assert res.history[0]["epoch_time_s"] > 0 and res.summary["duration_s"] > 0  # written to timings.csv
    assert res.status == "ok" and res.summary["epochs_run"] == 6
    best = min(res.history, key=lambda r: r["val_data_loss"])
    assert res.summary["best_epoch"] == best["epoch"]
    assert res.summary["gap"] == pytest.approx(best["val_data_loss"] - best["train_data_loss"])
    for r in res.history:
        assert r["penalty"] > 0 and r["weight_l2"] > 0 and 0 <= r["sparsity"] <= 1
        assert r["lr"] == pytest.approx(1e-3)
        # the penalty is the rate times the sum of squared kernel weights
        assert r["penalty"] == pytest.approx(1e-2 * r["weight_l2"], rel=1e-4)
    n_kernel = sum(w["count"] for w in res.weights)
    assert n_kernel == 64 * 16 + 16 * 10
    assert {w["layer"] for w in res.weights} == {"hidden_1", "output"}
    assert all(w["bin_left"] in HIST_EDGES for w in res.weights)


def test_early_stopping_restores_the_best_weights():
    run, ds = _run(training={"epochs": 60, "learning_rate": 0.05}, model={"hidden": [64]},
                   early_stopping={"patience": 3})
    res = train_run(run, ds)
    assert res.summary["stopped_epoch"] == res.summary["epochs_run"] < 60
    assert res.summary["best_epoch"] == res.summary["epochs_run"] - 3
    # the final weights are those of the best epoch: their L2 norm matches that row
    best_row = res.history[res.summary["best_epoch"] - 1]
    assert res.summary["weight_l2"] == pytest.approx(best_row["weight_l2"], rel=1e-6)


def test_huge_learning_rate_is_diverged_not_a_crash():
    run, ds = _run(data={"dataset": "poly", "train_size": 1.0}, training={"optimizer": "sgd", "learning_rate": 1e9,
                                                                       "epochs": 5})
    res = execute(run, ds)
    assert res.status == "diverged"
    assert "non-finite" in res.summary["error"]
    assert res.summary.get("best_val_data_loss") is None


def test_an_exception_is_a_failed_run_with_its_message():
    run, ds = _run(model={"builder": "tests.builders:broken"})
    res = execute(run, ds)
    assert res.status == "failed" and "this builder always fails" in res.summary["error"]
    run, ds = _run(model={"builder": "tests.builders:not_a_model"})
    assert "not a keras.Model" in execute(run, ds).summary["error"]


@pytest.mark.parametrize(("dataset", "metric"), [("moons", "accuracy"), ("poly", "mae"),
                                                  ("multilabel", "accuracy")])
def test_other_tasks_train(dataset, metric):
    run, ds = _run(data={"dataset": dataset, "train_size": 1.0}, training={"epochs": 2})
    res = train_run(run, ds)
    assert res.status == "ok" and f"val_{metric}" in res.history[-1]
    assert np.isfinite(res.summary["best_val_data_loss"])


@pytest.mark.parametrize("engine", ["keras", "fused"])
def test_early_stopping_on_accuracy_keeps_the_most_accurate_epoch(engine):
    """Issue 8.4: `monitor = "val_accuracy"` ran with mode "min" and kept the least accurate epoch."""
    from mlreg.engines import fused

    run, ds = _run(data={"dataset": "iris", "train_size": 60}, model={"hidden": [8]},
                   training={"epochs": 60, "learning_rate": 1e-2},
                   early_stopping={"patience": 5, "monitor": "val_accuracy"})
    res = execute(run, ds) if engine == "keras" else next(fused.train_pack([run], ds))
    accuracies = [r["val_accuracy"] for r in res.history]
    best = res.summary["best_epoch"]
    assert res.summary["val_accuracy_at_best"] == max(accuracies)
    assert best == accuracies.index(max(accuracies)) + 1 == res.summary["kept_epoch"]


def test_without_early_stopping_the_kept_model_is_the_last_one():
    """Issue 8.15: `best_epoch` named an epoch whose weights were not kept, beside test
    columns from the final weights; `kept_epoch` says which model the row describes."""
    run, ds = _run(data={"test_size": 0.2}, training={"epochs": 6, "learning_rate": 0.05},
                   early_stopping={"enabled": False})
    res = execute(run, ds)
    assert res.summary["kept_epoch"] == 6 and res.summary["stopped_epoch"] is None
    assert res.summary["weight_l2"] == pytest.approx(res.history[-1]["weight_l2"], rel=1e-6)


def test_epoch_logger_with_fake_logs():
    """The epoch logger only logs: driven with fake logs, it adds the honest columns and
    stops training at a non-finite loss."""

    from mlreg.callbacks import HonestLogger
    from mlreg.models import build_mlp, compile_model
    from mlreg.spec import TrainingSpec

    run, ds = _run()
    model = compile_model(build_mlp(64, 10, "single_label", hidden=(4,), l2=0.5), "single_label", TrainingSpec())
    logger = HonestLogger(ds.x_train, ds.y_train, run_id="r")
    logger.set_model(model)
    logger.on_train_begin()
    for epoch, loss in enumerate([2.0, float("nan")]):
        logs = {"loss": loss, "val_data_loss": 1.5, "val_loss": 1.6, "accuracy": 0.3, "val_accuracy": 0.2}
        logger.on_epoch_begin(epoch)
        logger.on_epoch_end(epoch, logs)
        row = logger.rows[-1]
        assert (row["epoch"], row["loss"], row["val_data_loss"], row["val_accuracy"]) == (epoch + 1, loss, 1.5, 0.2)
        assert logs["train_data_loss"] == row["train_data_loss"] > 0 and logs["penalty"] == row["penalty"] > 0
        assert row["penalty"] == pytest.approx(0.5 * row["weight_l2"], rel=1e-4)
    assert model.stop_training and logger.diverged
    logger.on_train_begin()  # reusable
    assert logger.rows == [] and not logger.diverged
