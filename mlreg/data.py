"""Offline data sets, seeded splits, resampling and shifted evaluation data.

The built-in data sets (`mlreg.datasets`), the user's own CSV / NPZ / Parquet file with a target
column (`mlreg.files`), or arrays in memory (`mlreg.memory`). Nothing is ever downloaded.

Splits are seeded by `data.seed` (the same for every run of an experiment, so seeds vary
only the initialisation and the batch order) and stratified for classification. The test
set (a data set's or a file's own, or `test_size` of the data) is carved out first and never
moves; then the validation set (`val_size` of the data, or a fold with `folds`); then
`train_size` takes a fraction or a count of the rest, so the validation set stays the same
when the training set shrinks. `repeats` re-draws the train/validation split with seeds
`seed, seed + 1, ...`. Counts are exact: `ceil(fraction x samples)`, as scikit-learn counts.
Features (and a regression target) are standardised with statistics of the training set
only (`data.scale = false` keeps the features as they are). `shift` adds Gaussian noise to
the validation and test features: the same draw for every `shift`, scaled by it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.datasets import DATASETS, Arrays, DataError
from mlreg.files import infer_task, load_file

if TYPE_CHECKING:
    from mlreg.spec import DataSpec, RunSpec

@dataclass(frozen=True)
class Dataset:
    """Split, scaled arrays ready for Keras; features of any shape `[N, ...]`.

    Attributes:
        content_hash: a hash of the raw data (features and targets, its own test set
            included), recorded in the manifest so that a directory whose data changed is
            not resumed.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    content_hash: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample: `(features,)`, `(T, C)` for sequences, `(H, W, C)` for images."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """The number of values in one sample."""
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        """Units of the output layer: classes, labels or regression targets (1 for binary)."""
        if self.task == "single_label":
            return int(max(self.y_train.max(), self.y_val.max())) + 1
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])


_LOADED: dict[str, Dataset] = {}


def for_run(run: RunSpec) -> Dataset:
    """The data of a run (its `[data]` section, split, fold and folder), loaded once per process
    while its files stay as they are: the driver loads each data set of a plan once, before
    anything is written, and a worker process each one it trains on."""
    files = [run.path(p) for p in (run.data.path, run.data.test_path) if p]
    key = run.data_key + repr([(str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file()])
    if key not in _LOADED:
        if len(_LOADED) >= 32:  # a sweep over many data configurations keeps memory bounded
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = load(run.data, split=run.split, fold=run.fold, draw=run.draw, root=run.root)
    return _LOADED[key]


def load_arrays(spec: DataSpec, root: str | Path | None = None, draw: int | None = None) -> Arrays:
    """The raw data of a data spec (unsplit, unscaled); relative paths are resolved
    against `root` (the experiment file's folder). With `draw` r > 0, a generated data set is
    drawn from its generator seeded by `(seed, r)` (mnist1d: its own seed 42 plus r): an
    independent sample of the same size; draw 0 is the sample of `seed`."""
    if spec.memory:
        from mlreg import memory

        a = memory.get(spec.memory, "data.memory")
        return Arrays(a.x, a.y, infer_task(a.y), a.x_test, a.y_test, a.x_val, a.y_val)
    if spec.path:
        test = load_file(_resolve(spec.test_path, root), spec.target) if spec.test_path else None
        data = load_file(_resolve(spec.path, root), spec.target)
        return data if test is None else data._replace(x_test=test.x, y_test=test.y)
    seed = spec.seed if not draw else int(np.random.SeedSequence([spec.seed, draw]).generate_state(1)[0] >> 1)
    return DATASETS[spec.dataset].load(spec, seed, draw)  # type: ignore[index]


def load(spec: DataSpec, *, split: int | None = None, fold: int | None = None, draw: int | None = None,
         root: str | Path | None = None) -> Dataset:
    """Loads, splits and scales the data of a spec.

    Args:
        spec: the `[data]` section of an experiment (with `train_size` resolved).
        split: with `spec.repeats`, which draw of the train/validation split. Defaults to `None`.
        fold: with `spec.folds`, which fold is the validation set. Defaults to `None`.
        draw: with `spec.draws`, which independent sample of a generated data set. Defaults
            to `None`.
        root: the folder relative paths are resolved against. Defaults to `None` (the
            working directory).

    Returns:
        A `Dataset` with float32 features; integer labels for single-label tasks.

    Raises:
        DataError: a missing or damaged file or column, a task that does not fit the
            target, or a `train_size` larger than the training pool.

    Example:
        >>> from mlreg.spec import DataSpec
        >>> ds = load(DataSpec(dataset="iris", train_size=30))
        >>> ds.x_train.shape, ds.task
        ((30, 4), 'single_label')
    """
    raw = _reshaped(load_arrays(spec, root, draw), spec)
    task = _task(spec.task, raw.task, raw.y)
    parts = [a for a in (raw.y, raw.y_test, raw.y_val) if a is not None]  # one encoding of the classes for all
    y_all = _encode(np.concatenate(parts) if len(parts) > 1 else raw.y, task, spec)
    ends = np.cumsum([len(a) for a in parts])[:-1]
    y, *rest = np.split(y_all, ends)
    y_test = rest.pop(0) if raw.y_test is not None else None
    y_given = rest.pop(0) if raw.y_val is not None else None
    x, x_test = np.asarray(raw.x, dtype="float32"), _float(raw.x_test)
    if y_given is not None and (spec.folds or spec.repeats):
        raise DataError(f"Invalid value for `data.{'folds' if spec.folds else 'repeats'}`: the validation set is "
                        f"given (validation_data), so there is no split to repeat. Received: "
                        f"{'folds' if spec.folds else 'repeats'}={spec.folds or spec.repeats}")
    strat = task in ("single_label", "binary")
    seed = spec.seed + (split or 0)
    for field, size in (("test_size", spec.test_size),
                        ("val_size", 0 if spec.folds or y_given is not None else spec.val_size)):
        left = len(x) - _count(size or 0, len(x)) - (_count(spec.test_size, len(x)) if field == "val_size" else 0)
        if size and left < 2:
            held = field.removesuffix("_size")
            raise DataError(f"Invalid value for `data.{field}`: {_label(spec)} has {len(x)} sample"
                            f"{'s' * (len(x) != 1)}; holding out {held} data leaves {max(left, 0)} to train on, "
                            f"and training needs at least 2. Received: {field}={size!r}")
    try:
        n_val = _count(spec.val_size, len(x))
        if spec.test_size:
            x, x_test, y, y_test = _split(x, y, _count(spec.test_size, len(x)), spec.seed, strat)
        if y_given is not None:
            x_pool, x_val, y_pool, y_val = x, _float(raw.x_val), y, y_given
        elif spec.folds:
            x_pool, x_val, y_pool, y_val = _fold(x, y, spec.folds, fold or 0, seed, strat)
        else:
            x_pool, x_val, y_pool, y_val = _split(x, y, n_val, seed, strat)
        n = spec.train_size if isinstance(spec.train_size, int) else round(spec.train_size * len(x_pool))
        if n > len(x_pool):
            raise DataError(
                f"Invalid value for `data.train_size`: the training pool has {len(x_pool)} "
                f"samples. Received: train_size={spec.train_size!r}"
            )
        if n < len(x_pool):
            x_pool, _, y_pool, _ = _split(x_pool, y_pool, len(x_pool) - n, seed, strat)
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"cannot split data set {_label(spec)} as asked: {e}") from None
    mean, std, std_raw = _scaling(x_pool, spec.scale)
    shifted = np.random.default_rng([spec.seed, split or 0, fold or 0, *([draw] if draw else [])])

    def evaluation(a: np.ndarray | None) -> np.ndarray | None:
        """Scaled; with `shift`, moved by noise of `shift` training standard deviations."""
        if a is None:
            return None
        noise = shifted.standard_normal(a.shape)  # drawn whatever the shift: the same draw for every shift
        if spec.shift:
            a = (a + spec.shift * std_raw * noise).astype("float32")
        return ((a - mean) / std).astype("float32")

    x_val_s, x_test_s = evaluation(x_val), evaluation(x_test)
    if task == "regression":
        y_mean, y_std = y_pool.mean(0), y_pool.std(0)
        y_std = np.where(y_std == 0, 1.0, y_std)
        y_pool, y_val = (y_pool - y_mean) / y_std, (y_val - y_mean) / y_std
        y_test = None if y_test is None else (y_test - y_mean) / y_std
    if task in ("binary", "regression") and y_pool.ndim == 1:  # Keras wants (n, 1) here
        y_pool, y_val = y_pool[:, None], y_val[:, None]
        y_test = None if y_test is None else y_test[:, None]
    return Dataset(_label(spec), task, ((x_pool - mean) / std).astype("float32"), y_pool, x_val_s, y_val,
                   x_test_s, y_test, _content_hash(raw))


def _scaling(x: np.ndarray, scale: bool | str) -> tuple[Any, Any, Any]:
    """`(mean, std, raw std)` of the training features: per feature position (`True`), one of
    each over all values (`"global"`), or none (`False`: 0 and 1). The raw standard deviation
    (scaling or not) sets how far `shift` moves the evaluation data; a constant feature's is 1."""
    if scale == "global":
        std = float(x.std()) or 1.0
        return float(x.mean()), std, std
    std_raw = x.std(0)
    std_raw[std_raw == 0] = 1.0
    return (x.mean(0), std_raw, std_raw) if scale else (0.0, 1.0, std_raw)


def _reshaped(raw: Arrays, spec: DataSpec) -> Arrays:
    """The features as `spec.shape` asks (each sample reshaped), refusing a shape whose size is
    not the feature count."""
    if spec.shape is None:
        return raw
    n = math.prod(raw.x.shape[1:])
    if math.prod(spec.shape) != n:
        raise DataError(f"Invalid value for `data.shape`: {list(spec.shape)} holds {math.prod(spec.shape)} values, "
                        f"but each sample of {_label(spec)} has {n} features (shape {list(raw.x.shape[1:])}). "
                        f"Received: shape={list(spec.shape)}")

    def reshape(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a.reshape(len(a), *spec.shape)

    return raw._replace(x=reshape(raw.x), x_test=reshape(raw.x_test), x_val=reshape(raw.x_val))


def _count(fraction: float, n: int) -> int:
    """How many of `n` samples a fraction takes, as scikit-learn counts (ceil), without the
    float error that turns 0.1 + 0.2 of 5000 into 1501."""
    return math.ceil(round(fraction * n, 9))


def _split(x: np.ndarray, y: np.ndarray, n_out: int, seed: int,
           stratify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`n_out` samples split off (stratified for classification): `(x_in, x_out, y_in, y_out)`."""
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=n_out, random_state=seed, stratify=y if stratify else None)


def _fold(x: np.ndarray, y: np.ndarray, k: int, fold: int, seed: int,
          stratify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fold `fold` of a shuffled (stratified) k-fold partition as validation: `(x_in, x_val, y_in, y_val)`."""
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if stratify else KFold)(n_splits=k, shuffle=True, random_state=seed)
    train, val = list(splitter.split(x, y))[fold]
    return x[train], x[val], y[train], y[val]


def _content_hash(raw: Arrays) -> str:
    h = hashlib.sha256()
    for a in (raw.x, raw.y, raw.x_test, raw.y_test, raw.x_val, raw.y_val):
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype, a.shape)).encode())
            h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
    return h.hexdigest()[:16]


def _float(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.asarray(a, dtype="float32")


def _resolve(path: str, root: str | Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or root is None else Path(root) / p


def _label(spec: DataSpec) -> str:
    return spec.dataset or spec.memory or Path(spec.path or "").name


def _task(given: str, hint: str, y: np.ndarray) -> str:
    if given != "auto":
        if given == "multi_label" and y.ndim != 2:
            raise DataError("Invalid value for `data.task`: multi_label needs several target columns. "
                            "Received: task='multi_label'")
        if given in ("single_label", "binary") and y.ndim != 1:
            raise DataError(f"Invalid value for `data.task`: {given} needs one target column. "
                            f"Received: task={given!r}")
        return given
    return hint


def _encode(y: np.ndarray, task: str, spec: DataSpec) -> np.ndarray:
    if task == "regression":
        return np.asarray(y, dtype="float32")
    if task == "multi_label":
        if not np.isin(y, (0, 1)).all():
            raise DataError("a multi_label target must hold only 0 and 1")
        return np.asarray(y, dtype="float32")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"Invalid value for `data.target`: the target has one class ({classes[0]}); a "
                        f"classification target needs two or more. Received: target={spec.target!r}")
    if task == "binary" and len(classes) != 2:
        raise DataError(f"a binary target needs 2 classes; found {len(classes)}")
    return codes.astype("int32") if task == "single_label" else codes.astype("float32")
