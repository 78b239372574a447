"""Your own Keras script: the HonestLogger callback, the Recorder, Keras CSVLogger files and
TensorBoard (issue 12)."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

import mlreg
from mlreg.cli import main
from mlreg.data import load
from mlreg.spec import DataSpec


@pytest.fixture(scope="module")
def data():
    return load(DataSpec(dataset="digits", train_size=300))


def _model(l2: float, seed: int = 0) -> keras.Model:
    """What a user writes: a plain compiled model, no mlreg inside."""
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu", kernel_regularizer=reg),
                              keras.layers.Dropout(0.2), keras.layers.Dense(10, activation="softmax",
                                                                            kernel_regularizer=reg)])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_honest_logger_in_any_fit_feeds_history_and_early_stopping(data):
    model = _model(1e-2)
    logger = mlreg.HonestLogger(data.x_train, data.y_train)
    stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", mode="min", patience=2,
                                         restore_best_weights=True)
    history = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=6, verbose=0,
                        callbacks=[logger, stop]).history
    for col in ("penalty", "train_data_loss", "val_data_loss", "train_accuracy", "weight_l2", "sparsity"):
        assert len(history[col]) == len(history["loss"]), col
    # the honest validation loss is the crossentropy alone, as a plain evaluation of it says
    ce = keras.losses.SparseCategoricalCrossentropy()(data.y_val, model.predict(data.x_val, verbose=0))
    last = logger.rows[-1] if stop.stopped_epoch == 0 else logger.rows[stop.best_epoch]
    assert float(ce) == pytest.approx(last["val_data_loss"], abs=1e-4)
    assert history["val_loss"][-1] == pytest.approx(history["val_data_loss"][-1] + history["penalty"][-1], abs=1e-5)
    assert history["penalty"][-1] == pytest.approx(1e-2 * history["weight_l2"][-1], rel=1e-4)
    assert history["train_data_loss"][-1] < history["loss"][-1]  # no penalty, no dropout


def test_a_script_records_its_runs_and_resumes(data, tmp_path):
    out = tmp_path / "mine"

    def sweep() -> list[str]:
        trained = []
        with mlreg.Recorder(out, params=["l2"], task="single_label", test=True) as rec:
            for l2 in (0.0, 1e-2):
                for seed in (0, 1):
                    if rec.done(seed=seed, l2=l2):
                        continue
                    model, logger = _model(l2, seed), mlreg.HonestLogger(data.x_train, data.y_train)
                    stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", mode="min", patience=3,
                                                         restore_best_weights=True)
                    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=8,
                              verbose=0, callbacks=[logger, stop])
                    rec.record(model, logger, seed=seed, l2=l2, stopper=stop, test=(data.x_val, data.y_val))
                    trained.append(f"{l2}/{seed}")
        return trained

    assert len(sweep()) == 4 and sweep() == []  # the second time, everything is there
    res = mlreg.load_results(out)
    assert len(res.runs) == 4 and set(res.runs.engine) == {"script"} and res.params == ["l2"]
    assert res.runs.test_accuracy.between(0.3, 1).all() and res.runs.best_val_data_loss.notna().all()
    assert len(mlreg.compare(res, baseline="l2=0")) == 2
    assert main(["plot", str(out)]) == 0 and main(["report", str(out)]) == 0
    best = res.runs.iloc[0]
    row = res.history[(res.history.run_id == best.run_id) & (res.history.epoch == best.best_epoch)].iloc[0]
    assert best.best_val_data_loss == pytest.approx(row.val_data_loss)
    with pytest.raises(ValueError, match="missing \\['l2'\\]"):
        mlreg.Recorder(out, params=["l2"], task="single_label", test=True).done(seed=0)


def test_keras_csv_logs_come_in_without_invented_columns(data, tmp_path, capsys):
    for l2 in (0.0, 0.01):
        for seed in (0, 1):
            model = _model(l2, seed)
            model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=3, verbose=0,
                      callbacks=[keras.callbacks.CSVLogger(str(tmp_path / f"run_l2={l2}_seed={seed}.csv"))])
    files = sorted(str(p) for p in tmp_path.glob("run_*.csv"))
    out = tmp_path / "imported"
    assert main(["import", *files, "--out", str(out), "--pattern", "run_l2={l2}_seed={seed}.csv"]) == 0
    said = capsys.readouterr().out
    assert "imported 4 runs" in said and "lack penalty, train_data_loss, val_data_loss" in said
    res = mlreg.load_results(out)
    assert sorted(res.runs.l2.unique()) == [0.0, 0.01] and sorted(res.runs.seed.unique()) == [0, 1]
    assert res.runs.best_val_data_loss.isna().all() and res.runs.val_accuracy_at_best.notna().all()
    assert res.history.val_data_loss.isna().all() and res.history.penalty.isna().all()
    keras_log = pd.read_csv(tmp_path / "run_l2=0.0_seed=0.csv")
    first = res.runs[(res.runs.l2 == 0.0) & (res.runs.seed == 0)].iloc[0]
    mine = res.history[res.history.run_id == first.run_id].sort_values("epoch")
    np.testing.assert_allclose(mine.val_loss, keras_log.val_loss)
    assert list(mine.epoch) == [1, 2, 3]
    assert main(["import", *files, "--out", str(out), "--pattern", "run_l2={l2}_seed={seed}.csv"]) == 0
    assert "imported 0 runs" in capsys.readouterr().out
    assert main(["compare", str(out), "--metric", "val_accuracy_at_best"]) == 0


def test_export_to_tensorboard_reads_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.conftest import make_results

    root = make_results(tmp_path / "l2", {0.0: [0.5, 0.6], 0.01: [0.4, 0.45]})
    assert main(["export", "tensorboard", str(root), "--logdir", str(tmp_path / "tb")]) == 0
    runs = sorted(p for p in (tmp_path / "tb").iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["l2=0,seed=0", "l2=0,seed=1", "l2=0.01,seed=0", "l2=0.01,seed=1"]  # 17.17
    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    assert {"val_data_loss", "train_data_loss", "best_val_data_loss"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("val_data_loss")] == [1, 2, 3, 4]
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert set(start.hparams) == {"l2", "seed"} and start.hparams["l2"].number_value in (0.0, 0.01)
    top = EventAccumulator(str(tmp_path / "tb"))
    top.Reload()
    assert "_hparams_/experiment" in top.Tags()["tensors"]


def test_results_show_as_a_table_in_a_notebook(tmp_path):
    from tests.conftest import make_results

    html = mlreg.load_results(make_results(tmp_path / "l2", {0.0: [0.5, 0.6], 0.01: [0.4, 0.45]}))._repr_html_()
    assert "<table" in html and "4 runs (4 ok)" in html and "swept: l2" in html
    assert "best_val_data_loss over seeds" in html  # the metric is named (17.17)


def test_export_imports_neither_tensorflow_nor_jax(tmp_path):
    """Issue 17.17: `mlreg export tensorboard` printed TensorFlow's start-up lines."""
    import subprocess
    import sys

    from tests.conftest import ROOT, make_results

    root = make_results(tmp_path / "l2", {0.0: [0.5]})
    code = ("import sys\nfrom mlreg.cli import main\n"
            f"assert main(['export', 'tensorboard', {str(root)!r}, '--logdir', {str(tmp_path / 'tb')!r}]) == 0\n"
            "print(sorted(m for m in ('tensorflow', 'jax', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]" and out.stderr == ""


def test_export_without_tensorboard_says_how_to_install_it(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT, make_results

    root = make_results(tmp_path / "l2", {0.0: [0.5]})
    code = ("import sys; sys.modules['tensorboard'] = None\nfrom mlreg.cli import main\n"
            f"raise SystemExit(main(['export', 'tensorboard', {str(root)!r}, '--logdir', {str(tmp_path / 'tb')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "pip install 'mlreg[tensorboard]'" in out.stderr
