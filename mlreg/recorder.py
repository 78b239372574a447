"""Runs trained by your own script, written into an mlreg results directory.

`Recorder` takes the runs of a loop you wrote yourself — `model.fit` with a `HonestLogger`
(and Keras's `EarlyStopping`, if you like) — and writes each through the store: the same
files, the same crash safety, resume by run id, so `mlreg compare / plot / report` work on
them unchanged. `import_csv_logs` brings in the files of Keras's own `CSVLogger` from past
scripts: those runs lack the honest columns (Keras's `loss` and `val_loss` include the
penalty), which stay empty; nothing is invented.

Example:
    >>> with Recorder("results/my_sweep", params=["l2"], task="single_label") as rec:  # doctest: +SKIP
    ...     for l2 in (0.0, 1e-3):
    ...         if not rec.done(seed=0, l2=l2):
    ...             logger = HonestLogger(x_train, y_train)
    ...             model.fit(..., callbacks=[logger])
    ...             rec.record(model, logger, seed=0, l2=l2)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlreg.records import HISTORY, RunResult, columns, finish, metric_names
from mlreg.spec import TASKS, InputError
from mlreg.store import ResultsStore

_TASKS = tuple(t for t in TASKS if t != "auto")  # a script's runs have a known task


@dataclass(frozen=True)
class ScriptRun:
    """A run of a script, identified by its experiment, parameters and seed (what `finish`
    needs of a run)."""

    experiment: str
    seed: int
    settings: dict[str, Any]
    resampling: dict[str, int] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        blob = json.dumps([self.experiment, self.seed, self.settings], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def params_for_csv(self) -> dict[str, Any]:
        return dict(self.settings)


class Recorder:
    """Writes runs trained in your own loop into an mlreg results directory.

    Args:
        out: the results directory (created, or resumed when it holds this experiment).
        params: the names of the parameters your loop varies, e.g. `["l2"]`; every run gives
            each of them. Their values become `runs.csv` columns and tell settings apart.
        task: `single_label`, `binary`, `multi_label` or `regression`: decides the metric
            column (`accuracy` or `mae`; other metrics stay in Keras's `History`).
        name: the experiment's name. Defaults to the directory's name.
        description: free text. Defaults to `""`.
        test: runs will give a test set (`test=(x, y)` in `record`). Defaults to `False`.
        fresh: move an existing directory aside first. Defaults to `False`.
        mlflow: log each run to this MLflow tracking store as it is recorded (`True`: MLflow's
            default store), as `mlreg export mlflow` does. Defaults to `None`.

    Raises:
        StoreError: the directory holds another experiment, or another process writes there.
    """

    def __init__(self, out: str | Path, *, params: Sequence[str], task: str, name: str | None = None,
                 description: str = "", test: bool = False, fresh: bool = False,
                 mlflow: str | bool | None = None) -> None:
        if task not in _TASKS:
            raise InputError(f"Invalid value for `task`: expected one of {list(_TASKS)}. Received: task={task!r}")
        out = Path(out)
        self.live = None
        if mlflow:  # the store reached before anything is written
            from mlreg.analysis.tracking import Live

            self.live = Live(mlflow, out, every=0.0)
        self.name, self.params, self.task = name or out.name, list(params), task
        spec = {"name": self.name, "description": description, "source": "script", "params": self.params,
                "task": task}
        from mlreg.spec import dumps_toml

        self.store = ResultsStore.open(
            out, spec_toml=dumps_toml(spec), columns=columns(task, self.params, has_test=test), fresh=fresh,
            manifest={"experiment": self.name, "description": description, "swept": self.params, "task": task,
                      "engine": "script"},
        )
        self.out = out

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()
        if self.live is not None:
            self.live.tick(final=True)

    def run(self, *, seed: int, **params: Any) -> ScriptRun:
        missing = sorted(set(self.params) - set(params))
        extra = sorted(set(params) - set(self.params))
        if missing or extra:
            raise InputError(f"Invalid value for the run's parameters: expected {self.params}. "
                             f"Received: {sorted(params)} (missing {missing}, unknown {extra})")
        return ScriptRun(self.name, seed, {p: params[p] for p in self.params})

    def done(self, *, seed: int, **params: Any) -> bool:
        """Whether this run is already recorded (a `failed` one is not: train it again)."""
        return self.run(seed=seed, **params).run_id in self.store.done()

    def record(self, model: Any, logger: Any, *, seed: int, stopper: Any = None, test: tuple | None = None,
               duration_s: float | None = None, **params: Any) -> RunResult:
        """Records one run: its history (from the `HonestLogger`), the summary of the epoch
        whose weights it kept, its final kernels' histograms and, with `test=(x, y)`, the test
        columns.

        Args:
            model: the trained Keras model (with the weights it ended with).
            logger: the `HonestLogger` that trained with it.
            seed: the run's seed.
            stopper: Keras's `EarlyStopping`, if the run used one: its best epoch is the run's
                best, and `kept_epoch` says whether it restored its weights. Defaults to `None`.
            test: `(x, y)` of a test set. Defaults to `None`.
            duration_s: the run's wall time. Defaults to the sum of its epochs' times.
            **params: the value of each of `params`.

        Returns:
            The `RunResult` written.
        """
        from mlreg.backend import import_keras
        from mlreg.callbacks import evaluate
        from mlreg.regularizers import kernels

        run = self.run(seed=seed, **params)
        known = set(columns(self.task, self.params)[HISTORY])
        history = [{k: v for k, v in row.items() if k in known} | {"run_id": run.run_id} for row in logger.rows]
        test_values = None
        if test is not None:
            values = evaluate(model, *test)
            test_values = {"data_loss": values["data_loss"], **{m: values.get(m) for m in metric_names(self.task)}}
        result = finish(
            run, engine="script", backend=import_keras().backend.backend(), task=self.task, history=history,
            monitor=getattr(stopper, "monitor", "val_data_loss"),
            best=stopper.best_epoch if stopper is not None else None,
            restored=bool(stopper is not None and stopper.restore_best_weights),
            stopped=bool(stopper is not None and stopper.stopped_epoch > 0),
            kernels=kernels(model), test=test_values, n_params=int(model.count_params()),
            duration_s=duration_s if duration_s is not None else sum(r.get("epoch_time_s") or 0 for r in history),
        )
        self.store.append(result)
        if self.live is not None:
            self.live.tick()
        return result


# -- Keras's CSVLogger files ------------------------------------------------------------------
HONEST = ["penalty", "train_data_loss", "val_data_loss"]


def import_csv_logs(
    files: Sequence[str | Path], out: str | Path, *, params: dict[str, Any] | None = None,
    pattern: str | None = None, task: str = "single_label", name: str | None = None,
) -> tuple[int, list[str]]:
    """Brings the per-run CSV files of Keras's `CSVLogger` into a results directory.

    Each file is a run: its `epoch` (0-based there), `loss`, `val_loss` and metric columns
    become `history.csv` rows; the honest columns (`penalty`, `train_data_loss`,
    `val_data_loss`, `train_<metric>`, weight statistics) stay empty, since Keras's losses
    include the penalty. The best epoch is the lowest `val_loss`, as Keras's `EarlyStopping`
    would have chosen it; the run's `val_<metric>_at_best` is filled (a metric carries no
    penalty), `best_val_data_loss` is not.

    Args:
        files: the CSV files, one per run.
        out: the results directory (created, or resumed: files already imported are skipped).
        params: settings every file shares, e.g. `{"l2": 0.001, "seed": 0}`. Defaults to `None`.
        pattern: settings taken from each file's name, e.g. `"run_l2={l2}_seed={seed}.csv"`
            (`{seed}` is the seed; values that look like numbers become numbers).
        task: decides the metric column (`accuracy` or `mae`). Defaults to `"single_label"`.
        name: the experiment's name. Defaults to the directory's name.

    Returns:
        How many runs were imported, and the honest columns they lack.

    Raises:
        ValueError: a file that does not match the pattern, or lacks `epoch` and `loss`.
    """
    import pandas as pd

    shared = {k: _number(v) if isinstance(v, str) else v for k, v in (params or {}).items()}
    per_file = {Path(f): shared | _from_name(Path(f), pattern) for f in files}
    keys = sorted({k for p in per_file.values() for k in p} - {"seed"})
    metric = metric_names(task)[0]
    lacks = [*HONEST, f"train_{metric}", "weight_l1", "weight_l2", "sparsity"]
    imported = 0
    with Recorder(out, params=keys, task=task, name=name) as rec:
        for path, settings in per_file.items():
            settings = {k: settings.get(k, "") for k in keys} | {"seed": int(settings.get("seed", 0))}
            if rec.done(**settings):
                continue
            frame = pd.read_csv(path)
            if not {"epoch", "loss"} <= set(frame.columns):
                raise InputError(f"{path}: not a CSVLogger file (it needs `epoch` and `loss` columns; it has "
                                 f"{list(frame.columns)})")
            run = rec.run(**settings)
            rec.store.append(_imported(run, frame, rec.task, metric))
            imported += 1
    return imported, lacks


def _imported(run: ScriptRun, frame: Any, task: str, metric: str) -> RunResult:
    history = []
    for _, row in frame.iterrows():
        history.append({"run_id": run.run_id, "epoch": int(row["epoch"]) + 1, "loss": row["loss"],
                        "val_loss": row.get("val_loss"), metric: row.get(metric),
                        f"val_{metric}": row.get(f"val_{metric}"),
                        "lr": row.get("learning_rate", row.get("lr"))})
    history = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in history]
    return finish(run, engine="imported", backend=None, task=task, history=history, best=None,  # type: ignore[arg-type]
                  restored=False, stopped=False, kernels=None, test=None, n_params=None, duration_s=None,
                  monitor="val_loss")


def _from_name(path: Path, pattern: str | None) -> dict[str, Any]:
    if pattern is None:
        return {}
    fields = re.findall(r"\{(\w+)\}", pattern)
    regex = "".join(f"(?P<{p[1:-1]}>.+?)" if re.fullmatch(r"\{\w+\}", p) else re.escape(p)
                    for p in re.split(r"(\{\w+\})", pattern))
    match = re.fullmatch(regex, path.name)
    if match is None:
        raise InputError(f"Invalid value for `pattern`: {path.name} does not match it. Received: pattern={pattern!r}")
    return {k: _number(match[k]) for k in fields}


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text

