"""The fused engine: the keras engine's numbers for any Keras model, whatever a run's pack-mates
(issue 16). Runs under both backends in CI (the `backends` marker)."""

from __future__ import annotations

import types

import keras
import numpy as np
import pytest

from mlreg import engines, signals
from mlreg.data import load
from mlreg.engines import fused
from mlreg.engines.fused.conv import conv_as_matmul, depthwise_as_product, tracing
from mlreg.engines.fused.introspect import build
from mlreg.engines.fused.order import Orders
from mlreg.engines.keras import execute
from mlreg.spec import ExperimentSpec
from tests.conftest import tiny_spec_dict

pytestmark = pytest.mark.backends

COMPARED = ("loss", "penalty", "train_data_loss", "val_data_loss", "val_loss", "weight_l1", "weight_l2", "accuracy",
            "val_accuracy", "train_accuracy", "mae", "val_mae")


def _runs(**overrides):
    runs = ExperimentSpec.from_dict(tiny_spec_dict(**overrides)).expand()
    return runs, load(runs[0].data, root=runs[0].root)


def _by_id(results):
    return {r.run_id: r for r in results}


def _assert_same_history(a, b, atol):
    assert len(a.history) == len(b.history)
    for ra, rb in zip(a.history, b.history, strict=True):
        for col in COMPARED:
            if col in rb:
                assert ra[col] == pytest.approx(rb[col], abs=atol, rel=atol), (col, ra["epoch"])
        assert ra["sparsity"] == pytest.approx(rb["sparsity"], abs=2e-3)


# -- early stopping rules, without training ----------------------------------------------------
@pytest.mark.parametrize(("patience", "min_delta", "mode"), [(0, 0.0, "min"), (2, 0.0, "min"), (3, 0.05, "min"),
                                                             (2, 0.0, "max"), (4, 0.02, "max")])
def test_stop_rule_follows_keras_early_stopping(patience, min_delta, mode):
    rng = np.random.default_rng(patience)
    for _ in range(20):
        values = [float(v) for v in np.round(rng.normal(0, 1, 30).cumsum() * 0.1, 2)]  # ties happen; floats, as in logs
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
def test_pack_sizes_repeat_so_that_programs_compile_once():
    assert fused.pack_sizes(240) == [64, 64, 64, 48] and fused.pack_sizes(72) == [64, 8]
    assert fused.pack_sizes(36) == [32, 4] and fused.pack_sizes(5) == [4, 1]
    assert [fused.stack_size(n) for n in (48, 60, 12, 7, 5, 33)] == [64, 64, 16, 8, 5, 33]
    for n in range(1, 300):
        assert sum(fused.pack_sizes(n)) == n and max(fused.pack_sizes(n)) <= fused.MAX_PACK


def test_packs_group_by_what_a_program_shares_and_split_evenly():
    runs, _ = _runs(seeds=10, grid={"l2": [0.0, 1e-3], "dropout": [0.0, 0.3], "batch_size": [16, 32]})
    packs = fused.pack(runs, max_pack=24)
    assert sorted(len(p) for p in packs) == [16, 16, 24, 24]  # an L2 x dropout sweep fuses: 40 runs per batch size
    for p in packs:
        assert len({r.training.batch_size for r in p}) == 1
    assert sorted(r.run_id for p in packs for r in p) == sorted(r.run_id for r in runs)


def test_auto_trains_what_it_cannot_fuse_with_keras_and_says_why():
    runs, _ = _runs(grid={"builder": ["mlp", "tests.builders:own_train_step"]})
    reasons = {runs[1].run_id: "a model with its own train_step"}
    packs, note = engines.plan(runs, "auto", reasons=reasons)
    assert [p.engine for p in packs] == ["fused", "keras"]
    assert "1 of 2 runs train with keras" in note and "its own train_step" in note
    with pytest.raises(ValueError, match="fused engine cannot train 1 of these runs"):
        engines.plan(runs, "fused", reasons=reasons)
    assert engines.plan(runs[:1], "auto")[1] is None
    assert fused.why_not_model(_model("tests.builders:own_train_step")) == "a model with its own train_step"
    assert fused.why_not_model(_model("mlp")) is None


def _model(builder):
    from mlreg.models import build_model

    runs, ds = _runs(model={"builder": builder})
    return build_model(runs[0], ds)


# -- the same numbers ------------------------------------------------------------------------------
def test_the_batch_order_is_the_one_model_fit_uses():
    """On TensorFlow one permutation per fit, repeated every epoch; on JAX a NumPy permutation
    per epoch after the one fit's symbolic build spends."""
    seen = []

    if keras.backend.backend() == "jax":
        import jax

        class Recorder(keras.Model):
            def train_step(self, state, data):
                jax.debug.callback(lambda a: seen.append(np.asarray(a).ravel().astype(int).tolist()), data[0])
                return super().train_step(state, data)
    else:
        import tensorflow as tf

        class Recorder(keras.Model):
            def train_step(self, data):
                tf.py_function(lambda a: seen.append(a.numpy().ravel().astype(int).tolist()) or 0, [data[0]], tf.int32)
                return super().train_step(data)

    runs, ds = _runs(seeds=[11], training={"epochs": 3, "batch_size": 5})
    b = build(runs[0], ds)[1]
    keras.backend.clear_session()
    keras.utils.set_random_seed(11)
    inputs = keras.Input((1,))
    model = Recorder(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    model.fit(np.arange(23, dtype="float32")[:, None], np.zeros((23, 1)), batch_size=5, epochs=3, verbose=0,
              validation_data=(np.zeros((4, 1)), np.zeros((4, 1))))
    if keras.backend.backend() == "jax":
        jax.effects_barrier()
    b.order_state = _state_after_seed(11)
    orders = Orders([b], runs, 23)
    flat = [i for batch in seen for i in batch]
    for epoch in range(3):
        assert flat[23 * epoch:23 * (epoch + 1)] == orders.next()[0].tolist(), epoch


def _state_after_seed(seed):
    keras.utils.set_random_seed(seed)
    return np.random.get_state()


ONE_RUN = {  # builder and settings of each kind of model the engine must train like model.fit (users' Conv1D
    # and Functional models with skips: tests/test_zoo.py)
    "mlp": {"model": {"hidden": [16, 8], "l2": 1e-3, "l1": 1e-4}},
    "residual_mlp": {"model": {"builder": "residual_mlp", "hidden": [16, 16, 8], "l2": [1e-3, 0.0, 1e-2, 1e-3]}},
    "wide_deep": {"model": {"builder": "wide_deep", "hidden": [16], "activation": "tanh"},
                  "training": {"optimizer": "rmsprop"}},
    "binary+sgd": {"data": {"dataset": "breast_cancer", "test_size": 0.2},
                   "training": {"optimizer": "sgd", "learning_rate": 0.05}},
    "multilabel+adamw": {"data": {"dataset": "multilabel", "train_size": 1.0}, "training": {"optimizer": "adamw"}},
    "regression": {"data": {"dataset": "poly", "train_size": 1.0}, "model": {"activation": "elu"}},
    "cnn": {"data": {"shape": [8, 8, 1]}, "model": {"builder": "cnn", "filters": [4, 6], "kernel_size": 3,
                                                     "strides": [1, 2], "pool": [2, 1], "l2": 1e-3}},
    "batch_norm": {"model": {"builder": "tests.builders:batch_norm", "hidden": [12], "l2": 1e-3}},
    "conv2d": {"data": {"shape": [8, 8, 1]}, "model": {"builder": "tests.builders:conv2d", "l2": 1e-3,
                                                        "dropout": 0.2}},
}


ON_TENSORFLOW = ("mlp", "multilabel+adamw", "cnn", "batch_norm", "conv2d")
"""The kinds trained again on the second backend in CI (the suite's time): dense and convolutional
layers, Dropout, BatchNormalization, a task and an optimizer other than the defaults."""


@pytest.mark.parametrize("kind", ONE_RUN)
def test_one_run_matches_the_keras_engine(kind):
    """K = 1: the same initial weights, batch order and dropout masks as model.fit, so only the
    order of floating-point sums differs; per-epoch values to 1e-5 over 20 epochs."""
    if keras.backend.backend() == "tensorflow" and kind not in ON_TENSORFLOW:
        pytest.skip("trained on JAX; on TensorFlow the kinds of ON_TENSORFLOW")
    overrides = {k: dict(v) for k, v in ONE_RUN[kind].items()}
    runs, ds = _runs(seeds=[4], training={"epochs": 20, **overrides.pop("training", {})},
                     early_stopping={"patience": 3}, **overrides)
    ours = next(fused.train_pack(runs, ds))
    reference = execute(runs[0], ds)
    assert ours.status == reference.status == "ok", ours.summary.get("error") or reference.summary.get("error")
    _assert_same_history(ours, reference, atol=1e-5)
    for col in ("best_epoch", "stopped_epoch", "epochs_run", "n_params"):
        assert ours.summary[col] == reference.summary[col], col
    for col in ("best_val_data_loss", "gap", "weight_l2", "val_accuracy_at_best", "val_mae_at_best",
                "test_data_loss", "test_accuracy"):
        if col in reference.summary:
            assert ours.summary[col] == pytest.approx(reference.summary[col], abs=1e-5), col
    assert [w["layer"] for w in ours.weights] == [w["layer"] for w in reference.weights]
    assert ours.summary["engine"] == "fused" and reference.summary["engine"] == "keras"
    assert ours.summary["backend"] == reference.summary["backend"] == keras.backend.backend()


def test_a_transfer_model_with_frozen_layers_matches_the_keras_engine(tmp_path):
    from mlreg.models import build_mlp

    build_mlp(64, 5, "single_label", hidden=(16, 8)).save(tmp_path / "base.keras")
    runs, ds = _runs(seeds=[1], model={"builder": "transfer", "base_model": str(tmp_path / "base.keras"),
                                       "freeze": "all_but_last", "l2": 1e-3}, training={"epochs": 20})
    ours = next(fused.train_pack(runs, ds))
    reference = execute(runs[0], ds)
    assert ours.status == reference.status == "ok", ours.summary.get("error")
    _assert_same_history(ours, reference, atol=1e-5)
    assert ours.weights == reference.weights or [w["layer"] for w in ours.weights] == [
        w["layer"] for w in reference.weights]
    assert list(dict.fromkeys(w["layer"] for w in ours.weights)) == ["hidden_1", "hidden_2", "new_output"]


def test_a_run_does_not_depend_on_its_pack_mates():
    runs, ds = _runs(seeds=[0, 1, 2], training={"epochs": 8}, early_stopping={"patience": 2},
                     grid={"l2": [0.0, 1e-2], "dropout": [0.0, 0.3], "learning_rate": [1e-3, 0.1]})
    mates = [r for r in runs if r.seed in (0, 1) or r.model.dropout == 0.0]  # 16 settings x seeds, one more below
    target = next(r for r in runs if r.seed == 2 and r.model.dropout == 0.3 and r.model.l2 == 1e-2)
    alone = next(fused.train_pack([target], ds))
    together = _by_id(fused.train_pack([*mates[:8], target, *mates[8:16]], ds))
    assert len(together) == 17 and alone.status == "ok"
    _assert_same_history(together[target.run_id], alone, atol=1e-5)
    assert together[target.run_id].weights == alone.weights
    assert min(r.summary["epochs_run"] for r in together.values()) < 8  # some left the pack early, undisturbing


def test_a_run_packed_otherwise_as_a_resume_packs_it_agrees_to_float32_rounding():
    """A resumed sweep packs its runs otherwise (those left, in fewer and smaller packs), and XLA
    sums a stack of another size in another order: a run's numbers cannot be bit-identical to the
    uninterrupted sweep's. Measured here: 1.5e-7 relative per epoch over the first 5 epochs, 2e-7
    on the best loss after 60 epochs, the same best epochs (the demo's 150 epochs: up to 2.1e-4 on
    the best loss, as the rounding grows). Stated tolerance: 1e-5, and the same best epoch."""
    runs, ds = _runs(seeds=2, model={"hidden": [32, 32]}, data={"dataset": "digits", "train_size": 300},
                     training={"epochs": 30}, early_stopping={"patience": 8}, grid={"l2": [0.0, 1e-3, 1e-2, 0.1]})
    together = _by_id(fused.train_pack(runs, ds))
    resumed = {}
    for i in range(0, len(runs), 3):
        resumed |= _by_id(fused.train_pack(runs[i:i + 3], ds))
    for run_id, run in together.items():
        again = resumed[run_id]
        assert again.summary["best_epoch"] == run.summary["best_epoch"]
        assert again.summary["best_val_data_loss"] == pytest.approx(run.summary["best_val_data_loss"], rel=1e-5)
        _assert_same_history(run, again, atol=1e-5)


def test_a_paused_run_goes_on_in_another_pack_as_if_it_never_stopped():
    import pickle

    runs, ds = _runs(seeds=[0, 1], training={"epochs": 9}, early_stopping={"patience": 3},
                     grid={"l2": [0.0, 1e-2], "dropout": [0.0, 0.3]})
    whole = _by_id(fused.train_pack(runs, ds))
    first = _by_id(fused.train_pack(runs, ds, until=4))
    paused = {i: pickle.loads(pickle.dumps(r.state)) for i, r in first.items() if r.status == "paused"}
    assert len(paused) >= 6 and all(len(first[i].history) == 4 for i in paused)
    for i, r in first.items():  # a run that ended before the rung ended as it does in the whole run
        if i not in paused:
            _assert_same_history(r, whole[i], atol=0)
    rest = list(reversed([r for r in runs if r.run_id in paused]))  # other pack-mates, other positions
    went_on = _by_id(fused.train_pack(rest[::2], ds, resume=paused)) | _by_id(fused.train_pack(rest[1::2], ds,
                                                                                              resume=paused))
    for i in paused:
        _assert_same_history(went_on[i], whole[i], atol=1e-6)
        assert went_on[i].summary["best_epoch"] == whole[i].summary["best_epoch"]
        assert went_on[i].summary["weight_l2"] == pytest.approx(whole[i].summary["weight_l2"], rel=1e-5)


def test_a_diverging_run_leaves_its_pack_mates_alone():
    runs, ds = _runs(data={"dataset": "poly", "train_size": 1.0}, training={"optimizer": "sgd", "epochs": 4},
                     grid={"learning_rate": [0.05, 1e9, 0.1]})  # a crossentropy's clipping keeps JAX's finite
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

    monkeypatch.setattr(fused.train, "build", broken)
    results = list(fused.train_pack(runs, ds))
    assert [r.status for r in results] == ["failed", "failed"]
    assert "RuntimeError: no memory left" in results[0].summary["error"]
    assert "Traceback" in results[0].traceback


def test_convolutions_as_matrix_products_are_keras_convolutions():
    rng = np.random.default_rng(0)
    for nd in (1, 2, 3):
        for padding, strides, dilation in (("valid", 1, 1), ("same", 1, 1), ("same", 2, 1), ("valid", 3, 1),
                                           ("same", 1, 2), ("valid", 1, 2)):
            x = rng.normal(size=(2,) + (9,) * nd + (3,)).astype("float32")
            k = rng.normal(size=(3,) * (nd - 1) + (4, 3, 5)).astype("float32")
            reference = keras.ops.conv(x, k, strides=strides, padding=padding, dilation_rate=dilation)
            ours = conv_as_matmul(x, k, strides, padding, dilation)
            np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), rtol=1e-5, atol=1e-4)


def test_depthwise_and_separable_convolutions_traced_as_products_are_keras_convolutions():
    """Keras's depthwise and separable ops, called inside `tracing` (as a pack's program calls
    them), give Keras's own results outside it."""
    rng = np.random.default_rng(1)
    for nd in (1, 2):
        for padding, strides, dilation in (("valid", 1, 1), ("same", 1, 1), ("same", 2, 1), ("same", 1, 2)):
            x = rng.normal(size=(2,) + (9,) * nd + (3,)).astype("float32")
            k = rng.normal(size=(3,) * nd + (3, 2)).astype("float32")
            p = rng.normal(size=(1,) * nd + (6, 4)).astype("float32")
            depthwise = keras.ops.depthwise_conv(x, k, strides=strides, padding=padding, dilation_rate=dilation)
            separable = keras.ops.separable_conv(x, k, p, strides=strides, padding=padding, dilation_rate=dilation)
            with tracing():
                traced = (keras.ops.depthwise_conv(x, k, strides=strides, padding=padding, dilation_rate=dilation),
                          keras.ops.separable_conv(x, k, p, strides=strides, padding=padding, dilation_rate=dilation))
            np.testing.assert_allclose(np.asarray(depthwise_as_product(x, k, strides, padding, dilation)),
                                       np.asarray(depthwise), rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(np.asarray(traced[0]), np.asarray(depthwise), rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(np.asarray(traced[1]), np.asarray(separable), rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_engines_agree_over_seeds_with_dropout():
    """Each setting's mean best validation loss over 5 seeds from the fused and the keras engine
    agree within 2 standard errors; with the same dropout masks, run by run too (to 1e-4: the run
    by run check is the strong one, so 5 seeds serve where 10 did)."""
    runs, ds = _runs(seeds=5, data={"dataset": "digits", "train_size": 200}, model={"hidden": [32], "dropout": 0.3},
                     training={"epochs": 10, "learning_rate": 3e-3}, early_stopping={"patience": 5},
                     grid={"l2": [1e-2]})
    ours = _by_id(fused.train_pack(runs, ds))
    reference = {r.run_id: execute(r, ds) for r in runs}
    for l2 in (1e-2,):
        ids = [r.run_id for r in runs if r.model.l2 == l2]
        a = np.array([ours[i].summary["best_val_data_loss"] for i in ids])
        b = np.array([reference[i].summary["best_val_data_loss"] for i in ids])
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        assert abs(a.mean() - b.mean()) < 2 * se, (l2, a.mean(), b.mean(), se)
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_stop_request_is_honoured_between_epochs():
    """Ctrl-C and SIGTERM set `signals.STOP`; the fused engine stops at the next epoch's start,
    after yielding the runs that ended before."""
    runs, ds = _runs(seeds=[0], training={"epochs": 50, "learning_rate": 0.1},
                     grid={"early_stopping": [True, False]}, early_stopping={"patience": 0})
    pack = fused.train_pack(runs, ds)
    first = next(pack)
    assert first.run_id == runs[0].run_id and first.summary["epochs_run"] < 50
    signals.STOP.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            next(pack)
    finally:
        signals.STOP.clear()


# -- no sweep is lost to an engine ---------------------------------------------------------------------
def test_a_run_the_fused_engine_fails_on_is_trained_by_the_keras_engine(monkeypatch):
    from mlreg.engines.fused import stack

    runs, ds = _runs(seeds=2, grid={"l2": [0.0, 1e-3]})
    monkeypatch.setattr(stack.Orders, "next", None)  # a bug inside the engine: calling None
    results = list(engines.train(engines.Pack("fused", tuple(runs)), ds))
    assert [r.status for r in results] == ["ok"] * 4 and {r.summary["engine"] for r in results} == {"keras"}
    notes = [r.note for r in results if r.note]
    assert len(notes) == 1 and "the fused engine failed on 4 runs" in notes[0], notes
    assert "TypeError: 'NoneType' object is not callable (in mlreg's engine, fused/stack.py:" in notes[0], notes
    assert "the keras engine trains them" in notes[0]
    alone = execute(runs[0], ds)
    _assert_same_history(next(r for r in results if r.run_id == runs[0].run_id), alone, atol=0)


def test_validate_and_run_say_which_models_go_to_the_keras_engine_before_training(tmp_path, cli):
    """A model the fused engine cannot trace (JAX: a host callback under vmap; TensorFlow: LSTM's
    loop, which `tf.vectorized_map` cannot convert) is found by `validate`, and `run` trains it
    with the keras engine, saying why once; every run ends `ok`."""
    from tests.conftest import write_toml

    builder = "tests.builders:host_callback" if keras.backend.backend() == "jax" else "tests.zoo:bidirectional_lstm"
    data = {"dataset": "digits", "train_size": 96} if keras.backend.backend() == "jax" else {
        "dataset": "digits", "train_size": 96, "shape": [8, 8]}
    path = write_toml(tmp_path / "e.toml", tiny_spec_dict(seeds=1, model={"builder": builder}, data=data,
                                                         training={"epochs": 2}, grid={"l2": [0.0, 1e-3]}))
    code, out, _ = cli("validate", path)
    assert code == 0
    assert "engine auto: 2 of 2 runs train with keras (the fused engine cannot trace it:" in out, out
    code, _, err = cli("run", path, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert err.count("train with keras") == 1, err
    import pandas as pd

    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["status"]) == ["ok"] * 2 and set(runs["engine"]) == {"keras"}


def test_probe_names_the_variables_a_model_assigns_in_inference_that_the_engine_cannot_follow():
    # issue 39: a float statistic updated in evaluation, or a count the outputs read, goes to the
    # keras engine; a count nothing reads in inference and RNN seed states are followed
    from mlreg.engines.fused.introspect import assigned_in_inference
    from tests import zoo

    class ReadCount(zoo.CallCounter):
        def call(self, x, training=False):
            self.calls.assign_add(1)
            return x * (1.0 + 1.0 / (1.0 + keras.ops.cast(self.calls, x.dtype)))

    def model(*middle):
        inputs = keras.Input((4,))
        x = inputs
        for layer in middle:
            x = layer(x)
        return keras.Model(inputs, keras.layers.Dense(2)(x))

    x = np.ones((2, 4), "float32")
    assert assigned_in_inference(model(zoo.RunningMean(name="rm"), zoo.CallCounter(name="cc")), x) == []
    assert assigned_in_inference(model(zoo.RunningMeanAlways(name="always")), x) == ["always/mean"]
    assert assigned_in_inference(model(ReadCount(name="read")), x) == ["read/calls"]
    recurrent = model(keras.layers.Reshape((2, 2)), keras.layers.GRU(3, recurrent_dropout=0.2))
    assert assigned_in_inference(recurrent, x) == []
