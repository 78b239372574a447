"""Offline data sets and seeded splits.

Bundled (shipped inside scikit-learn): `digits`, `breast_cancer`, `diabetes`,
`wine`, `iris`. Synthetic (generated from the split seed): `moons`,
`classification`, `multilabel`, `poly`. The user's own CSV / NPZ / Parquet
file with a target column. Nothing is ever downloaded.

Splits are seeded by `data.seed` (the same for every run of an experiment, so
seeds vary only the initialisation and the batch order) and stratified for
classification. The validation (and test) sets are carved out first, then
`train_size` takes a fraction or a count of the remaining training pool, so the
validation set stays the same when the training set shrinks. Features (and a
regression target) are standardised with statistics of the training set only
(`data.scale = false` keeps the features as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlreg.spec import DataSpec

TASKS = ("auto", "single_label", "binary", "multi_label", "regression")

DATASETS: dict[str, str] = {
    "digits": "8x8 handwritten digits, 1797 x 64, 10 classes (scikit-learn)",
    "breast_cancer": "Wisconsin breast cancer, 569 x 30, binary (scikit-learn)",
    "diabetes": "diabetes progression, 442 x 10, regression (scikit-learn)",
    "wine": "wine cultivars, 178 x 13, 3 classes (scikit-learn)",
    "iris": "iris flowers, 150 x 4, 3 classes (scikit-learn)",
    "moons": "two interleaving half circles, 2 features, binary (synthetic, noise 0.3)",
    "classification": "random n-class problem, 20 features, 3 classes (synthetic)",
    "multilabel": "random multi-label problem, 20 features, 5 labels (synthetic)",
    "poly": "noisy degree-5 polynomial of 1 feature, regression (synthetic, noise 0.3)",
}


class DataError(ValueError):
    """The data cannot be loaded or split as asked. The CLI exits with code 2."""


@dataclass(frozen=True)
class Dataset:
    """Split, scaled arrays ready for Keras."""

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Units of the output layer: classes, labels or regression targets (1 for binary)."""
        if self.task == "single_label":
            return int(max(self.y_train.max(), self.y_val.max())) + 1
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])


def load_arrays(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, str]:
    """The raw features, target and task hint of a data spec (unsplit, unscaled)."""
    if spec.path:
        return _load_file(Path(spec.path), spec.target)
    from sklearn import datasets

    name = spec.dataset
    rng = np.random.default_rng(spec.seed)
    if name in ("digits", "breast_cancer", "diabetes", "wine", "iris"):
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        task = {"breast_cancer": "binary", "diabetes": "regression"}.get(name, "single_label")
        return x.astype("float32"), y, task
    n = spec.n_samples
    if name == "moons":
        x, y = datasets.make_moons(n or 1000, noise=_noise(spec, 0.3), random_state=spec.seed)
        return x, y, "binary"
    if name == "classification":
        x, y = datasets.make_classification(
            n or 1000, n_features=20, n_informative=6, n_redundant=4, n_classes=3,
            flip_y=_noise(spec, 0.05), random_state=spec.seed,
        )
        return x, y, "single_label"
    if name == "multilabel":
        x, y = datasets.make_multilabel_classification(
            n or 1000, n_features=20, n_classes=5, n_labels=2, random_state=spec.seed
        )
        return x, y, "multi_label"
    if name == "poly":
        x = rng.uniform(-1, 1, size=(n or 200, 1))
        coef = np.array([0.5, -1.0, -2.0, 1.5, 2.0, -1.0])
        y = np.polyval(coef, x[:, 0]) + rng.normal(0, _noise(spec, 0.3), size=len(x))
        return x, y, "regression"
    raise DataError(f"Invalid value for `data.dataset`: unknown data set. Received: dataset={name!r}")


def load(spec: DataSpec) -> Dataset:
    """Loads, splits and scales the data of a spec.

    Args:
        spec: the `[data]` section of an experiment (with `train_size` resolved).

    Returns:
        A `Dataset` with float32 features; integer labels for single-label tasks.

    Raises:
        DataError: a missing file or column, a task that does not fit the target,
            or a `train_size` larger than the training pool.

    Example:
        >>> from mlreg.spec import DataSpec
        >>> ds = load(DataSpec(dataset="iris", train_size=30))
        >>> ds.x_train.shape, ds.task
        ((30, 4), 'single_label')
    """
    from sklearn.model_selection import train_test_split

    x, y, hint = load_arrays(spec)
    task = _task(spec.task, hint, y)
    y = _encode(y, task)
    x = np.asarray(x, dtype="float32")
    strat = y if task in ("single_label", "binary") else None
    held = spec.val_size + spec.test_size
    try:
        x_pool, x_held, y_pool, y_held = train_test_split(
            x, y, test_size=held, random_state=spec.seed, stratify=strat
        )
        x_test = y_test = None
        if spec.test_size:
            s = y_held if strat is not None else None
            x_val, x_test, y_val, y_test = train_test_split(
                x_held, y_held, test_size=spec.test_size / held, random_state=spec.seed, stratify=s
            )
        else:
            x_val, y_val = x_held, y_held
        n = spec.train_size if isinstance(spec.train_size, int) else round(spec.train_size * len(x_pool))
        if n > len(x_pool):
            raise DataError(
                f"Invalid value for `data.train_size`: the training pool has {len(x_pool)} "
                f"samples. Received: train_size={spec.train_size!r}"
            )
        if n < len(x_pool):
            s = y_pool if strat is not None else None
            x_pool, _, y_pool, _ = train_test_split(
                x_pool, y_pool, train_size=n, random_state=spec.seed, stratify=s
            )
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"cannot split data set {_label(spec)} as asked: {e}") from None
    mean, std = (x_pool.mean(0), x_pool.std(0)) if spec.scale else (0.0, np.ones(x.shape[1], "float32"))
    std[std == 0] = 1.0

    def scale(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else ((a - mean) / std).astype("float32")

    if task == "regression":
        y_mean, y_std = y_pool.mean(0), y_pool.std(0)
        y_std = np.where(y_std == 0, 1.0, y_std)
        y_pool, y_val = (y_pool - y_mean) / y_std, (y_val - y_mean) / y_std
        y_test = None if y_test is None else (y_test - y_mean) / y_std
    if task in ("binary", "regression") and y_pool.ndim == 1:  # Keras wants (n, 1) here
        y_pool, y_val = y_pool[:, None], y_val[:, None]
        y_test = None if y_test is None else y_test[:, None]
    return Dataset(
        _label(spec), task, scale(x_pool), y_pool, scale(x_val), y_val, scale(x_test), y_test
    )


def _label(spec: DataSpec) -> str:
    return spec.dataset or Path(spec.path or "").name


def _noise(spec: DataSpec, default: float) -> float:
    return default if spec.noise is None else spec.noise


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


def _encode(y: np.ndarray, task: str) -> np.ndarray:
    if task == "regression":
        return np.asarray(y, dtype="float32")
    if task == "multi_label":
        if not np.isin(y, (0, 1)).all():
            raise DataError("a multi_label target must hold only 0 and 1")
        return np.asarray(y, dtype="float32")
    classes, codes = np.unique(y, return_inverse=True)
    if task == "binary" and len(classes) != 2:
        raise DataError(f"a binary target needs 2 classes; found {len(classes)}")
    return codes.astype("int32") if task == "single_label" else codes.astype("float32")


def _load_file(path: Path, target: str | tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray, str]:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"Invalid value for `data.path`: no such file. Received: path={str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            frame = _npz_frame(z, path)
    elif suffix == ".csv":
        frame = pd.read_csv(path)
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise DataError(
            f"Invalid value for `data.path`: expected a .csv, .npz or .parquet file. Received: path={str(path)!r}"
        )
    targets = [target] if isinstance(target, str) else list(target or ())
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise DataError(
            f"Invalid value for `data.target`: no column {missing[0]!r} in {path.name} "
            f"(columns: {list(frame.columns)}). Received: target={target!r}"
        )
    features = frame.drop(columns=targets)
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise DataError(f"{path.name}: feature columns must be numeric; not numeric: {bad}")
    if features.isna().any().any() or frame[targets].isna().any().any():
        raise DataError(f"{path.name}: the data has missing values; fill or drop them first")
    y = frame[targets[0]].to_numpy() if len(targets) == 1 else frame[targets].to_numpy()
    return features.to_numpy(dtype="float32"), y, _infer_task(y)


def _npz_frame(z: Any, path: Path) -> Any:
    import pandas as pd

    if "x" in z and "y" in z:
        x, y = z["x"], z["y"]
        cols = {f"x{i}": x[:, i] for i in range(x.shape[1])}
        if y.ndim == 1:
            cols["y"] = y
        else:
            cols |= {f"y{i}": y[:, i] for i in range(y.shape[1])}
        return pd.DataFrame(cols)
    try:
        return pd.DataFrame({k: z[k] for k in z.files})
    except ValueError as e:
        raise DataError(f"{path.name}: expected arrays `x` and `y`, or one 1-D array per column ({e})") from None


def _infer_task(y: np.ndarray) -> str:
    if y.ndim == 2:
        return "multi_label" if np.isin(y, (0, 1)).all() else "regression"
    if y.dtype.kind in "OUSb":
        return "binary" if len(np.unique(y)) == 2 else "single_label"
    values = np.unique(y)
    integral = y.dtype.kind in "iu" or np.all(np.mod(values, 1) == 0)
    if integral and len(values) <= 20:
        return "binary" if len(values) == 2 else "single_label"
    return "regression"
