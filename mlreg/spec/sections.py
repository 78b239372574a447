"""The sections of the experiment file (`[data]`, `[model]`, `[training]`, `[early_stopping]`,
`[search]`) as strict pydantic models, and how a section is written to `spec.toml` and run ids.

The fields of the kinds of regularization are added to their sections from `names.KINDS`
(`add_kind_fields`), after the section's `_KINDS_AFTER` field."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from mlreg import memory
from mlreg.spec.names import (
    ACTIVATIONS,
    ADAMW_DECAY,
    BUILDERS,
    DATASETS,
    ENGINES,
    FREEZE,
    GENERATED,
    KINDS,
    OPTIMIZERS,
    STRATEGIES,
    TASKS,
    Kind,
)


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
    _KINDS_AFTER: ClassVar[str] = "activation"  # the kinds' fields follow it
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

    @model_validator(mode="after")
    def _per_layer(self) -> ModelSpec:
        if self.builder == "transfer" and self.base_model is None:
            raise ValueError('`model.builder = "transfer"` needs `model.base_model` (a .keras file)')
        per_layer = [k.name for k in KINDS.values() if k.applies == "kernel" and k.section == "model"]
        if self.builder == "transfer" and any(isinstance(getattr(self, name), tuple) for name in per_layer):
            raise ValueError("per-layer rates do not apply to `transfer`; give one rate (for the new head)")
        layers, what = self.layers
        for name in per_layer:
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
    _KINDS_AFTER: ClassVar[str] = "optimizer"  # the kinds' fields follow it
    decay_biases: bool = False
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


class SearchSpec(_Section):
    """How the runs are chosen (see `mlreg.search`). The default trains the full grid.

    Args:
        strategy: `grid` (every setting, every seed, to the end), `halving` (successive
            halving: at each rung, the settings worse than the rung's best beyond their paired
            interval, outside the best `1/factor`, and still worse with their curves projected to
            the end, stop there as `pruned`), `curve` (the grid of a rate is a coarse start: new
            rates are placed where the best may be until it is pinned to a factor `precision`),
            `extrapolate` (the grid of a rate on `fractions` of the training set, the best rate
            for all of it predicted by a power law and confirmed there), or a list of them
            (`["halving", "curve"]`: the coarse grid pruned at rungs; `["halving",
            "extrapolate"]`: halving inside each training-set size, as adaptive seeds are).
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
        param: for `curve` and `extrapolate`, the rate it searches. Defaults to `None`: the one
            parameter the grid sweeps on a log scale (three or more positive values, each at least
            twice the last).
        fractions: for `extrapolate`, the subsets of the training set the grid trains on first
            (fractions of `data.train_size`); the best rate at each, fitted against the size, predicts
            it for all the data, where only the prediction and its neighbours train. Defaults to
            `(1/16, 1/8, 1/4)`.
    """

    strategy: Literal[STRATEGIES] | tuple[Literal[STRATEGIES], ...] = "grid"  # type: ignore[valid-type]
    factor: int = Field(3, ge=2)
    first_rung: int | None = Field(None, ge=1)
    margin: float = Field(0.0, ge=0)
    zoom: int = Field(0, ge=0)
    precision: float = Field(2.0, gt=1, allow_inf_nan=False)
    param: str | None = None
    fractions: tuple[float, ...] = (0.0625, 0.125, 0.25)

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) < 2 or any(not 0 < f < 1 for f in v) or list(v) != sorted(set(v)):
            raise ValueError("expected two or more increasing fractions in (0, 1), e.g. [0.0625, 0.125, 0.25]")
        return v

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

# Fields added after results were first recorded (and the kinds whose entries say `quiet`). At their
# default they are left out of spec.toml and of run ids, so that results written before they existed
# still resume.
_QUIET_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"memory": None, "scale": True, "folds": None, "repeats": None, "draws": None, "shift": 0.0,
             "test_path": None, "shape": None},
    "model": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "pool": 1},
    "training": {"decay_biases": False},
    "search": {"precision": 2.0, "fractions": [0.0625, 0.125, 0.25]},
}

# Fields that say how runs are executed, not what they are: never in spec.toml or run ids.
_EXECUTION: dict[str, set[str]] = {"training": {"engine"}}


def _dump_section(name: str, section: dict[str, Any]) -> dict[str, Any]:
    quiet = _QUIET_DEFAULTS.get(name, {}) | {k.name: k.none for k in KINDS.values() if k.section == name and k.quiet}
    execution = _EXECUTION.get(name, set())
    if section.get("builder") == "cnn":  # its own fields are always written out
        quiet = {k: v for k, v in quiet.items() if k not in ("filters", "kernel_size", "strides", "pool")}
    return {k: v for k, v in section.items() if k not in execution and not (k in quiet and v == quiet[k])}


def add_kind_fields(kind: Kind) -> None:
    """Adds a kind's field to its section, after the section's `_KINDS_AFTER` field and the kinds
    added before it (so that `spec.toml` keeps its order)."""
    section = _SECTIONS[kind.section]
    fields = dict(section.__pydantic_fields__)
    if kind.name in fields:
        raise ValueError(f"`{kind.section}.{kind.name}` is a field already")
    names = list(fields)
    at = names.index(section._KINDS_AFTER) + 1
    while at < len(names) and names[at] in KINDS and names[at] != kind.name:
        at += 1
    info = kind.field if isinstance(kind.field, FieldInfo) else Field(kind.field)
    new = FieldInfo.merge_field_infos(FieldInfo.from_annotation(kind.value), info)
    ordered = [*names[:at], kind.name, *names[at:]]
    section.__pydantic_fields__ = {n: new if n == kind.name else fields[n] for n in ordered}
    section.__annotations__[kind.name] = kind.value
    section.model_rebuild(force=True)


for _kind in KINDS.values():
    add_kind_fields(_kind)
