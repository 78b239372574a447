"""The zoo (tests/zoo): models written from Keras's own examples train under the default engine,
every run `ok`; where the fused engine trains them, a run in a pack of 8 follows `model.fit` epoch
by epoch. The marked entries run again on the second backend."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from mlreg.data import load
from mlreg.engines import fused
from mlreg.engines.keras import execute
from mlreg.spec import ExperimentSpec
from tests import zoo
from tests.conftest import write_toml

COMPARED = ("loss", "penalty", "train_data_loss", "val_data_loss", "val_loss", "weight_l2", "train_accuracy",
            "val_accuracy")


def _params(names):
    return [pytest.param(name, marks=[getattr(pytest.mark, m) for m in zoo.ZOO[name].marks]) for name in names]


def _experiment(name, **overrides):
    entry = zoo.ZOO[name]
    d = {"name": name, "seeds": 1, "data": dict(entry.data), "model": {"builder": f"tests.zoo:{name}", **entry.model},
         "training": {"epochs": entry.epochs, "batch_size": 32}, "early_stopping": {"patience": 2},
         "grid": {k: list(v) for k, v in entry.grid.items()}}
    return d | overrides


@pytest.mark.parametrize("name", _params(zoo.ZOO))
def test_a_zoo_model_trains_under_the_default_engine_as_model_fit_does(name, tmp_path, cli):
    """`mlreg run` with the default engine: exit 0, every run `ok`, the engine the zoo says (the
    keras engine with its reason said once). Where fused: the run trained in a pack of 8 (2
    settings x 4 seeds) follows `model.fit` (the keras engine) epoch by epoch within the entry's
    tolerance, so it equals the same run alone within twice that (a run alone and in a pack agree
    to float32 rounding: tests/test_fused_engine.py)."""
    entry, engine = zoo.ZOO[name], zoo.ZOO[name].engine(keras.backend.backend())
    d = _experiment(name, seeds=4 if engine == "fused" else 1, early_stopping={"enabled": False})
    code, _, err = cli("run", write_toml(tmp_path / f"{name}.toml", d), "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["status"]) == ["ok"] * (8 if engine == "fused" else 2), runs["error"].tolist()
    assert set(runs["engine"]) == {engine}, err
    assert "failed" not in err and "\x1b" not in err, err
    if engine == "keras":
        assert err.count("train with keras") == 1, err
        return
    plan = ExperimentSpec.from_dict(d).expand()
    target = next(r for r in plan if r.seed == 0 and any(r.params_for_csv()[k] == v[-1] for k, v in entry.grid.items()))
    data = load(target.data, root=target.root)
    reference = execute(target, data)
    assert reference.status == "ok", reference.summary.get("error")
    history = pd.read_csv(tmp_path / "out" / "history.csv")
    _same(history[history["run_id"] == target.run_id].to_dict("records"), reference.history, entry.tol, entry.epochs,
          {"train_accuracy": entry.flips / len(data.x_train), "val_accuracy": entry.flips / len(data.x_val)})


def _same(ours, reference, tol, epochs, flips=None):
    assert len(ours) == len(reference)
    for row_a, row_b in zip(ours[:epochs], reference[:epochs], strict=True):
        for col in COMPARED:
            within = max(tol, (flips or {}).get(col, 0.0) + 1e-7)
            assert row_a[col] == pytest.approx(row_b[col], rel=tol, abs=within), (col, row_a["epoch"])


@pytest.mark.backends
def test_the_penalty_is_every_regularizer_the_model_has():
    """Embeddings, recurrent, kernel and bias regularizers at the weights, and the activity
    regularizer's mean over the training samples (as Keras's `evaluate` adds them): computed here
    from a model trained by hand with `model.fit`, and recorded so by both engines."""
    d = {"name": "penalty", "seeds": [3], "data": {**zoo.TOKENS, "train_size": 96},
         "model": {"builder": "tests.zoo:every_regularizer", "l2": 1e-2}, "early_stopping": {"enabled": False},
         "training": {"epochs": 2, "batch_size": 32}}
    run = ExperimentSpec.from_dict(d).expand()[0]
    data = load(run.data, root=run.root)
    from mlreg.backend import seeded
    from mlreg.models import build_model, compile_model

    keras.backend.clear_session()
    with seeded(run.seed):
        model = build_model(run, data)
    compile_model(model, data.task, run.training)
    model.fit(data.x_train, data.y_train, epochs=2, batch_size=32, shuffle=True, verbose=0,
              validation_data=(data.x_val, data.y_val))
    regularized = [v for v in model.trainable_variables if v.regularizer is not None]
    assert {v.name for v in regularized} >= {"embeddings", "recurrent_kernel", "kernel", "bias"}
    weights = sum(1e-2 * float(np.sum(np.square(np.asarray(v.value)))) for v in regularized)
    active = model.get_layer("active")
    outputs = keras.Model(model.inputs, active.output).predict(data.x_train, verbose=0)
    activity = 1.0 * float(np.mean(np.sum(np.square(outputs), axis=1)))
    expected = weights + activity
    ours = next(fused.train_pack([run], data)).history[-1]["penalty"]
    theirs = execute(run, data).history[-1]["penalty"]
    assert ours == pytest.approx(expected, rel=1e-4) and theirs == pytest.approx(expected, rel=1e-4)
    assert activity > 10 * 1e-4 * expected  # leaving the activity term out would fail the line above
