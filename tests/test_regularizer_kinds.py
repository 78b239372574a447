"""Every regularizer kind is a per-run value (issue 24): weight decay, label smoothing, input and
hidden noise, max-norm, augmentation, batch norm and spatial dropout train in the fused engine as
`model.fit` trains them, alone or with pack-mates of other kinds; a field the engine does not
take per run splits packs. Runs again under the other backend in CI."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pydantic
import pytest

from mlreg import engines
from mlreg.data import load
from mlreg.engines import fused
from mlreg.engines.fused import packing
from mlreg.engines.keras import execute
from mlreg.errors import InputError
from mlreg.regularizers import kernel_regularizer
from mlreg.spec import ExperimentSpec, SpecError, TrainingSpec
from tests.conftest import tiny_spec_dict

pytestmark = pytest.mark.backends

COMPARED = ("loss", "penalty", "train_data_loss", "val_data_loss", "val_loss", "weight_l2", "accuracy",
            "train_accuracy", "val_accuracy")
IMAGES = {"shape": [8, 8, 1]}
CNN = {"builder": "cnn", "filters": [4, 6], "kernel_size": 3, "strides": 1}

CASES = {  # what each kind is tried with; (overrides, tolerance per epoch)
    "weight_decay": ({"training": {"weight_decay": 1e-2}}, 1e-5),
    "adamw's default": ({"training": {"optimizer": "adamw"}}, 1e-5),
    "weight_decay, sgd, biases": ({"training": {"optimizer": "sgd", "learning_rate": 0.05, "weight_decay": 1e-2,
                                                "decay_biases": True}}, 1e-5),
    "label_smoothing": ({"training": {"label_smoothing": 0.1}}, 1e-5),
    "label_smoothing, binary": ({"data": {"dataset": "breast_cancer"}, "training": {"label_smoothing": 0.2}}, 1e-5),
    "label_smoothing, multi_label": ({"data": {"dataset": "multilabel", "train_size": 1.0},
                                      "training": {"label_smoothing": 0.2}}, 1e-5),
    "noise": ({"model": {"noise": 0.3, "hidden_noise": 0.2}}, 1e-5),
    "max_norm": ({"model": {"max_norm": 0.5}}, 1e-5),
    "augment, images": ({"data": IMAGES, "model": {"augment": 0.5}}, 1e-5),
    "augment, sequences": ({"data": {"dataset": "mnist1d", "n_samples": 500, "shape": [40, 1]},
                            "model": {**CNN, "augment": 0.6}}, 1e-5),
    "batch_norm": ({"model": {"batch_norm": True}}, 1e-5),
    # BatchNormalization's moving variance after a convolution amplifies the order of sums (3e-5
    # measured), which can flip one validation sample's prediction (TensorFlow: 1 of 360)
    "cnn: batch_norm, spatial_dropout, max_norm, noise": ({"data": IMAGES, "model": {
        **CNN, "batch_norm": True, "spatial_dropout": 0.2, "max_norm": 1.0, "noise": 0.1}}, 1e-4),
}


def _runs(**overrides):
    d = tiny_spec_dict(seeds=[2], early_stopping={"enabled": False}, **overrides)
    d["training"] = {"epochs": 4, "batch_size": 32, **overrides.get("training", {})}
    runs = ExperimentSpec.from_dict(d).expand()
    return runs, load(runs[0].data, root=runs[0].root)


def _same(ours, reference, tol):
    """Per epoch within `tol`; an accuracy within `tol` or, past 1e-5, one sample in 100."""
    assert len(ours.history) == len(reference.history)
    for a, b in zip(ours.history, reference.history, strict=True):
        for col in (c for c in COMPARED if c in b):
            slack = 0.01 if "accuracy" in col and tol > 1e-5 else tol
            assert a[col] == pytest.approx(b[col], rel=tol, abs=slack), (col, a["epoch"])


@pytest.mark.parametrize("case", CASES)
def test_each_kind_alone_follows_model_fit(case):
    overrides, tol = CASES[case]
    runs, data = _runs(**overrides)
    ours, reference = next(fused.train_pack(runs, data)), execute(runs[0], data)
    assert ours.status == reference.status == "ok", ours.summary.get("error") or reference.summary.get("error")
    assert ours.summary["engine"] == "fused"
    _same(ours, reference, tol)


def test_every_kind_trains_in_one_program_and_pack_mates_change_nothing():
    runs, data = _runs(data=IMAGES, grid={"weight_decay": [0.0, 1e-2], "label_smoothing": [0.0, 0.1],
                                          "augment": [0.0, 0.4]}, model={"noise": 0.1, "max_norm": 2.0})
    runs += _runs(data=IMAGES, grid={"noise": [0.0], "max_norm": [0.0]})[0]
    assert len({packing.pack_key(r) for r in runs}) == 1  # every value above is a per-run value
    together = {r.run_id: r for r in fused.train_pack(runs, data)}
    assert len(together) == 9 and all(r.status == "ok" for r in together.values())
    for target in (runs[7], runs[8]):  # everything on; and nothing at all
        alone = next(fused.train_pack([target], data))
        _same(together[target.run_id], alone, 1e-5)
    losses = {round(together[r.run_id].history[-1]["loss"], 6) for r in runs}
    assert len(losses) == 9  # each run trained with its own values


def test_a_field_the_engine_does_not_take_per_run_splits_packs(monkeypatch):
    """`pack_key` is derived from every field of a run: a field added later splits packs (and
    trains right) until the engine declares it per-run; batch size, epochs and the builder's
    structure split them as they must."""

    class Later(TrainingSpec):
        new_field: float = 0.0

    runs, _ = _runs(grid={"l2": [0.0, 1e-3], "batch_norm": [False, True]})
    assert len({packing.pack_key(r) for r in runs}) == 2  # batch_norm is structure: two programs
    later = [dataclasses.replace(r, training=Later(**r.training.model_dump(), new_field=v))
             for r in runs for v in (0.0, 1.0)]
    assert len({packing.pack_key(r) for r in later}) == 4
    monkeypatch.setitem(packing.PER_RUN, "training", (*packing.PER_RUN["training"], "new_field"))
    assert len({packing.pack_key(r) for r in later}) == 2
    other = _runs(training={"batch_size": 16})[0] + _runs(training={"epochs": 3})[0]
    assert len({packing.pack_key(r) for r in other}) == 2


@pytest.mark.parametrize(("overrides", "message"), [
    ({"training": {"label_smoothing": 1.0}}, "label_smoothing"),
    ({"training": {"weight_decay": -1e-3}}, "weight_decay"),
    ({"model": {"noise": 1.5}}, "noise"),
    ({"model": {"augment": 2.0}}, "augment"),
    ({"model": {"spatial_dropout": 1.0}}, "spatial_dropout"),
    ({"model": {"max_norm": "3"}}, "max_norm"),
    ({"model": {"batch_norm": "yes"}}, "batch_norm"),
    ({"grid": {"weight_decy": [0.0, 1e-4]}}, "did you mean `weight_decay`"),
])
def test_each_kind_is_validated_like_the_others(overrides, message):
    with pytest.raises((SpecError, pydantic.ValidationError), match=message):
        ExperimentSpec.from_dict(tiny_spec_dict(**overrides))


def test_kinds_that_do_not_fit_the_data_are_refused_before_training(tmp_path):
    from mlreg.runner import prepare

    with pytest.raises(SpecError, match="label_smoothing.*regression task has no labels"):
        prepare(ExperimentSpec.from_dict(tiny_spec_dict(data={"dataset": "poly", "train_size": 1.0},
                                                        training={"label_smoothing": 0.1})))
    with pytest.raises(SpecError, match="augment.*takes images .* or sequences"):
        prepare(ExperimentSpec.from_dict(tiny_spec_dict(model={"augment": 0.3})))


def test_a_users_builder_takes_the_kinds_by_their_names():
    """A user's builder gets `noise`, `augment`, `max_norm`, ... by keyword; the training kinds
    (weight decay, label smoothing) apply to any model; `runs.csv` records what the builder takes."""
    runs, data = _runs(data=IMAGES, model={"builder": "tests.builders:every_kind"},
                       grid={"augment": [0.0, 0.5], "weight_decay": [0.0, 1e-2]})
    assert "augment" in runs[0].params_for_csv() or runs[0].takes is None
    from mlreg.check import check_builders

    runs = check_builders(runs)
    recorded = runs[0].params_for_csv()
    assert "augment" in recorded and "noise" not in recorded and "weight_decay" in recorded
    results = {r.run_id: r for r in engines.train(engines.Pack("fused", tuple(runs)), data)}
    assert all(r.status == "ok" and r.summary["engine"] == "fused" for r in results.values())
    _same(results[runs[3].run_id], execute(runs[3], data), 1e-5)


def test_smoothing_and_noise_stay_out_of_the_honest_columns():
    """The penalty is the explicit penalty only: weight decay is no loss term and smoothing no
    penalty, so a run with them, noise and augmentation but no regularizer records a penalty of
    exactly 0 in both engines (the data losses, unsmoothed and without noise, are the keras
    engine's compiled `data_loss`, which the fused engine follows: the tests above); and
    augmentation passes inputs through in inference."""
    runs, data = _runs(data=IMAGES, model={"noise": 0.2, "augment": 0.5},
                       training={"label_smoothing": 0.2, "weight_decay": 1e-2})
    for result in (next(fused.train_pack(runs, data)), execute(runs[0], data)):
        assert {row["penalty"] for row in result.history} == {0.0}
    inputs = keras.ops.convert_to_tensor(np.ones((2, 8, 8, 1), "float32"))
    from mlreg.layers import Augment

    assert np.array_equal(np.asarray(Augment(1.0)(inputs, training=False)), np.asarray(inputs))


@pytest.fixture
def orthogonal():
    """Keras's `OrthogonalRegularizer` as a kind, through its one entry (and taken back after)."""
    from mlreg.spec import Kind, add_kind, remove_kind

    kind = add_kind(Kind("orthogonal", "orthogonal", "model", float, pydantic.Field(0.0, ge=0),
                         builders=("mlp", "residual_mlp", "wide_deep", "cnn"),
                         penalty=lambda rate: keras.regularizers.OrthogonalRegularizer(rate)))
    yield kind
    remove_kind("orthogonal")


def test_a_kind_is_one_entry(orthogonal):
    from mlreg.engines.fused.packing import per_run
    from mlreg.spec import BUILDER_PARAMS, KINDS, MODEL_PARAMS, PARAMS, ModelSpec

    assert PARAMS["orthogonal"] == ("model", "orthogonal") and "orthogonal" in BUILDER_PARAMS["residual_mlp"]
    assert "orthogonal" in MODEL_PARAMS and "orthogonal" not in BUILDER_PARAMS["transfer"]
    assert ModelSpec(orthogonal=0.1).orthogonal == 0.1 and KINDS["orthogonal"].label == "orthogonal"
    assert "orthogonal" not in per_run()["model"]  # no per-run hook: a program per value
    with pytest.raises(SpecError, match="model.orthogonal"):
        ExperimentSpec.from_dict(tiny_spec_dict(model={"orthogonal": -1.0}))
    before = ExperimentSpec.from_dict(tiny_spec_dict())
    assert "orthogonal" not in before.to_toml()  # quiet at none: the ids of earlier results stay


def test_a_kind_added_through_one_entry_is_swept_fused(orthogonal):
    runs, data = _runs(grid={"orthogonal": [0.0, 0.1, 1.0]}, model={"l2": 1e-3})
    together = {r.run_id: r for r in fused.train_pack(runs, data)}
    assert all(r.status == "ok" and r.summary["engine"] == "fused" for r in together.values())
    assert [r.params_for_csv()["orthogonal"] for r in runs] == [0.0, 0.1, 1.0]
    losses = [together[r.run_id].history[-1]["loss"] for r in runs]
    assert losses[0] < losses[1] < losses[2]  # the penalty is on
    _same(together[runs[2].run_id], execute(runs[2], data), 1e-5)  # as `model.fit` trains it
    with pytest.raises(InputError, match="orthogonl"):
        kernel_regularizer(orthogonl=0.1)


def test_the_builders_keywords_are_the_entries():
    """Each built-in builder's signature names its structure and every kind whose entry names it
    (a kind applied to kernels may come in `**penalties`), and nothing else."""
    import inspect

    from mlreg import builders, models
    from mlreg.spec import BUILDER_PARAMS, KINDS, STRUCTURE

    functions = {"mlp": builders.build_mlp, "residual_mlp": builders.build_residual_mlp,
                 "wide_deep": builders.build_wide_deep, "cnn": builders.build_cnn, "transfer": models.transfer_model}
    for name, fn in functions.items():
        named = set(inspect.signature(fn).parameters) - {"input_shape", "n_outputs", "task", "base", "freeze_strategy",
                                                          "penalties"}
        assert named == {p for p in BUILDER_PARAMS[name] if p in STRUCTURE[name] or p in ("l1", "l2")
                         or KINDS[p].applies != "kernel"}, name
        assert "penalties" in inspect.signature(fn).parameters, name
