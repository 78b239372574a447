"""The fused engine: the same numbers as the keras engine, whatever a run's pack-mates."""

from __future__ import annotations

import types

import keras
import numpy as np
import pytest

from mlreg import engines
from mlreg.data import load
from mlreg.engines import fused
from mlreg.engines.keras import execute
from mlreg.spec import ExperimentSpec
from tests.conftest import tiny_spec_dict

COMPARED = ("loss", "penalty", "train_data_loss", "val_data_loss", "val_loss", "weight_l1", "weight_l2")


def _runs(**overrides):
    runs = ExperimentSpec.from_dict(tiny_spec_dict(**overrides)).expand()
    return runs, load(runs[0].data)


def _by_id(results):
    return {r.run_id: r for r in results}


def _assert_same_history(a, b, atol):
    assert len(a.history) == len(b.history)
    for ra, rb in zip(a.history, b.history, strict=True):
        for col in COMPARED:
            assert ra[col] == pytest.approx(rb[col], abs=atol, rel=atol), (col, ra["epoch"])
        assert ra["sparsity"] == pytest.approx(rb["sparsity"], abs=2e-3)


# -- early stopping rules, without training ----------------------------------------------------
@pytest.mark.parametrize(("patience", "min_delta", "mode"), [(0, 0.0, "min"), (2, 0.0, "min"), (3, 0.05, "min"),
                                                             (2, 0.0, "max"), (4, 0.02, "max")])
def test_stop_rule_follows_keras_early_stopping(patience, min_delta, mode):
    rng = np.random.default_rng(patience)
    for _ in range(20):
        values = np.round(rng.normal(0, 1, 30).cumsum() * 0.1, 2)  # rounding makes ties happen
        stopper = keras.callbacks.EarlyStopping(monitor="m", patience=patience, min_delta=min_delta, mode=mode)
        stopper.set_model(types.SimpleNamespace(stop_training=False))
        stopper.on_train_begin()
        rule = fused.StopRule([patience], [min_delta], [True], mode)
        for epoch, value in enumerate(values):
            stopper.on_epoch_end(epoch, {"m": value})
            _, stop = rule.update(epoch, [value], [0])
            assert bool(stop[0]) == stopper.model.stop_training, (epoch, list(values))
            assert rule.best_epoch[0] == stopper.best_epoch
            if stop[0]:
                break


def test_stop_rule_keeps_runs_apart_and_never_stops_a_run_without_early_stopping():
    rule = fused.StopRule([1, 1], [0.0, 0.0], [True, False])
    for epoch, values in enumerate([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]):
        _, stop = rule.update(epoch, values, [0, 1])
        assert list(stop) == [epoch == 1, False]
        if epoch == 1:
            break
    assert list(rule.best_epoch) == [0, 0]


# -- packing -----------------------------------------------------------------------------------
def test_packs_group_by_what_a_graph_shares_and_split_evenly():
    runs, _ = _runs(seeds=10, grid={"l2": [0.0, 1e-3], "batch_size": [16, 32]})
    packs = fused.pack(runs, max_pack=8)
    assert sorted(len(p) for p in packs) == [6, 6, 7, 7, 7, 7]  # 20 runs per batch size: 7 + 7 + 6
    for p in packs:
        assert len({r.training.batch_size for r in p}) == 1
    assert sorted(r.run_id for p in packs for r in p) == sorted(r.run_id for r in runs)


def test_auto_trains_what_it_cannot_fuse_with_keras_and_says_why():
    runs, _ = _runs(grid={"builder": ["mlp", "tests.builders:small"]})
    packs, note = engines.plan(runs, "auto")
    assert [p.engine for p in packs] == ["fused", "keras"]
    assert "1 of 2 runs train with keras" in note and "tests.builders:small" in note
    with pytest.raises(ValueError, match="fused engine cannot train 1 of these runs"):
        engines.plan(runs, "fused")
    assert engines.plan(runs[:1], "auto")[1] is None


# -- the same numbers ------------------------------------------------------------------------------
def test_the_batch_order_is_the_one_model_fit_uses():
    seen = []

    class Recorder(keras.Model):
        def train_step(self, data):
            import tensorflow as tf

            x, _ = data
            tf.py_function(lambda a: seen.append(a.numpy().ravel().astype(int).tolist()) or 0, [x], tf.int32)
            return super().train_step(data)

    keras.backend.clear_session()
    keras.utils.set_random_seed(11)
    inputs = keras.Input((1,))
    model = Recorder(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    model.fit(np.arange(23, dtype="float32")[:, None], np.zeros((23, 1)), batch_size=5, epochs=2, verbose=0)
    order = fused.keras_batch_order(11, 23).tolist()
    assert [i for batch in seen[:5] for i in batch] == order
    assert [i for batch in seen[5:] for i in batch] == order  # and the same in every epoch


@pytest.mark.parametrize("overrides", [
    {"model": {"hidden": [16, 8], "l2": 1e-3, "l1": 1e-4}},
    {"model": {"builder": "residual_mlp", "hidden": [16, 16, 8], "l2": [1e-3, 0.0, 1e-2, 1e-3]}},
    {"model": {"builder": "wide_deep", "hidden": [16], "activation": "tanh"}, "training": {"optimizer": "rmsprop"}},
    {"data": {"dataset": "breast_cancer", "test_size": 0.2}, "training": {"optimizer": "sgd", "learning_rate": 0.05}},
    {"data": {"dataset": "multilabel", "train_size": 1.0}, "training": {"optimizer": "adamw"}},
    {"data": {"dataset": "poly", "train_size": 1.0}, "model": {"activation": "elu"}},
])
@pytest.mark.parametrize("xla", [False, True])
def test_one_run_matches_the_keras_engine(overrides, xla, monkeypatch):
    """K = 1, no dropout: the same initial weights and batch order, so only the order of
    floating-point sums differs (a batched matmul against Dense's matmul, XLA's fused update)."""
    monkeypatch.setattr(fused, "use_xla", lambda *args: xla)
    runs, ds = _runs(seeds=[4], training={"epochs": 12, **overrides.pop("training", {})},
                     early_stopping={"patience": 3}, **overrides)
    ours = next(fused.train_pack(runs, ds))
    reference = execute(runs[0], ds)
    assert ours.status == reference.status == "ok", ours.summary.get("error")
    _assert_same_history(ours, reference, atol=1e-5)
    for col in ("best_epoch", "stopped_epoch", "epochs_run", "n_params"):
        assert ours.summary[col] == reference.summary[col], col
    for col in ("best_val_data_loss", "gap", "weight_l2", "val_accuracy_at_best", "val_mae_at_best",
                "test_data_loss", "test_accuracy"):
        if col in reference.summary:
            assert ours.summary[col] == pytest.approx(reference.summary[col], abs=1e-5), col
    assert [w["layer"] for w in ours.weights] == [w["layer"] for w in reference.weights]
    assert ours.summary["engine"] == "fused" and reference.summary["engine"] == "keras"


@pytest.mark.parametrize("xla", [False, True])
def test_a_run_does_not_depend_on_its_pack_mates(xla, monkeypatch):
    monkeypatch.setattr(fused, "use_xla", lambda *args: xla)
    runs, ds = _runs(seeds=[0, 1, 2], training={"epochs": 8}, early_stopping={"patience": 2},
                     grid={"l2": [0.0, 1e-2], "dropout": [0.0, 0.3], "learning_rate": [1e-3, 0.1]})
    mates = [r for r in runs if r.seed in (0, 1) or r.model.dropout == 0.0]  # 16 settings x seeds, one more below
    target = next(r for r in runs if r.seed == 2 and r.model.dropout == 0.3 and r.model.l2 == 1e-2)
    alone = next(fused.train_pack([target], ds))
    together = _by_id(fused.train_pack([*mates[:8], target, *mates[8:16]], ds))
    assert len(together) == 17 and alone.status == "ok"
    _assert_same_history(together[target.run_id], alone, atol=1e-5)
    assert together[target.run_id].weights == alone.weights
    stopped = [r.summary["epochs_run"] for r in together.values()]
    assert min(stopped) < 8  # some left the pack early, and the target was not disturbed by it


def test_a_diverging_run_leaves_its_pack_mates_alone():
    runs, ds = _runs(training={"optimizer": "sgd", "epochs": 4}, grid={"learning_rate": [0.05, 1e9, 0.1]})
    together = _by_id(fused.train_pack(runs, ds))
    assert [together[r.run_id].status for r in runs] == ["ok", "diverged", "ok"]
    assert "non-finite loss at epoch" in together[runs[1].run_id].summary["error"]
    apart = _by_id(fused.train_pack([runs[0], runs[2]], ds))
    for r in (runs[0], runs[2]):
        _assert_same_history(together[r.run_id], apart[r.run_id], atol=1e-6)


def test_early_stopping_restores_each_runs_best_weights():
    runs, ds = _runs(seeds=[0, 1], model={"hidden": [64]}, training={"epochs": 40, "learning_rate": 0.05},
                     early_stopping={"patience": 3})
    for res in fused.train_pack(runs, ds):
        s = res.summary
        assert s["stopped_epoch"] == s["epochs_run"] < 40
        assert s["best_epoch"] == s["epochs_run"] - 3
        best_row = res.history[s["best_epoch"] - 1]
        assert s["weight_l2"] == pytest.approx(best_row["weight_l2"], rel=1e-6)
        assert s["best_val_data_loss"] == best_row["val_data_loss"]


def test_a_failing_pack_fails_its_runs_with_the_message(monkeypatch):
    runs, ds = _runs(seeds=2)

    def broken(*args, **kw):
        raise RuntimeError("no memory left")

    monkeypatch.setattr(fused, "_initial_weights", broken)
    results = list(fused.train_pack(runs, ds))
    assert [r.status for r in results] == ["failed", "failed"]
    assert "RuntimeError: no memory left" in results[0].summary["error"]


@pytest.mark.slow
def test_engines_agree_over_seeds_with_dropout():
    """Dropout masks differ between the engines (Keras draws its own), so runs differ; over
    10 seeds each setting's mean best validation loss must agree within 2 standard errors."""
    runs, ds = _runs(seeds=10, data={"dataset": "digits", "train_size": 300}, model={"hidden": [32], "dropout": 0.3},
                     training={"epochs": 30, "learning_rate": 3e-3}, early_stopping={"patience": 5},
                     grid={"l2": [0.0, 1e-3, 1e-2]})
    ours = _by_id(fused.train_pack(runs, ds))
    reference = {r.run_id: execute(r, ds) for r in runs}
    for l2 in (0.0, 1e-3, 1e-2):
        ids = [r.run_id for r in runs if r.model.l2 == l2]
        a = np.array([ours[i].summary["best_val_data_loss"] for i in ids])
        b = np.array([reference[i].summary["best_val_data_loss"] for i in ids])
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        assert abs(a.mean() - b.mean()) < 2 * se, (l2, a.mean(), b.mean(), se)


def test_a_stop_request_is_honoured_between_epochs():
    """Ctrl-C and SIGTERM set `engines.STOP`; the fused engine stops at the next epoch's start,
    after yielding the runs that ended before."""
    runs, ds = _runs(seeds=[0], training={"epochs": 50, "learning_rate": 0.1},
                     grid={"early_stopping": [True, False]}, early_stopping={"patience": 0})
    pack = fused.train_pack(runs, ds)
    first = next(pack)
    assert first.run_id == runs[0].run_id and first.summary["epochs_run"] < 50
    engines.STOP.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            next(pack)
    finally:
        engines.STOP.clear()
