"""The notebook's front door (issue 34): `mlreg.sweep` and `mlreg.validation_curve` with a builder
defined where the call is (a local function, which plain pickle cannot send, as a notebook cell's)
and arrays in memory; workers and Dask; bad input refused before any training."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

import mlreg
from mlreg.spec import ExperimentSpec, InputError

X, Y = load_breast_cancer(return_X_y=True)
X, Y = X[:240].astype("float32"), Y[:240]
QUICK = {"epochs": 3, "batch_size": 32, "patience": 2, "progress": False}


def _builder(width=8):
    def build(input_shape, n_outputs, output_activation, l2=0.0, dropout=0.0):
        inputs = keras.Input(input_shape)
        h = keras.layers.Dense(width, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))(inputs)
        h = keras.layers.Dropout(dropout)(h)
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=output_activation)(h))

    return build


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "sweep"
    return out, mlreg.sweep(_builder(), X, Y, grid={"l2": [0.0, 1e-2]}, seeds=2, out=out, **QUICK)


@pytest.mark.backends  # the front door on each backend (workers and Dask on each: tests/test_executors.py)
def test_sweep_trains_a_local_builder_on_arrays_and_writes_a_results_directory(swept):
    out, res = swept
    assert isinstance(res, mlreg.Results) and res.root == out
    assert list(res.runs.status) == ["ok"] * 4 and res.params == ["l2"]
    assert res.runs.builder.str.fullmatch(r"build@[0-9a-f]{12}").all()
    assert res.runs.n_train.iloc[0] == 192 and res.runs.n_val.iloc[0] == 48  # val_size 0.2 of 240
    spec = (out / "spec.toml").read_text()
    assert 'memory = "arrays@' in spec and 'builder = "build@' in spec
    assert "<table" in res._repr_html_()


def test_sweep_again_resumes_and_refuses_other_arrays_or_another_builder(swept):
    out, res = swept
    again = mlreg.sweep(_builder(), X, Y, grid={"l2": [0.0, 1e-2]}, seeds=2, out=out, **QUICK)
    pd.testing.assert_frame_equal(again.runs, res.runs)  # nothing trained again
    changed = X.copy()
    changed[0, 0] += 1.0
    with pytest.raises(InputError, match="the data changed since its runs were recorded"):
        mlreg.sweep(_builder(), changed, Y, grid={"l2": [0.0, 1e-2]}, seeds=2, out=out, **QUICK)

    def build(input_shape, n_outputs, output_activation, l2=0.0):  # the same name, another source
        inputs = keras.Input(input_shape)
        head = keras.layers.Dense(n_outputs, output_activation, kernel_regularizer=keras.regularizers.L2(l2))
        return keras.Model(inputs, head(inputs))

    with pytest.raises(InputError, match="another experiment"):
        mlreg.sweep(build, X, Y, grid={"l2": [0.0, 1e-2]}, seeds=2, out=out, **QUICK)
    assert (out / "runs.csv").read_text().count("\n") == 5  # nothing written by the refused calls


CELL = """
import keras

def build(input_shape, n_outputs, output_activation, l2=0.0, dropout=0.0):
    inputs = keras.Input(input_shape)
    h = keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))(inputs)
    h = keras.layers.Dropout(dropout)(h)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=output_activation)(h))
"""


def test_workers_and_dask_train_a_notebook_cells_builder_to_the_same_numbers(swept, tmp_path):
    # a notebook runs its cells in `__main__`'s namespace: a function defined there cannot be imported
    # by a worker (plain pickle sends it by name), so it is sent by value
    cell = {"__name__": "__main__"}
    exec(CELL, cell)
    assert cell["build"].__module__ == "__main__"
    _, res = swept
    inline = res.runs.set_index(["l2", "seed"]).sort_index()  # the same model as the cell's, another source
    for how in ({"workers": 2}, {"dask": "local", "workers": 2}):
        other = mlreg.sweep(cell["build"], X, Y, grid={"l2": [0.0, 1e-2]}, seeds=2, out=tmp_path / str(len(how)),
                            **how, **QUICK)
        got = other.runs.set_index(["l2", "seed"]).sort_index()
        assert list(got.index) == list(inline.index) and set(got.status) == {"ok"}, how
        assert got.builder.str.startswith("build@").all() and (got.builder != inline.builder).all()
        np.testing.assert_allclose(got.best_val_data_loss, inline.best_val_data_loss, rtol=1e-5, err_msg=str(how))


def test_a_builder_that_cannot_be_sent_to_workers_is_refused_before_training(tmp_path):
    lock = threading.Lock()
    build = _builder()

    def locked(input_shape, n_outputs, output_activation, l2=0.0):
        with lock:
            return build(input_shape, n_outputs, output_activation, l2=l2)

    refused = r"`model.builder`: locked@[0-9a-f]{12} cannot be sent to worker processes \(TypeError: cannot pickle"
    with pytest.raises(InputError, match=refused):
        mlreg.sweep(locked, X, Y, grid={"l2": [0.0]}, out=tmp_path / "o", workers=2, **QUICK)
    assert not (tmp_path / "o" / "runs.csv").exists()


@pytest.mark.parametrize("args, message", [
    ((X, Y[:-1]), r"Invalid value for `y`: 239 targets for 240 samples"),
    ((np.where(np.arange(240)[:, None] == 3, np.nan, X), Y), r"`x`: it holds NaN or inf \(first at index \(3, 0\)\)"),
    ((pd.DataFrame({"a": X[:, 0], "kind": ["u"] * 240}), Y), r"`x`: column 'kind' is not numeric"),
    ((X, np.array(["a"] * 240)), r"`y`: expected numbers"),
    ((X, np.zeros(240)), r"the target has one class"),
    ((pd.DataFrame({"a": X[:, 0]}),), r"Invalid value for `y`: give the targets"),
])
def test_bad_arrays_are_refused_naming_the_argument_before_any_training(args, message, tmp_path):
    with pytest.raises(InputError, match=message):
        mlreg.sweep(_builder(), *args, out=tmp_path / "o", **QUICK)
    assert not (tmp_path / "o" / "runs.csv").exists()


def test_an_unknown_argument_and_a_bad_validation_set_are_refused(tmp_path):
    with pytest.raises(InputError, match="`epoch`: not a field of any section; did you mean `epochs`"):
        mlreg.sweep(_builder(), X, Y, epoch=3)
    with pytest.raises(InputError, match=r"`x_val`: its samples have shape \[4\], x's \[30\]"):
        mlreg.sweep(_builder(), X, Y, validation_data=(X[:10, :4], Y[:10]))
    with pytest.raises(InputError, match="`validation_data`: expected a pair"):
        mlreg.sweep(_builder(), X, Y, validation_data=X[:10])


def test_a_dataframe_with_a_target_column_and_a_validation_set_of_its_own():
    frame = pd.DataFrame(X[:, :5], columns=list("abcde")).assign(label=Y)
    res = mlreg.sweep("mlp", frame, target="label", validation_data=(X[200:, :5], Y[200:]), hidden=[8], seeds=1,
                      **QUICK)
    assert res.runs.n_train.iloc[0] == 240 and res.runs.n_val.iloc[0] == 40  # the given set, not val_size
    saved = res.save(res.keep.name + "-saved")
    assert saved.runs.equals(res.runs)


def test_validation_curve_in_scikit_learns_shape_and_its_plot():
    frame = mlreg.validation_curve(_builder(), X, Y, param_name="dropout", param_range=[0.0, 0.5], seeds=2, **QUICK)
    assert list(frame.columns[:4]) == ["dropout", "seed", "train_score", "validation_score"]
    assert len(frame) == 4 and set(frame.status) == {"ok"} and (frame.validation_score > 0).all()
    ax = mlreg.plots.validation_curve(frame)
    assert ax.get_xlabel().startswith("dropout")


def test_an_experiment_spec_takes_a_function_and_arrays():
    spec = ExperimentSpec.from_dict({"name": "s", "data": {"arrays": mlreg.ArrayData(X, Y)},
                                     "model": {"builder": _builder(16)}, "grid": {"l2": [0.0, 1e-3]}})
    again = ExperimentSpec.from_dict({"name": "s", "data": {"arrays": (X, Y)}, "model": {"builder": _builder(16)},
                                      "grid": {"l2": [0.0, 1e-3]}})
    assert [r.run_id for r in spec.expand()] == [r.run_id for r in again.expand()]  # same source and contents
    assert ExperimentSpec.from_dict(spec.to_dict()).to_toml() == spec.to_toml()  # labels round-trip as text
    first = spec.to_toml().splitlines()[0]
    assert first.startswith("# model.builder = 'build@") and "data.memory = 'arrays@" in first
    assert "pass them again" in first and not ExperimentSpec.from_dict({"name": "f"}).to_toml().startswith("#")


def test_folds_over_arrays_in_memory():
    res = mlreg.sweep("mlp", X, Y, folds=3, seeds=1, hidden=[8], **QUICK)
    assert sorted(res.runs.fold) == [0, 1, 2] and set(res.runs.n_val) == {80}


def test_a_builder_that_closes_over_itself_gets_a_label_that_follows_its_closure():
    # a recursive helper defined in a cell closes over itself: labelling it must end
    from mlreg.memory import builder_label

    def factory(width):
        def build(input_shape, n_outputs, output_activation, depth=1):
            return build(input_shape, n_outputs, output_activation, depth - 1) if depth > 1 else width
        return build

    assert builder_label(factory(8)) == builder_label(factory(8)) != builder_label(factory(16))
