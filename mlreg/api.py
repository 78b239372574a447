"""The notebook's front door: a builder function and arrays in memory, no files.

`sweep` is `mlreg run` with the experiment given as Python objects (the same engines, the same
results directory, the same `Results`); `validation_curve` answers in scikit-learn's shape.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlreg.spec import _SECTIONS, PARAMS, ExperimentSpec, SpecError

if TYPE_CHECKING:
    import pandas as pd

    from mlreg.analysis.results import Results

# each field of a section by its own name, where only one section has it (`PARAMS` first)
_FIELDS: dict[str, str] = {}
for _section, _model in _SECTIONS.items():
    for _field in _model.model_fields:
        _FIELDS[_field] = "" if _field in _FIELDS else _section
_FIELDS = {k: v for k, v in _FIELDS.items() if v} | {k: section for k, (section, _) in PARAMS.items()}


def sweep(builder: Any, x: Any, y: Any = None, *, validation_data: Any = None, test_data: Any = None,
          target: str | list[str] | None = None, grid: dict[str, list[Any]] | None = None,
          variants: list[dict[str, Any]] | None = None, seeds: Any = 3, search: Any = None, task: str = "auto",
          name: str | None = None, out: str | Path | None = None, fresh: bool = False, engine: str | None = None,
          workers: int | None = None, dask: Any = None, backend: str | None = None, progress: bool = True,
          mlflow: str | bool | None = None, **fields: Any) -> Results:
    """Sweeps a model over its settings and seeds, as `mlreg run` does an experiment file.

    Args:
        builder: a function with mlreg's builder signature (`input_shape`, `n_outputs`,
            `output_activation` and the hyperparameters it names, returning a `keras.Model`),
            defined anywhere (a notebook cell, a `functools.partial`, a method), or a built-in
            builder's name (`"mlp"`).
        x: the features, any shape `[N, ...]` (an array, a DataFrame, lists).
        y: the targets. Defaults to `None`: `x[target]` of a DataFrame.
        validation_data: `(x_val, y_val)`, instead of holding out `val_size` of `x`.
        test_data: `(x_test, y_test)`: a test set, measured at the best epoch.
        target: the target column of a DataFrame `x`.
        grid: what to sweep, e.g. `{"l2": [0, 1e-4, 1e-3]}`.
        variants: named settings, as the file's `[[variants]]`.
        seeds: a count, a list, or `{"start": 3, "max": 30}`. Defaults to `3`.
        search: a strategy (`"halving"`, `"curve"`) or the `[search]` section as a dict.
        task: `auto`, `single_label`, `binary`, `multi_label` or `regression`.
        name: the experiment's name. Defaults to the builder's name.
        out: the results directory (resumable as `mlreg run`'s). Defaults to `None`: a temporary
            one that the returned `Results` keeps while it lives (`Results.save` copies it).
        fresh: move an existing `out` aside and start anew, as `mlreg.run`'s.
        engine: `auto`, `fused` or `keras`, as `mlreg.run`'s.
        workers: worker processes, as `mlreg.run`'s.
        dask: a Dask scheduler or `"local"`, as `mlreg.run`'s.
        backend: `jax` or `tensorflow`, as `mlreg.run`'s.
        progress: show a progress bar (a widget in Jupyter).
        mlflow: a tracking store to log the sweep to while it trains, as `mlreg.run`'s.
        **fields: any field of the file's sections by its name (`epochs=30`,
            `learning_rate=1e-3`, `patience=5`, `val_size=0.25`, `dropout=0.2`), or a whole
            section as a dict (`training={"epochs": 30}`). The defaults are the file's.

    Returns:
        The `Results` of the directory.

    Raises:
        InputError: a bad argument (named, with its value), before any training.

    Example:
        >>> def build(input_shape, n_outputs, output_activation, l2=0.0):  # doctest: +SKIP
        ...     ...
        >>> res = mlreg.sweep(build, x, y, grid={"l2": [0, 1e-3]}, epochs=20)  # doctest: +SKIP
    """
    from mlreg import memory
    from mlreg.analysis.results import load_results
    from mlreg.runner import run

    data = memory.ArrayData(x, y, validation=validation_data, test=test_data, target=target)
    label = memory.register_builder(builder) if callable(builder) else builder
    d: dict[str, Any] = {"name": name or label.split("@")[0], "seeds": seeds, "grid": dict(grid or {}),
                         "variants": list(variants or []), "data": {"arrays": data, "task": task},
                         "model": {"builder": label}}
    if search is not None:
        d["search"] = {"strategy": search} if isinstance(search, str | list) else dict(search)
    for key, value in fields.items():
        if key in _SECTIONS and isinstance(value, dict):
            d.setdefault(key, {}).update(value)
        elif key in _FIELDS:
            d.setdefault(_FIELDS[key], {})[key] = value
        else:
            import difflib

            close = difflib.get_close_matches(key, list(_FIELDS), n=1)
            raise SpecError(f"Invalid argument `{key}`: not a field of any section"
                            f"{f'; did you mean `{close[0]}`?' if close else ''}. Received: {key}={value!r}")
    spec = ExperimentSpec.from_dict(d, source="mlreg.sweep")
    keep = None
    if out is None:
        keep = tempfile.TemporaryDirectory(prefix=f"mlreg-{spec.name}-")
        out = Path(keep.name) / spec.name
    run(spec, out=out, fresh=fresh, engine=engine, workers=workers, dask=dask, backend=backend, progress=progress,
        mlflow=mlflow)
    results = load_results(out)
    if keep is not None:
        object.__setattr__(results, "keep", keep)
    return results


def validation_curve(builder: Any, x: Any, y: Any = None, *, param_name: str = "l2",
                     param_range: Any = (0.0, 1e-4, 1e-3, 1e-2), seeds: Any = 5, **kwargs: Any) -> pd.DataFrame:
    """scikit-learn's `validation_curve`, answered by a sweep of `param_name` over
    `param_range` (`sweep`'s other arguments pass through): one row per value and seed with the
    honest scores at each run's best epoch: `train_score` and `validation_score` (the data
    losses, lower is better, no penalty in them), `gap`, the accuracy where the task has one,
    and the run's `status`. Draw it with `mlreg.plots.validation_curve(frame, ax=...)`.

    Example:
        >>> frame = mlreg.validation_curve(build, x, y, param_range=[0, 1e-3, 1e-2])  # doctest: +SKIP
    """
    results = sweep(builder, x, y, grid={param_name: list(param_range)}, seeds=seeds, **kwargs)
    runs = results.runs
    columns = {param_name: param_name, "seed": "seed", "train_data_loss_at_best": "train_score",
               "best_val_data_loss": "validation_score", "gap": "gap", "train_accuracy_at_best": "train_accuracy",
               "val_accuracy_at_best": "validation_accuracy", "status": "status"}
    frame = runs[[c for c in columns if c in runs]].rename(columns=columns)
    frame = frame.sort_values([param_name, "seed"]).reset_index(drop=True)
    frame.attrs["results"] = results  # the sweep behind it (its directory lives while the frame does)
    return frame

