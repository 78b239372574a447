"""The built-in data sets, one entry each: what it is and how it is loaded (or generated).

Bundled (shipped inside scikit-learn): `digits`, `breast_cancer`, `diabetes`, `wine`, `iris`.
Generated here: `mnist1d` (by the `mnist1d` package's own generator, never its download path),
and the synthetic `moons`, `classification`, `multilabel`, `poly`. Nothing is ever downloaded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mlreg.errors import InputError

if TYPE_CHECKING:
    from mlreg.spec import DataSpec


class DataError(InputError):
    """The data cannot be loaded or split as asked."""


class Arrays(NamedTuple):
    """Raw data before splitting: features, target, a task hint, and a test set of its own."""

    x: np.ndarray
    y: np.ndarray
    task: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_val: np.ndarray | None = None  # a validation set of its own (arrays in memory)
    y_val: np.ndarray | None = None


@dataclass(frozen=True)
class DataSet:
    """A built-in data set.

    Attributes:
        description: what it is, for `mlreg datasets`.
        load: `(data spec, seed, draw) -> Arrays`, unsplit and unscaled: `seed` is the spec's, or
            for draw r > 0 one derived from it (a generator's independent sample).
    """

    description: str
    load: Callable[[DataSpec, int, int | None], Arrays]


MNIST1D_SEED = 42
"""The `mnist1d` generator's own default seed: draw r of `mnist1d` uses seed `42 + r`, so draw 0
is the data set everyone uses (as for the other generators: draw 0 is the sample of `seed`)."""


def mnist1d(n_samples: int | None = None, **settings: Any) -> Arrays:
    """MNIST-1D from the `mnist1d` package's generator (never its download path): its default
    settings (seed 42, its own 80/20 train/test split) changed by `settings` (any of
    `mnist1d.data.get_dataset_args()`, e.g. `max_translation=60`), `n_samples` in all. The
    generator seeds NumPy's and Python's global random state; that is undone."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    if n_samples is not None:
        args.num_samples = n_samples
    for key, value in settings.items():
        setattr(args, key, value)
    state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
        random.setstate(py_state)
    return Arrays(d["x"].astype("float32"), d["y"], "single_label", d["x_test"].astype("float32"), d["y_test"])


def _noise(spec: DataSpec, default: float) -> float:
    return default if spec.noise is None else spec.noise


def _bundled(name: str, task: str) -> Callable[[DataSpec, int, int | None], Arrays]:
    def load(spec: DataSpec, seed: int, draw: int | None) -> Arrays:
        from sklearn import datasets

        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        return Arrays(x.astype("float32"), y, task)

    return load


def _mnist1d(spec: DataSpec, seed: int, draw: int | None) -> Arrays:
    return mnist1d(spec.n_samples) if not draw else mnist1d(spec.n_samples, seed=MNIST1D_SEED + draw)


def _moons(spec: DataSpec, seed: int, draw: int | None) -> Arrays:
    from sklearn import datasets

    x, y = datasets.make_moons(spec.n_samples or 1000, noise=_noise(spec, 0.3), random_state=seed)
    return Arrays(x, y, "binary")


def _classification(spec: DataSpec, seed: int, draw: int | None) -> Arrays:
    from sklearn import datasets

    x, y = datasets.make_classification(spec.n_samples or 1000, n_features=20, n_informative=6, n_redundant=4,
                                        n_classes=3, flip_y=_noise(spec, 0.05), random_state=seed)
    return Arrays(x, y, "single_label")


def _multilabel(spec: DataSpec, seed: int, draw: int | None) -> Arrays:
    from sklearn import datasets

    x, y = datasets.make_multilabel_classification(spec.n_samples or 1000, n_features=20, n_classes=5, n_labels=2,
                                                   random_state=seed)
    return Arrays(x, y, "multi_label")


def _poly(spec: DataSpec, seed: int, draw: int | None) -> Arrays:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(spec.n_samples or 200, 1))
    coef = np.array([0.5, -1.0, -2.0, 1.5, 2.0, -1.0])
    y = np.polyval(coef, x[:, 0]) + rng.normal(0, _noise(spec, 0.3), size=len(x))
    return Arrays(x, y, "regression")


DATASETS: dict[str, DataSet] = {  # keyed by mlreg.spec.DATASETS
    "digits": DataSet("8x8 handwritten digits, 1797 x 64, 10 classes (scikit-learn)",
                      _bundled("digits", "single_label")),
    "breast_cancer": DataSet("Wisconsin breast cancer, 569 x 30, binary (scikit-learn)",
                             _bundled("breast_cancer", "binary")),
    "diabetes": DataSet("diabetes progression, 442 x 10, regression (scikit-learn)",
                        _bundled("diabetes", "regression")),
    "wine": DataSet("wine cultivars, 178 x 13, 3 classes (scikit-learn)", _bundled("wine", "single_label")),
    "iris": DataSet("iris flowers, 150 x 4, 3 classes (scikit-learn)", _bundled("iris", "single_label")),
    "mnist1d": DataSet("1-D digit signals, 40 features, 10 classes; 4000 + its own 1000 test samples, n_samples "
                       "sets the total (generated by the mnist1d package; Greydanus & Kobak 2020)", _mnist1d),
    "moons": DataSet("two interleaving half circles, 2 features, binary (synthetic, noise 0.3)", _moons),
    "classification": DataSet("random n-class problem, 20 features, 3 classes (synthetic)", _classification),
    "multilabel": DataSet("random multi-label problem, 20 features, 5 labels (synthetic)", _multilabel),
    "poly": DataSet("noisy degree-5 polynomial of 1 feature, regression (synthetic, noise 0.3)", _poly),
}
"""The built-in data sets by name (`mlreg.spec.DATASETS`)."""

DESCRIPTIONS: dict[str, str] = {name: d.description for name, d in DATASETS.items()}
"""What each built-in data set is, by name (`mlreg datasets`)."""
