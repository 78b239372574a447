"""The names a user can write, one registry each, and the kinds of regularization, one entry each.

The modules that implement a registry key their tables by these names (tests/test_registries.py
checks that each table covers exactly its names); nothing else spells them. A kind of
regularization is one `Kind` in `KINDS`: the experiment file's field, the builders' keywords, the
labels of tables and plots and the fused engine's per-run values all come from its entry
(`mlreg.spec.add_kind` adds one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

BUILDERS = ("mlp", "residual_mlp", "wide_deep", "cnn", "transfer")
"""Built-in model builders (`mlreg.models`); a user's own is `"package.module:function"`."""
FREEZE = ("none", "all_but_last", "most")
"""Freeze strategies (`mlreg.models.freeze`); an int is a count of trainable layers."""
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
"""Keras optimizers by name, with Keras's defaults (`mlreg.models.make_optimizer`)."""
ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid", "selu", "gelu", "linear")
"""Hidden-layer activations: Keras's own names."""
ENGINES = ("auto", "fused", "keras")
"""How runs train (`mlreg.engines`)."""
BACKENDS = ("jax", "tensorflow")
"""Keras 3 backends mlreg trains on (`mlreg.engines.backend`)."""
TASKS = ("auto", "single_label", "binary", "multi_label", "regression")
"""What the target is; decides the head, loss and metrics (`mlreg.models`)."""
GENERATED = ("mnist1d", "moons", "classification", "multilabel", "poly")
"""The data sets made by a generator: each `draws` value is an independent sample of them."""
DATASETS = ("digits", "breast_cancer", "diabetes", "wine", "iris", "mnist1d", "moons", "classification",
            "multilabel", "poly")
"""Built-in data sets (`mlreg.datasets.DATASETS`)."""
PLOTS = ("loss_curves", "validation_curve", "gap", "weights", "sparsity", "weight_l2", "stopping", "kinds",
         "extrapolation")
"""What `mlreg plot --kind` draws (`mlreg.analysis.plots.PLOTS`)."""
ADJUSTMENTS = ("none", "holm")
"""Adjustments of the baseline comparisons' p-values (`mlreg.analysis.compare`)."""
STRATEGIES = ("grid", "halving", "curve", "extrapolate")
"""How a search spends its budget (`[search] strategy`; one or a list, e.g. `["halving", "curve"]`)."""
ADAMW_DECAY = 0.004
"""Keras's `AdamW` default weight decay: what `optimizer = "adamw"` decays by unless told."""


def _check_rate(value: float | tuple[float, ...]) -> float | tuple[float, ...]:
    for r in value if isinstance(value, tuple) else (value,):
        if not (math.isfinite(r) and r >= 0):
            raise ValueError(f"expected a rate >= 0, or a list of rates (one per layer); got {r}")
    return value


Rate = Annotated[float | tuple[float, ...], AfterValidator(_check_rate)]
"""A rate for every layer, or a list of them (one per hidden layer or block, then the output)."""

_DENSE = ("mlp", "residual_mlp", "wide_deep")
_ALL = (*_DENSE, "cnn", "transfer")


@dataclass(frozen=True)
class Kind:
    """A kind of regularization: everything mlreg needs to know about it, in one entry.

    Attributes:
        name: the parameter, as the experiment file, grids, `runs.csv` and `--by` write it.
        label: how tables and plots name it ("L2", "input noise").
        section: the experiment file's section that holds it: `"model"` (the builder applies it)
            or `"training"` (the training does).
        value: the type of its value (for pydantic), and `field` its default and bounds.
        none: the value that means none of it (what `mlreg compare --kinds` ranks against).
        builders: the built-in builders that take it (as a keyword of the same name).
        applies: how: `"kernel"` (a penalty on every kernel: the builders add `penalty(rate)`, a
            Keras regularizer, to each, one rate per layer allowed), `"layer"` (a layer of the
            builder's), `"constraint"`, `"optimizer"` or `"loss"`.
        penalty: for `"kernel"`: the Keras regularizer of one rate.
        per_run: the fused engine's hook that takes its value per run, so that runs differing in
            it share a program: `"regularizer"` (L1/L2 factors read from the variables),
            `"layer"` (per-run layers), `"constraint"`, `"optimizer"`, `"loss"`; `None`: one
            program per value.
        quiet: added after results were first recorded: at its default it stays out of
            `spec.toml` and of run ids, so that results written before it existed resume.
    """

    name: str
    label: str
    section: Literal["model", "training"]
    value: Any
    field: Any
    none: Any = 0.0
    builders: tuple[str, ...] = ()
    applies: Literal["kernel", "layer", "constraint", "optimizer", "loss"] = "kernel"
    penalty: Callable[[float], Any] | None = None
    per_run: str | None = None
    quiet: bool = True


def _keras_regularizer(name: str) -> Callable[[float], Any]:
    def make(rate: float) -> Any:
        import keras

        return getattr(keras.regularizers, name)(rate)

    return make


def _unit(lt: bool) -> Any:
    return Field(0.0, ge=0, lt=1) if lt else Field(0.0, ge=0, le=1)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("dropout", "dropout", "model", float, _unit(True), builders=(*_DENSE, "cnn"), applies="layer",
         per_run="layer", quiet=False),
    Kind("l1", "L1", "model", Rate, Field(0.0), builders=_ALL, penalty=_keras_regularizer("L1"),
         per_run="regularizer", quiet=False),
    Kind("l2", "L2", "model", Rate, Field(0.0), builders=_ALL, penalty=_keras_regularizer("L2"),
         per_run="regularizer", quiet=False),
    Kind("noise", "input noise", "model", float, _unit(False), builders=(*_DENSE, "cnn"), applies="layer",
         per_run="layer"),
    Kind("hidden_noise", "hidden noise", "model", float, _unit(False), builders=(*_DENSE, "cnn"), applies="layer",
         per_run="layer"),
    Kind("max_norm", "max-norm", "model", float, Field(0.0, ge=0, allow_inf_nan=False), builders=(*_DENSE, "cnn"),
         applies="constraint", per_run="constraint"),
    Kind("augment", "augmentation", "model", float, _unit(False), builders=(*_DENSE, "cnn"), applies="layer",
         per_run="layer"),
    Kind("batch_norm", "batch norm", "model", bool, Field(False), none=False, builders=("mlp", "cnn"),
         applies="layer"),
    Kind("spatial_dropout", "spatial dropout", "model", float, _unit(True), builders=("cnn",), applies="layer",
         per_run="layer"),
    Kind("weight_decay", "weight decay", "training", float | None, Field(None, ge=0, allow_inf_nan=False),
         applies="optimizer", per_run="optimizer"),
    Kind("label_smoothing", "label smoothing", "training", float, _unit(True), applies="loss", per_run="loss"),
)}
"""The kinds of regularization by parameter (`mlreg compare --kinds` ranks them, the `kinds` plot
draws them); `mlreg.spec.add_kind` adds one."""

STRUCTURE: dict[str, tuple[str, ...]] = {
    "mlp": ("hidden", "activation"),
    "residual_mlp": ("hidden", "activation"),
    "wide_deep": ("hidden", "activation"),
    "cnn": ("filters", "kernel_size", "strides", "pool", "activation"),
    "transfer": (),
}
"""The parameters of each built-in builder that are not kinds of regularization (its shape)."""

BUILDER_PARAMS: dict[str, tuple[str, ...]] = {}
"""The model parameters each built-in builder takes (keyed by `BUILDERS`): its `STRUCTURE` and the
kinds that name it; `builder` and `freeze` (applied by mlreg to any model) always count.
`runs.csv` records only these; a user's builder takes those its signature names."""

MODEL_PARAMS: list[str] = []
"""The parameters that only the builder uses: a run records those its builder takes."""

PARAMS: dict[str, tuple[str, str]] = {}
"""Sweepable parameter -> (section, field): the one name used in grids, variants, runs.csv
columns, `--by` options and plot labels (the kinds of regularization among them)."""

_OTHER_PARAMS = {
    "data": ("train_size", "shift"),
    "model": ("builder", "hidden", "filters", "kernel_size", "strides", "pool", "activation", "freeze"),
    "training": ("epochs", "batch_size", "learning_rate", "optimizer", "decay_biases"),
    "early_stopping": ("early_stopping", "patience", "min_delta"),
}


def derive() -> None:
    """Fills `PARAMS`, `BUILDER_PARAMS` and `MODEL_PARAMS` (in place) from `KINDS` and the other
    parameters: done at import and again by `add_kind`."""
    PARAMS.clear()
    for section, names in _OTHER_PARAMS.items():
        PARAMS.update({n: (section, "enabled" if n == "early_stopping" else n) for n in names})
        PARAMS.update({k.name: (section, k.name) for k in KINDS.values() if k.section == section})
    BUILDER_PARAMS.clear()
    BUILDER_PARAMS.update({b: (*STRUCTURE[b], *(k.name for k in KINDS.values() if b in k.builders))
                           for b in BUILDERS})
    MODEL_PARAMS[:] = [*_OTHER_PARAMS["model"][1:-1], *(k.name for k in KINDS.values() if k.section == "model")]


derive()
