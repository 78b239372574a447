"""The experiment file: TOML validated into typed objects and expanded into runs.

An experiment file has a few sections with the defaults (`[data]`, `[model]`,
`[training]`, `[early_stopping]`), a `[grid]` whose keys are swept as a
cartesian product, and optional `[[variants]]`: named settings that are
combined with the grid. Every parameter has one short name everywhere
(`l2`, `dropout`, `learning_rate`, ...), see `PARAMS`.

Example:
    >>> spec = ExperimentSpec.from_dict({"name": "demo", "seeds": 2,
    ...                                  "grid": {"l2": [0.0, 1e-3]}})
    >>> len(spec.expand())
    4
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from mlreg import memory
from mlreg.errors import InputError, SpecError

# InputError and SpecError live in mlreg.errors; `from mlreg.spec import InputError` keeps working

# -- the names a user can write, one registry per kind -------------------------------------
# The modules that implement a kind key their tables by these names (tests/test_registries.py
# checks that each table covers exactly its names); nothing else spells them.
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
"""Built-in data sets (`mlreg.data.DESCRIPTIONS`)."""
PLOT_KINDS = ("loss_curves", "validation_curve", "gap", "weights", "sparsity", "weight_l2", "stopping", "kinds")
"""What `mlreg plot --kind` draws (`mlreg.analysis.plots`)."""
ADJUSTMENTS = ("none", "holm")
"""Adjustments of the baseline comparisons' p-values (`mlreg.analysis.compare`)."""

# Sweepable parameter -> (section, field). The one name used in grids, variants,
# runs.csv columns, `--by` options and plot labels.
PARAMS: dict[str, tuple[str, str]] = {
    "train_size": ("data", "train_size"),
    "shift": ("data", "shift"),
    "builder": ("model", "builder"),
    "hidden": ("model", "hidden"),
    "filters": ("model", "filters"),
    "kernel_size": ("model", "kernel_size"),
    "strides": ("model", "strides"),
    "pool": ("model", "pool"),
    "activation": ("model", "activation"),
    "dropout": ("model", "dropout"),
    "l1": ("model", "l1"),
    "l2": ("model", "l2"),
    "noise": ("model", "noise"),
    "hidden_noise": ("model", "hidden_noise"),
    "max_norm": ("model", "max_norm"),
    "augment": ("model", "augment"),
    "batch_norm": ("model", "batch_norm"),
    "spatial_dropout": ("model", "spatial_dropout"),
    "freeze": ("model", "freeze"),
    "epochs": ("training", "epochs"),
    "batch_size": ("training", "batch_size"),
    "learning_rate": ("training", "learning_rate"),
    "optimizer": ("training", "optimizer"),
    "weight_decay": ("training", "weight_decay"),
    "decay_biases": ("training", "decay_biases"),
    "label_smoothing": ("training", "label_smoothing"),
    "early_stopping": ("early_stopping", "enabled"),
    "patience": ("early_stopping", "patience"),
    "min_delta": ("early_stopping", "min_delta"),
}


_DENSE = ("hidden", "activation", "dropout", "l1", "l2", "noise", "hidden_noise", "max_norm", "augment")
BUILDER_PARAMS = {
    "mlp": (*_DENSE, "batch_norm"),
    "residual_mlp": _DENSE,
    "wide_deep": _DENSE,
    "cnn": ("filters", "kernel_size", "strides", "pool", "activation", "dropout", "l1", "l2", "noise", "hidden_noise",
            "max_norm", "augment", "batch_norm", "spatial_dropout"),
    "transfer": ("l1", "l2"),
}
"""The model parameters each built-in builder takes (keyed by `BUILDERS`); `builder` and
`freeze` (applied by mlreg to any model) always count. `runs.csv` records only these; a user's
builder takes those its signature names."""

MODEL_PARAMS = ("hidden", "filters", "kernel_size", "strides", "pool", "activation", "dropout", "l1", "l2", "noise",
                "hidden_noise", "max_norm", "augment", "batch_norm", "spatial_dropout")
"""The parameters that only the builder uses: a run records those its builder takes."""

KINDS: dict[str, tuple[str, Any]] = {
    "l1": ("L1", 0.0),
    "l2": ("L2", 0.0),
    "weight_decay": ("weight decay", 0.0),
    "dropout": ("dropout", 0.0),
    "spatial_dropout": ("spatial dropout", 0.0),
    "noise": ("input noise", 0.0),
    "hidden_noise": ("hidden noise", 0.0),
    "label_smoothing": ("label smoothing", 0.0),
    "max_norm": ("max-norm", 0.0),
    "augment": ("augmentation", 0.0),
    "batch_norm": ("batch norm", False),
}
"""The kinds of regularization, by parameter: a label and the value that means none of it
(`mlreg compare --kinds` ranks them; the `kinds` plot draws them)."""


class _Section(BaseModel):
    """Strict: a string is never taken for a number or a boolean (`"1e-3"`, `"no"`); TOML's
    lists are taken for tuples."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _lists_are_tuples(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return data


Rate = float | tuple[float, ...]


def _check_rate(value: Rate, name: str) -> Rate:
    rates = value if isinstance(value, tuple) else (value,)
    for r in rates:
        if not (math.isfinite(r) and r >= 0):
            raise ValueError(f"expected a rate >= 0, or a list of rates (one per layer); got {r}")
    return value


class DataSpec(_Section):
    """Where the data comes from and how it is split.

    Args:
        dataset: a bundled or synthetic data set (`mlreg datasets` lists them).
            Defaults to `"digits"` when no `path` is given.
        path: a CSV / NPZ / Parquet file of the user's, instead of `dataset`.
        target: the target column (a list of columns for multi-label data); an NPZ file
            with arrays `x` and `y` needs none.
        task: `auto`, `single_label`, `binary`, `multi_label` or `regression`.
        val_size: fraction of the data held out for validation. Defaults to `0.2`.
        test_size: fraction held out as a test set. Defaults to `0.0`.
        train_size: a fraction in (0, 1] or a count (int >= 2) of the remaining
            training pool. Defaults to `1.0`.
        seed: seed of the split, the same for every run. Defaults to `0`.
        scale: standardise the features with training-set statistics: `true` per feature
            position (each pixel, each time step and channel), `"global"` with one mean and
            standard deviation over all values (what image data usually wants), `false` not
            at all (e.g. to fine-tune a pretrained model on the preprocessing it was trained
            with). Defaults to `True`.
        shape: the shape of one sample, e.g. `[8, 8, 1]`: the features of any source (a CSV's
            pixel columns, a built-in data set, an NPZ array) are reshaped to it, so that
            `digits` can be 8x8x1 images and `mnist1d` `[40, 1]` sequences. Its product must
            be the feature count. Defaults to `None` (as stored).
        n_samples: size of a generated data set (`mnist1d`, the synthetic ones). Defaults
            to the set's own.
        noise: noise level of a synthetic data set. Defaults to the set's own.
        folds: k-fold cross-validation: each run of a setting and seed is repeated for each
            of `folds` stratified folds of the pool left after the test set, the fold being
            its validation set (`val_size` is then not used). Defaults to `None` (one split).
        repeats: repeated random splits: the train/validation split is drawn `repeats`
            times (split seeds `seed`, `seed + 1`, ...); with `folds`, repeated k-fold.
            Defaults to `None`.
        draws: independent draws of a generated data set (`mnist1d`, `moons`,
            `classification`, `multilabel`, `poly`): draw r is a fresh sample of the same size
            from the same distribution (the generator's seed moved by r), split as usual, so
            runs of a setting span `draws` data sets that share no sample. Defaults to `None`
            (the one sample of `seed`).
        shift: how far the validation and test data are from the training data: Gaussian
            noise of this many training-set standard deviations added to each of their
            features (the same draw for every `shift`, so settings stay paired). Sweepable.
            Defaults to `0.0` (no shift).
        test_path: a CSV or Parquet file holding the test set of `path`'s data (an NPZ file
            or `mnist1d` carries its own). Defaults to `None`.
        memory: data in memory (`mlreg.sweep`'s arrays), as the label `arrays@<hash of the
            arrays>`: pass `arrays=mlreg.ArrayData(x, y, ...)` (or `(x, y)`) and the label is set
            (see `mlreg.memory`). Defaults to `None`.
    """

    dataset: str | None = None
    path: str | None = None
    target: str | tuple[str, ...] | None = None
    task: Literal[TASKS] = "auto"  # type: ignore[valid-type]
    shape: tuple[int, ...] | None = None
    val_size: float = Field(0.2, gt=0, lt=1)
    test_size: float = Field(0.0, ge=0, lt=1)
    train_size: int | float = 1.0
    seed: int = 0
    scale: bool | Literal["global"] = True
    n_samples: int | None = Field(None, ge=10)
    noise: float | None = Field(None, ge=0)
    folds: int | None = Field(None, ge=2)
    repeats: int | None = Field(None, ge=1)
    draws: int | None = Field(None, ge=1)
    shift: float = Field(0.0, ge=0, allow_inf_nan=False)
    test_path: str | None = None
    memory: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _arrays(cls, data: Any) -> Any:
        if isinstance(data, dict) and "arrays" in data:
            data = dict(data)
            arrays = data.pop("arrays")
            if isinstance(arrays, tuple | list) and len(arrays) == 2:
                arrays = memory.ArrayData(*arrays)
            if not isinstance(arrays, memory.ArrayData):
                raise ValueError(f"expected `mlreg.ArrayData(x, y)` or a pair (x, y) for `arrays`; "
                                 f"got {type(arrays).__name__}")
            data["memory"] = memory.register_arrays(arrays)
        return data

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and not memory.ARRAYS_LABEL.fullmatch(v):
            raise ValueError("expected a label 'arrays@<16 hex digits>' (set by passing `arrays`)")
        return v

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str | None) -> str | None:
        if v is not None and v not in DATASETS:
            raise ValueError(f"unknown data set {v!r}; expected one of {list(DATASETS)}")
        return v

    @field_validator("shape")
    @classmethod
    def _shape(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and (not v or any(d < 1 for d in v)):
            raise ValueError("expected a list of dimensions >= 1, e.g. [8, 8, 1]")
        return v

    @field_validator("train_size")
    @classmethod
    def _train_size(cls, v: int | float) -> int | float:
        if isinstance(v, bool):
            raise ValueError("expected a fraction in (0, 1] or a count >= 2")
        if isinstance(v, int) and v < 2:
            raise ValueError(
                f"expected a fraction in (0, 1] or a count >= 2 (write 1.0 for all of it); got {v}"
            )
        if isinstance(v, float) and not 0 < v <= 1:
            raise ValueError(f"expected a fraction in (0, 1] or a count >= 2; got {v}")
        return v

    @model_validator(mode="after")
    def _source(self) -> DataSpec:
        if sum(map(bool, (self.dataset, self.path, self.memory))) > 1:
            raise ValueError("give one of `data.dataset`, `data.path` or arrays in memory, not two")
        if self.path and not self.target and not self.path.lower().endswith(".npz"):
            raise ValueError("`data.target` is required with a CSV or Parquet `data.path` (the target column)")
        if self.test_path and not self.path:
            raise ValueError("`data.test_path` goes with `data.path` (the test set of your own data)")
        if self.test_path and self.test_size:
            raise ValueError("give either `data.test_path` or `data.test_size`, not both")
        if self.val_size + self.test_size >= 1:
            raise ValueError("`data.val_size` + `data.test_size` must be below 1")
        if not self.dataset and not self.path and not self.memory:
            object.__setattr__(self, "dataset", "digits")
        if self.draws and self.dataset not in GENERATED:
            source = f"data set {self.dataset!r} is one fixed sample" if self.dataset else "a file is one fixed sample"
            raise ValueError(f"Invalid value for `data.draws`: {source}, with no generator to draw independent samples "
                             f"from (draws work with {list(GENERATED)}; use `repeats` or `folds` to resample it). "
                             f"Received: draws={self.draws}")
        if self.draws and (self.repeats or self.folds):
            raise ValueError(f"Invalid value for `data.draws`: each draw is already a data set of its own; give "
                             f"`draws` without `repeats` or `folds`. Received: draws={self.draws}")
        return self


class ModelSpec(_Section):
    """The model.

    Args:
        builder: `mlp`, `residual_mlp`, `wide_deep`, `transfer` (a pretrained
            `base_model` with a new head), or a user's own builder as
            `"package.module:function"` that takes the run's hyperparameters and
            returns a `keras.Model`, or that function itself (kept as `name@<hash of its
            source>`, see `mlreg.memory`). Defaults to `"mlp"`.
        base_model: a `.keras` file for `builder = "transfer"` (loaded in safe mode);
            other builders ignore it.
        freeze: which layers train: `none`, `all_but_last`, `most` (all but the last
            two), or a count of trainable layers from the top. Defaults to `"none"`.
        hidden: sizes of the hidden layers. Defaults to `(64, 64)`.
        activation: activation of the hidden layers. Defaults to `"relu"`.
        dropout: Dropout rate after each hidden layer, in [0, 1). Defaults to `0.0`.
        l1: L1 kernel-regularizer rate, for all layers or a list (one per hidden
            layer, then the output layer). Defaults to `0.0`.
        l2: L2 rate, likewise. Both > 0 gives L1L2. Defaults to `0.0`.
        filters: for `cnn`, the filters of each convolution block (one block per entry).
            Defaults to `(25, 25, 25)`, the MNIST-1D paper's CNN.
        kernel_size: for `cnn`, the kernel size of every block or one per block. Defaults
            to `(5, 3, 3)`.
        strides: for `cnn`, the stride of every block or one per block. Defaults to `2`.
        pool: for `cnn`, the size of a max-pooling after every block (or one per block);
            1 is none. Defaults to `1`.
        noise: the standard deviation of Gaussian noise on the inputs, in training (a
            `GaussianNoise` layer; Keras takes [0, 1]). Defaults to `0.0`.
        hidden_noise: likewise after each hidden layer (convolution block). Defaults to `0.0`.
        max_norm: a `MaxNorm` constraint on every kernel (each unit's incoming weights
            rescaled to this L2 norm at most after each step); 0 is none. Defaults to `0.0`.
        augment: data augmentation of images or sequences in training, a strength in [0, 1]
            (`mlreg.layers.Augment`). Defaults to `0.0`.
        batch_norm: for `mlp` and `cnn`, BatchNormalization before each hidden activation.
            Defaults to `False`.
        spatial_dropout: for `cnn`, the rate of a SpatialDropout1D/2D after each block (whole
            feature maps dropped). Defaults to `0.0`.
    """

    builder: str = "mlp"
    hidden: tuple[int, ...] = (64, 64)
    filters: tuple[int, ...] = (25, 25, 25)
    kernel_size: int | tuple[int, ...] = (5, 3, 3)
    strides: int | tuple[int, ...] = 2
    pool: int | tuple[int, ...] = 1
    activation: Literal[ACTIVATIONS] = "relu"  # type: ignore[valid-type]
    dropout: float = Field(0.0, ge=0, lt=1)
    l1: Rate = 0.0
    l2: Rate = 0.0
    noise: float = Field(0.0, ge=0, le=1)
    hidden_noise: float = Field(0.0, ge=0, le=1)
    max_norm: float = Field(0.0, ge=0, allow_inf_nan=False)
    augment: float = Field(0.0, ge=0, le=1)
    batch_norm: bool = False
    spatial_dropout: float = Field(0.0, ge=0, lt=1)
    base_model: str | None = None
    freeze: Literal[FREEZE] | int = "none"  # type: ignore[valid-type]

    @field_validator("freeze")
    @classmethod
    def _freeze(cls, v: str | int) -> str | int:
        if isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise ValueError(f"expected one of {list(FREEZE)} or a count of trainable layers >= 1; got {v}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _function(cls, data: Any) -> Any:
        if isinstance(data, dict) and callable(data.get("builder")):
            data = dict(data) | {"builder": memory.register_builder(data["builder"])}
        return data

    @field_validator("builder")
    @classmethod
    def _builder(cls, v: str) -> str:
        if v not in BUILDERS and not re.fullmatch(r"[\w.]+:\w+", v) and not memory.BUILDER_LABEL.fullmatch(v):
            raise ValueError(f"expected one of {list(BUILDERS)}, 'package.module:function' or a function")
        return v

    @field_validator("hidden", "filters")
    @classmethod
    def _hidden(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(h < 1 for h in v):
            raise ValueError("expected a non-empty list of layer sizes >= 1")
        return v

    @field_validator("kernel_size", "strides", "pool")
    @classmethod
    def _per_block(cls, v: int | tuple[int, ...]) -> int | tuple[int, ...]:
        if any(k < 1 for k in (v if isinstance(v, tuple) else (v,))):
            raise ValueError("expected a size >= 1, or a list of them (one per convolution block)")
        return v

    @field_validator("l1", "l2")
    @classmethod
    def _rates(cls, v: Rate, info: Any) -> Rate:
        return _check_rate(v, info.field_name)

    @model_validator(mode="after")
    def _per_layer(self) -> ModelSpec:
        if self.builder == "transfer" and self.base_model is None:
            raise ValueError('`model.builder = "transfer"` needs `model.base_model` (a .keras file)')
        if self.builder == "transfer" and (isinstance(self.l1, tuple) or isinstance(self.l2, tuple)):
            raise ValueError("per-layer rates do not apply to `transfer`; give one rate (for the new head)")
        layers, what = self.layers
        for name in ("l1", "l2"):
            v = getattr(self, name)
            if isinstance(v, tuple) and layers is not None and len(v) != layers + 1:
                raise ValueError(
                    f"`model.{name}` as a list needs one rate per {what} plus one for "
                    f"the output ({layers + 1}); got {len(v)}"
                )
        if self.builder == "cnn":
            for name in ("kernel_size", "strides", "pool"):
                v = getattr(self, name)
                if isinstance(v, tuple) and len(v) != len(self.filters):
                    raise ValueError(f"`model.{name}` as a list needs one value per convolution block "
                                     f"({len(self.filters)}, as `model.filters`); got {len(v)}")
        return self

    @property
    def layers(self) -> tuple[int | None, str]:
        """How many layers before the output a per-layer rate list covers, and what they are:
        the hidden layers of the dense builders, the blocks of `cnn`; `None` for a user's
        builder (its own business) and `transfer` (one rate)."""
        if self.builder == "cnn":
            return len(self.filters), "convolution block"
        if self.builder in BUILDERS and self.builder != "transfer":
            return len(self.hidden), "hidden layer"
        return None, ""


class TrainingSpec(_Section):
    """How each run trains.

    Args:
        epochs: maximum number of epochs. Defaults to `100`.
        batch_size: Defaults to `32`.
        learning_rate: Defaults to `1e-3`.
        optimizer: `adam`, `adamw`, `sgd` or `rmsprop`. Defaults to `"adam"`.
        weight_decay: decoupled weight decay (Keras's `weight_decay`: each step, before the
            gradient's, `w -= learning_rate * weight_decay * w`), on kernels, embeddings and
            recurrent kernels (the variables of two or more dimensions). Defaults to `None`: the
            optimizer's own, 0.004 for `adamw` (Keras's AdamW), none for the others.
        decay_biases: decay every trainable variable, biases and normalization parameters too.
            Defaults to `False`.
        label_smoothing: the training loss's targets moved towards uniform by this much (a
            class's 1 becomes `1 - label_smoothing + label_smoothing / classes`; a binary target
            `y (1 - label_smoothing) + label_smoothing / 2`). The data losses mlreg records stay
            unsmoothed. Defaults to `0.0`.
        engine: how runs are trained: `auto` (the fused engine wherever it can, `keras`
            for the rest), `fused` or `keras`. Not part of what a run means: it stays out of
            run ids and `spec.toml`, and `runs.csv` records the engine of each run.
            Defaults to `"auto"`.
    """

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    weight_decay: float | None = Field(None, ge=0, allow_inf_nan=False)
    decay_biases: bool = False
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    engine: Literal[ENGINES] = "auto"  # type: ignore[valid-type]

    def resolved(self) -> TrainingSpec:
        """This section with `weight_decay` as a run trains with it: the optimizer's default where
        the file gives none (Keras's AdamW: 0.004; the others: none)."""
        if self.weight_decay is not None:
            return self
        return self.model_copy(update={"weight_decay": ADAMW_DECAY if self.optimizer == "adamw" else 0.0})


class EarlyStoppingSpec(_Section):
    """Early stopping on the honest validation loss.

    Args:
        enabled: stop when the monitored value stops improving. Defaults to `True`.
        patience: epochs without improvement before stopping. Defaults to `10`.
        min_delta: smallest change that counts as an improvement. Defaults to `0.0`.
        monitor: the history column to watch. Defaults to `"val_data_loss"`.
        restore_best_weights: keep the weights of the best epoch. Defaults to `True`.
    """

    enabled: bool = True
    patience: int = Field(10, ge=0)
    min_delta: float = Field(0.0, ge=0)
    monitor: str = "val_data_loss"
    restore_best_weights: bool = True


ADAMW_DECAY = 0.004
"""Keras's `AdamW` default weight decay: what `optimizer = "adamw"` decays by unless told."""

STRATEGIES = ("grid", "halving", "curve")
"""How a search spends its budget (`[search] strategy`; one or a list, e.g. `["halving", "curve"]`)."""


class SearchSpec(_Section):
    """How the runs are chosen (see `mlreg.search`). The default trains the full grid.

    Args:
        strategy: `grid` (every setting, every seed, to the end), `halving` (successive
            halving: at each rung, the settings worse than the rung's best beyond their paired
            interval, outside the best `1/factor`, and still worse with their curves projected to
            the end, stop there as `pruned`), `curve` (the grid of a rate is a coarse start: new
            rates are placed where the best may be until it is pinned to a factor `precision`),
            or a list of them (`["halving", "curve"]`: the coarse grid pruned at rungs).
            Defaults to `"grid"`.
        factor: the rungs' ratio: the epochs grow and the settings shrink by it. Defaults to `3`.
        first_rung: the first rung, in epochs. Defaults to `None`: `ceil(epochs / 7)`, the
            earliest rung that kept the full grid's answer in each recorded experiment of
            mlreg's second edition (benchmarks/bench_search.py tells how that was measured).
        margin: settings whose paired interval against the best lies within `±margin` (in the
            monitored column's units) are tied with it: no more seeds for them, and no more rates
            between them for `curve`. Defaults to `0.0`: ties only when `seeds.max` is reached.
        zoom: rounds of zooming in: the best value of a parameter swept on a log grid gets
            its geometric midpoints with its neighbours, on the best setting's seeds.
            Defaults to `0`.
        precision: for `curve`, the factor the best rate is pinned to: the search ends when the
            rates tested next to the best are within this factor of it. Defaults to `2.0`.
        param: for `curve`, the rate it searches. Defaults to `None`: the one parameter the grid
            sweeps on a log scale (three or more positive values, each at least twice the last).
    """

    strategy: Literal[STRATEGIES] | tuple[Literal[STRATEGIES], ...] = "grid"  # type: ignore[valid-type]
    factor: int = Field(3, ge=2)
    first_rung: int | None = Field(None, ge=1)
    margin: float = Field(0.0, ge=0)
    zoom: int = Field(0, ge=0)
    precision: float = Field(2.0, gt=1, allow_inf_nan=False)
    param: str | None = None

    @property
    def strategies(self) -> tuple[str, ...]:
        """The strategies besides the plain grid, in the file's order."""
        named = (self.strategy,) if isinstance(self.strategy, str) else self.strategy
        return tuple(s for s in dict.fromkeys(named) if s != "grid")


def log_swept(grid: dict[str, tuple[Any, ...]]) -> list[str]:
    """The grid's numeric parameters swept on a log scale: three or more positive values (zero
    beside them is allowed), each at least twice the one before."""
    out = []
    for param, values in grid.items():
        numbers = sorted(v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and v > 0)
        if len(numbers) >= 3 and all(b >= 2 * a for a, b in zip(numbers, numbers[1:], strict=False)):
            out.append(param)
    return out


class AdaptiveSeeds(_Section):
    """`seeds = {start = 3, max = 30}`: a search begins with `start` seeds and adds more (doubling)
    to the settings whose decision is still open, up to `max`."""

    start: int = Field(ge=2)
    max: int

    @model_validator(mode="after")
    def _order(self) -> AdaptiveSeeds:
        if self.max <= self.start:
            raise ValueError(f"Invalid value for `max`: expected more than seeds.start ({self.start}). "
                             f"Received: max={self.max}")
        return self


_SECTIONS: dict[str, type[_Section]] = {
    "data": DataSpec,
    "model": ModelSpec,
    "training": TrainingSpec,
    "early_stopping": EarlyStoppingSpec,
}

# Fields added after results were first recorded. At their default they are left out of
# spec.toml and of run ids, so that results written before they existed still resume.
_QUIET_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"memory": None, "scale": True, "folds": None, "repeats": None, "draws": None, "shift": 0.0,
             "test_path": None, "shape": None},
    "model": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "pool": 1, "noise": 0.0,
              "hidden_noise": 0.0, "max_norm": 0.0, "augment": 0.0, "batch_norm": False, "spatial_dropout": 0.0},
    "training": {"weight_decay": 0.0, "decay_biases": False, "label_smoothing": 0.0},
    "search": {"precision": 2.0},
}

# Fields that say how runs are executed, not what they are: never in spec.toml or run ids.
_EXECUTION: dict[str, set[str]] = {"training": {"engine"}}


def _dump_section(name: str, section: dict[str, Any]) -> dict[str, Any]:
    quiet, execution = _QUIET_DEFAULTS.get(name, {}), _EXECUTION.get(name, set())
    if section.get("builder") == "cnn":  # its own fields are always written out
        quiet = {k: v for k, v in quiet.items() if k not in ("filters", "kernel_size", "strides", "pool")}
    return {k: v for k, v in section.items() if k not in execution and not (k in quiet and v == quiet[k])}


class ExperimentSpec(_Section):
    """A whole experiment: defaults, what to sweep, and over how many seeds.

    Attributes:
        name: the experiment's name; results go to `results/<name>/` by default.
        description: free text, kept with the results.
        seeds: a count (seeds 0..n-1), an explicit list, or `{start, max}`: as many as a
            search needs (see `AdaptiveSeeds`). Defaults to `3`.
        max_failures: failed runs in a row that stop the sweep. Defaults to `3`.
        grid: parameter -> list of values, swept as a cartesian product.
        variants: named settings (`{"name": "L2", "l2": 1e-3}`), each combined
            with the grid.
        search: how the runs are chosen (`SearchSpec`): the full grid by default.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: int | tuple[int, ...] | AdaptiveSeeds = 3
    max_failures: int = Field(3, ge=1)
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()
    grid: dict[str, tuple[Any, ...]] = {}
    variants: tuple[dict[str, Any], ...] = ()
    search: SearchSpec = SearchSpec()
    _root: str | None = PrivateAttr(default=None)  # the experiment file's folder (load_spec sets it)
    _source: str = PrivateAttr(default="experiment")  # what errors are prefixed with: the file (load_spec sets it)

    @field_validator("seeds", mode="before")
    @classmethod
    def _adaptive(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        if set(v) != {"start", "max"}:
            raise ValueError(f"Invalid value for `seeds`: expected a table of `start` and `max`, e.g. "
                             f"seeds = {{start = 3, max = 30}}. Received: seeds={v!r}")
        try:
            return AdaptiveSeeds.model_validate(v)
        except ValidationError as e:  # said of its own fields, not of every kind `seeds` takes
            raise ValueError(_format(e).replace("for `", "for `seeds.").replace("key `", "key `seeds.")) from None

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | tuple[int, ...] | AdaptiveSeeds) -> int | tuple[int, ...] | AdaptiveSeeds:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"expected a count >= 1 or a list of seeds; got {v}")
        if isinstance(v, tuple) and (not v or len(set(v)) != len(v)):
            raise ValueError("expected a non-empty list of distinct seeds")
        return v

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_lists(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        for key, values in v.items():
            if not isinstance(values, list | tuple):
                raise ValueError(f"Invalid value for `grid.{key}`: grid values are lists: "
                                 f"`{key} = [{json.dumps(values)}]`. Received: {key}={values!r}")
        return {k: tuple(values) for k, values in v.items()}

    @model_validator(mode="after")
    def _sweeps(self) -> ExperimentSpec:
        grid = {}
        for key, values in self.grid.items():
            _check_param(key, "grid")
            if not values:
                raise ValueError(f"Invalid value for `grid.{key}`: expected a non-empty list")
            grid[key] = tuple(self._resolve(key, v, f"grid.{key}[{i}]") for i, v in enumerate(values))
            if len(set(map(_key, grid[key]))) != len(grid[key]):
                raise ValueError(f"Invalid value for `grid.{key}`: values repeat: {list(values)}")
        object.__setattr__(self, "grid", grid)
        names = set()
        variants = []
        for i, variant in enumerate(self.variants):
            name = variant.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"Invalid value for `variants[{i}].name`: expected a non-empty string. Received: name={name!r}"
                )
            if name in names:
                raise ValueError(f"Invalid value for `variants[{i}].name`: repeats {name!r}")
            names.add(name)
            resolved = {"name": name}
            for key, v in variant.items():
                if key == "name":
                    continue
                _check_param(key, f"variants[{i}]")
                if key in self.grid:
                    raise ValueError(f"`{key}` is both in [grid] and in variant {name!r}; keep it in one")
                resolved[key] = self._resolve(key, v, f"variants[{i}].{key}")
            variants.append(resolved)
        object.__setattr__(self, "variants", tuple(variants))
        if "curve" in self.search.strategies:
            self.curve_param  # noqa: B018 - refused here, with the file, when there is none
        return self

    @property
    def curve_param(self) -> str:
        """The rate a `curve` search places new values of: `[search] param`, else the one
        parameter the grid sweeps on a log scale (`log_swept`)."""
        swept = log_swept(self.grid)
        wanted = self.search.param
        if wanted is not None and wanted not in swept:
            raise ValueError(f"Invalid value for `search.param`: a curve search needs a rate the grid sweeps on a log "
                             f"scale (three or more positive values, each at least twice the last); the grid has "
                             f"{swept or 'none'}. Received: param={wanted!r}")
        if wanted is None and len(swept) != 1:
            raise ValueError(f"Invalid value for `search.strategy`: a curve search needs one rate swept on a log scale "
                             f"(three or more positive values, each at least twice the last); the grid has "
                             f"{swept or 'none'}: {'name one with `search.param`' if swept else 'add one'}. "
                             f"Received: strategy='curve'")
        return wanted or swept[0]

    def _resolve(self, key: str, value: Any, where: str) -> Any:
        section, field = PARAMS[key]
        base = getattr(self, section).model_dump()
        try:
            checked = _SECTIONS[section].model_validate({**base, field: value})
        except ValidationError as e:
            raise ValueError(_format(e, prefix=where, value=value)) from None
        return getattr(checked, field)

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "experiment") -> ExperimentSpec:
        """Validates a plain dict (as read from TOML); raises `SpecError` naming the field."""
        try:
            spec = cls.model_validate(d)
        except ValidationError as e:
            raise SpecError(f"{source}: {_format(e)}") from None
        spec._source = source
        return spec

    @property
    def source(self) -> str:
        """Where the experiment comes from (its file, for `load_spec`): error messages begin with it."""
        return self._source

    def named(self, error: InputError) -> InputError:
        """`error` with the experiment's source in front, as every error about the file reads."""
        text = str(error)
        return error if text.startswith(f"{self._source}:") else type(error)(f"{self._source}: {text}")

    def with_overrides(self, **fields: Any) -> ExperimentSpec:
        """Returns a copy with defaults changed, e.g. `with_overrides(epochs=2)`."""
        d = self.to_dict()
        for key, value in fields.items():
            _check_param(key, "override")
            section, field = PARAMS[key]
            d.setdefault(section, {})[field] = value
            d["grid"].pop(key, None)
            for v in d["variants"]:
                v.pop(key, None)
        spec = ExperimentSpec.from_dict(d, source=self._source).at(self._root)
        return spec

    @property
    def root(self) -> str | None:
        """The folder relative paths are resolved against (the experiment file's), or `None`."""
        return self._root

    def at(self, root: str | os.PathLike[str] | None) -> ExperimentSpec:
        """This experiment with relative paths (`data.path`, `data.test_path`,
        `model.base_model`) resolved against `root` (`load_spec` gives the file's folder)."""
        self._root = None if root is None else str(root)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain data (no `None`), ready for TOML."""
        d = self.model_dump(mode="json")
        for name in _SECTIONS:
            d[name] = _dump_section(name, d[name])
        if self.search == SearchSpec():  # the grid: spec.toml as before searches existed
            d.pop("search")
        else:
            d["search"] = _dump_section("search", d["search"])
        return _drop_none(d)  # TOML has no null

    def to_toml(self) -> str:
        """The experiment as TOML. A builder function or arrays passed in memory are written as
        their labels, with a first comment naming those fields: the file records them, and
        runs again only where they are passed again (`mlreg.sweep`, `mlreg.memory`)."""
        text = dumps_toml(self.to_dict())
        held = [f"model.builder = {self.model.builder!r}"] if memory.BUILDER_LABEL.fullmatch(self.model.builder) else []
        held += [f"data.memory = {self.data.memory!r}"] if self.data.memory else []
        if not held:
            return text
        return (f"# {' and '.join(held)} name Python objects passed in memory (a function, arrays): recorded "
                f"here, not held; to run this file, pass them again (mlreg.sweep)\n{text}")

    # -- planning -----------------------------------------------------------------
    @property
    def seed_list(self) -> list[int]:
        """Every seed the plan may use (with `{start, max}`: `max` of them)."""
        if isinstance(self.seeds, AdaptiveSeeds):
            return list(range(self.seeds.max))
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def searches(self) -> bool:
        """Whether a search chooses the runs (halving, seeds added as needed, zoom), not the grid."""
        return bool(self.search.strategies) or isinstance(self.seeds, AdaptiveSeeds) or self.search.zoom > 0

    @property
    def swept(self) -> list[str]:
        """The parameters that change between settings, in file order (`variant` first)."""
        keys = ["variant"] if self.variants else []
        for v in self.variants:
            keys += [k for k in v if k != "name" and k not in keys]
        return keys + [k for k in self.grid if k not in keys]

    @property
    def n_settings(self) -> int:
        """How many settings the file describes, counted without listing them."""
        return max(len(self.variants), 1) * math.prod(len(v) for v in self.grid.values())

    @property
    def n_resamples(self) -> int:
        """Data splits per setting and seed: `repeats x folds`, or `draws` (1 without resampling)."""
        return (self.data.repeats or 1) * (self.data.folds or 1) * (self.data.draws or 1)

    @property
    def n_runs(self) -> int:
        """How many runs the file describes (settings x seeds x splits), counted without listing them."""
        return self.n_settings * len(self.seed_list) * self.n_resamples

    @property
    def size(self) -> str:
        """`n_runs` spelled out: "1,000,000 runs = 10,000 settings x 100 seeds [x 3 splits | draws]"."""
        def count(n: int, word: str) -> str:
            return f"{n:,} {word}{'s' * (n != 1)}"

        splits = f" x {count(self.n_resamples, 'draw' if self.data.draws else 'split')}" if self.n_resamples > 1 else ""
        return (f"{count(self.n_runs, 'run')} = {count(self.n_settings, 'setting')} x "
                f"{count(len(self.seed_list), 'seed')}{splits}")

    def data_specs(self) -> list[DataSpec]:
        """The distinct `[data]` sections of the plan (the data parameters swept), without
        listing the runs."""
        keys = [k for k in PARAMS if PARAMS[k][0] == "data"]
        base = {k: getattr(self.data, PARAMS[k][1]) for k in keys}
        choices = [list(self.grid[k]) if k in self.grid else [v.get(k, base[k]) for v in self.variants] or [base[k]]
                   for k in keys]
        out: dict[str, DataSpec] = {}
        for combo in itertools.product(*choices):
            d = self.data.model_copy(update={PARAMS[k][1]: v for k, v in zip(keys, combo, strict=True)})
            out.setdefault(json.dumps(d.model_dump(mode="json"), sort_keys=True), d)
        return list(out.values()) or [self.data]

    def settings(self) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """Every (variant name, overrides) pair to run, seeds not included, one at a time."""
        variants = [(v["name"], {k: x for k, x in v.items() if k != "name"}) for v in self.variants]
        for name, over in variants or [(None, {})]:
            for combo in itertools.product(*self.grid.values()):
                yield name, {**over, **dict(zip(self.grid, combo, strict=True))}

    def expand(self) -> list[RunSpec]:
        """One `RunSpec` per (setting, seed), settings outermost."""
        return list(self.iter_runs())

    def iter_runs(self) -> Iterator[RunSpec]:
        """The runs of `expand`, one at a time (a plan too large to list can still be sampled)."""
        for variant, overrides in self.settings():
            sections = {s: getattr(self, s).model_dump() for s in _SECTIONS}
            for key, value in overrides.items():
                section, field = PARAMS[key]
                sections[section][field] = value
            try:
                built = {s: _SECTIONS[s].model_validate(v) for s, v in sections.items()}
                built["training"] = built["training"].resolved()
            except ValidationError as e:  # each value was fine alone; this combination is not
                setting = ", ".join(f"{k}={format_value(v)}" for k, v in overrides.items())
                raise SpecError(f"{self.name}: the setting {setting} is invalid: {_format(e)}") from None
            data = built["data"]
            for seed in self.seed_list:
                for draw in range(data.draws) if data.draws else [None]:
                    for split in range(data.repeats) if data.repeats else [None]:
                        for fold in range(data.folds) if data.folds else [None]:
                            yield RunSpec(experiment=self.name, seed=seed, variant=variant, **built, split=split,
                                          fold=fold, draw=draw, root=self._root)


@dataclass(frozen=True)
class RunSpec:
    """One run: fully resolved settings, a seed, and which data split. Immutable.

    Attributes:
        split: with `data.repeats`, which draw of the train/validation split (its seed is
            `data.seed + split`); else `None`.
        fold: with `data.folds`, which fold is the validation set; else `None`.
        draw: with `data.draws`, which independent sample of the generated data; else `None`.
        root: the folder that relative paths of the experiment file are resolved against
            (the file's own); not part of what the run is.
        takes: the model parameters (`MODEL_PARAMS`) its builder takes: for a built-in
            builder `BUILDER_PARAMS`'; for a user's, the runner reads its signature. `None`: all.
            Not part of what the run is.
    """

    experiment: str
    seed: int
    variant: str | None
    data: DataSpec
    model: ModelSpec
    training: TrainingSpec
    early_stopping: EarlyStoppingSpec
    split: int | None = None
    fold: int | None = None
    draw: int | None = None
    root: str | None = None
    takes: tuple[str, ...] | None = None

    @property
    def run_id(self) -> str:
        """A stable hash of the resolved settings, seed, split, fold and draw (12 hex digits);
        the last three enter only when set, so ids from before resampling existed stay."""
        payload = {s: _dump_section(s, getattr(self, s).model_dump(mode="json")) for s in _SECTIONS}
        payload |= {"seed": self.seed, "variant": self.variant} | self.resampling
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def data_key(self) -> str:
        """Which data the run trains on: its `[data]` section, split, fold, draw and folder."""
        return json.dumps([self.data.model_dump(mode="json"), self.split, self.fold, self.root, self.draw],
                          sort_keys=True)

    @property
    def resampling(self) -> dict[str, int]:
        """`split`, `fold` and `draw` where set: the columns of `runs.csv` that say which data
        the run saw."""
        return {k: v for k, v in (("split", self.split), ("fold", self.fold), ("draw", self.draw)) if v is not None}

    def path(self, value: str) -> Path:
        """A path of the experiment file, resolved against the file's folder when relative."""
        path = Path(value)
        return path if path.is_absolute() or self.root is None else Path(self.root) / path

    def params_for_csv(self) -> dict[str, Any]:
        """Every sweepable parameter with its value as `runs.csv` holds it (formatted: `(64, 32)`
        is `"64x32"`), but the model parameters its builder does not take (`takes`), and the
        variant's name."""
        out: dict[str, Any] = {"variant": self.variant} if self.variant is not None else {}
        takes = self.takes if self.takes is not None else BUILDER_PARAMS.get(self.model.builder)
        for key, (section, field) in PARAMS.items():
            if key not in MODEL_PARAMS or takes is None or key in takes:
                out[key] = format_value(getattr(getattr(self, section), field))
        return out

    def params_for_builder(self) -> dict[str, Any]:
        """Every sweepable parameter with its raw value (lists stay tuples), whatever the builder
        takes: the keywords a builder is offered (`mlreg.models.builder_arguments`)."""
        return {key: getattr(getattr(self, s), f) for key, (s, f) in PARAMS.items()}


def accepts(param: str, value: Any) -> bool:
    """Whether `param` may take `value` (a search placing values of its own asks: a dropout rate
    must stay below 1)."""
    section, field = PARAMS[param]
    try:
        _SECTIONS[section].model_validate({field: value})
    except ValidationError:
        return False
    return True


def format_value(v: Any) -> Any:
    """How a parameter value is written in CSVs: `(64, 32)` -> `"64x32"`; anything else as it is."""
    if isinstance(v, tuple):
        return "x".join(str(x) for x in v)
    return v


def label(v: Any) -> str:
    """How a parameter value is shown in tables, legends and messages: `0.001`, `64x32`, `True`."""
    v = format_value(v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe_change(old_toml: str, new_toml: str) -> str:
    """The fields that differ between two `spec.toml` texts, e.g.
    `training.epochs (100 -> 150), seeds (3 -> 10)`."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            out |= flat(v, f"{key}.") if isinstance(v, dict) else {key: v}
        return out

    try:
        old, new = flat(tomllib.loads(old_toml)), flat(tomllib.loads(new_toml))
    except tomllib.TOMLDecodeError:
        return "its spec.toml (which is not valid TOML)"
    changed = [f"{k} ({old.get(k, 'unset')!r} -> {new.get(k, 'unset')!r})"
               for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    return ", ".join(changed) if changed else "formatting only"


def load_spec(path: str | Path) -> ExperimentSpec:
    """Reads and validates an experiment file.

    Args:
        path: a TOML experiment file.

    Returns:
        The validated `ExperimentSpec`.

    Raises:
        SpecError: the file is missing, is not TOML, or a value is invalid; the
            message names the field, the value received and what is allowed.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read the experiment file ({e.strerror})") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    d.setdefault("name", path.stem)
    return ExperimentSpec.from_dict(d, source=str(path)).at(path.resolve().parent)


# -- helpers --------------------------------------------------------------------------
def _check_param(key: str, where: str) -> None:
    if key not in PARAMS:
        import difflib

        close = difflib.get_close_matches(key, list(PARAMS), n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`? Expected" if close else "; expected"
        raise ValueError(f"Unknown parameter `{key}` in {where}{hint} one of {sorted(PARAMS)}")


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


EXPECTED = {
    "l1": "expected a rate >= 0, or a list of rates (one per layer)",
    "l2": "expected a rate >= 0, or a list of rates (one per layer)",
    "seeds": "expected a count >= 1, a list of seeds, or {start, max}",
    "train_size": "expected a fraction in (0, 1] or a count >= 2",
    "kernel_size": "expected a size >= 1, or a list of them (one per convolution block)",
    "strides": "expected a size >= 1, or a list of them (one per convolution block)",
    "pool": "expected a size >= 1, or a list of them (one per convolution block)",
    "freeze": f"expected one of {list(FREEZE)} or a count of trainable layers >= 1",
    "scale": 'expected true, false or "global"',
    "target": "expected a column name or a list of them",
}
"""What a field that takes values of several kinds expects, said once (pydantic says it once per kind)."""

_TYPE_ERRORS = {"float": "expected a number", "int": "expected a whole number", "bool": "expected true or false",
                "string": "expected a string", "tuple": "expected a list", "list": "expected a list",
                "dict": "expected a table"}


def _format(e: ValidationError, *, prefix: str = "", value: Any = None) -> str:
    """One line per invalid field, naming it, saying what is allowed and what was received."""
    lines: dict[str, str] = {}
    for err in e.errors(include_url=False):
        names = [p for p in err["loc"] if isinstance(p, int) or _is_name(p)]
        field = next((p for p in reversed(names) if isinstance(p, str)), "")
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in names).replace(".[", "[")
        where = prefix if prefix else loc
        msg = err["msg"].removeprefix("Value error, ")
        kind = err["type"].removesuffix("_type").removesuffix("_parsing")
        short = where.split(".")[-1].split("[")[0]
        received = value if prefix else err.get("input")
        if err["type"] == "extra_forbidden":
            hint = _did_you_mean(names)
            lines[where] = f"Unknown key `{where}`{hint}{'' if hint else '.'} Received: {short}={err['input']!r}"
        elif msg.startswith("Invalid value for"):
            lines[where] = msg
        elif not loc and not prefix:
            lines[where] = msg
        else:
            key = where.split("[")[0] if field in EXPECTED and kind in _TYPE_ERRORS else where
            if key in lines and field in EXPECTED:
                continue
            said = EXPECTED[field] if field in EXPECTED and kind in _TYPE_ERRORS else _TYPE_ERRORS.get(kind, msg)
            lines[key] = f"Invalid value for `{key}`: {said}. Received: {short}={received!r}"
    return "; ".join(lines.values())


def _is_name(part: Any) -> bool:
    """Whether a part of a pydantic error location is a field name (not a union branch such as
    `float` or `tuple[float, ...]`)."""
    return isinstance(part, str) and part.isidentifier() and part not in ("float", "int", "bool", "str")


def _did_you_mean(names: list[Any]) -> str:
    """`; did you mean `hidden`?` for a misspelled key, from the fields of its section."""
    import difflib

    section, key = (names[0], names[-1]) if len(names) > 1 else (None, names[-1] if names else "")
    fields = _SECTIONS[section].model_fields if section in _SECTIONS else ExperimentSpec.model_fields
    close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
    return f"; did you mean `{close[0]}`?" if close else ""


def _drop_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list | tuple):
        return [_drop_none(v) for v in x]
    return x


def dumps_toml(d: dict[str, Any]) -> str:
    """Writes a plain dict as TOML with `tomli_w` (`None` is left out: TOML has no null)."""
    import tomli_w

    return tomli_w.dumps(_drop_none(d))
