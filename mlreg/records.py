"""What a finished run *is*, shared by every engine and by the store. No TensorFlow here.

- `RunResult`: the immutable record of one run (its `runs.csv` row, its `history.csv`
  rows, its `weights.csv` rows) with a `Status`.
- `columns`: the header of each CSV file for a task.
- `finish`: the `runs.csv` row computed from a history, the index of the epoch whose
  weights were kept, and the kept kernels, the same way whichever engine trained the run.
- `kernel_stats`, `weight_histograms`: weight statistics from kernel *arrays*.

Engines fill the honest columns of DESIGN.md: `loss` (the training objective as the engine
reports it), `penalty`, `train_data_loss` and `train_<metric>` (training set, inference
mode, no penalty), `val_data_loss`, `val_loss` (= `val_data_loss + penalty`), weight
statistics, `lr`, `epoch_time_s`.
"""

from __future__ import annotations

import math
import os
import re
import traceback
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from mlreg.spec import RunSpec

Status = Literal["ok", "diverged", "failed", "pruned", "paused"]
STATUSES: tuple[str, ...] = ("ok", "diverged", "failed", "pruned")
"""The statuses `runs.csv` holds (`paused` is a search's, never written)."""
"""`ok`, `diverged` and `failed` end a run of any plan; a search (`mlreg.search`) stops the runs
of the settings it drops as `pruned`, with the epoch (`pruned_at`). `paused` is never written:
it is a run that stopped at a rung of a search and goes on when the search says so."""

RUNS, HISTORY, WEIGHTS, TIMINGS = "runs.csv", "history.csv", "weights.csv", "timings.csv"
WEIGHT_COLUMNS = ["run_id", "layer", "bin_left", "bin_right", "count"]
TIMING_COLUMNS = ["run_id", "epoch", "seconds"]
TIMED = ("duration_s", "epoch_time_s")
"""Wall times a run's record holds (`duration_s` in its summary, `epoch_time_s` in each epoch's
row): the store writes them to `timings.csv` (an epoch's row, and the whole run's with no
epoch), not to `runs.csv` and `history.csv`, so that the same sweep run twice writes the same
bytes there; `load_results` puts them back in their columns."""
WEIGHT_STATS = ["weight_l1", "weight_l2", "sparsity"]

SPARSE_BELOW = 1e-3
"""A kernel weight with |w| below this counts as zero in `sparsity`."""

HIST_EDGES = np.concatenate([[-np.inf], np.linspace(-1.0, 1.0, 201), [np.inf]])
"""Fixed bins of the final-weight histograms: width 0.01 on [-1, 1], plus two overflow
bins, the same for every run so that settings can be compared bin for bin."""


@dataclass(frozen=True)
class RunResult:
    """A finished run: a plain, immutable record.

    Attributes:
        run_id: the run's stable id.
        status: see `Status` (its one home: `row()` writes it into `runs.csv`).
        summary: the rest of the run's `runs.csv` row.
        history: its `history.csv` rows, one per epoch.
        weights: its `weights.csv` rows (histogram bins with a count > 0).
        traceback: for a `failed` run, the whole traceback (its `error` column holds one
            short line); else empty.
        state: for a `paused` run, what its engine needs to go on (see `engines.Pack`).
        note: a line for the driver to say once (an engine that handed the run to another);
            never written.
    """

    run_id: str
    status: Status
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    weights: list[dict[str, Any]] = field(default_factory=list)
    traceback: str = ""
    state: Any = None
    note: str = ""

    def row(self) -> dict[str, Any]:
        """The run's `runs.csv` row: its id, status and summary, its wall time aside (`TIMED`)."""
        summary = {k: v for k, v in self.summary.items() if k not in TIMED}
        return {"run_id": self.run_id, "status": self.status, **summary}

    def history_rows(self) -> list[dict[str, Any]]:
        """The run's `history.csv` rows, the epochs' wall times aside (`TIMED`)."""
        return [{k: v for k, v in row.items() if k not in TIMED} for row in self.history]

    def timing_rows(self) -> list[dict[str, Any]]:
        """The run's `timings.csv` rows: each epoch's wall time, then the whole run's (no epoch)."""
        rows = [{"run_id": self.run_id, "epoch": row["epoch"], "seconds": row["epoch_time_s"]}
                for row in self.history if row.get("epoch_time_s") is not None]
        whole = self.summary.get("duration_s")
        return rows + ([{"run_id": self.run_id, "epoch": "", "seconds": whole}] if whole is not None else [])


def metric_names(task: str) -> list[str]:
    """The metric columns of a task (`accuracy` or `mae`, see `mlreg.tasks.TABLE`)."""
    from mlreg.tasks import TABLE

    return [TABLE[task].metric]


def columns(task: str, params: list[str], *, has_test: bool = False,
            resampling: Sequence[str] = (), search: bool = False) -> dict[str, list[str]]:
    """The header of each CSV file for a task, the parameter columns of its runs and, with
    cross-validation or repeated splits, the `split` / `fold` columns; a search's runs have
    `pruned_at`, the epoch at which a `pruned` run stopped."""
    metrics = metric_names(task)
    history = ["run_id", "epoch", *monitors(task), *WEIGHT_STATS, "lr"]
    runs = ["run_id", "status", "seed", *resampling, *params, "engine", "backend", "n_train", "n_val", "best_epoch",
            "kept_epoch", "stopped_epoch", "epochs_run", *(["pruned_at"] if search else []),
            "best_val_data_loss", "train_data_loss_at_best", "gap", "penalty_at_best"]
    runs += [c for m in metrics for c in (f"val_{m}_at_best", f"train_{m}_at_best")]
    runs += ["final_val_data_loss", *WEIGHT_STATS]
    if has_test:
        runs += ["test_data_loss", *(f"test_{m}" for m in metrics)]
    runs += ["n_params", "error"]
    return {RUNS: runs, HISTORY: history, WEIGHTS: WEIGHT_COLUMNS, TIMINGS: TIMING_COLUMNS}


def monitors(task: str) -> list[str]:
    """The history columns early stopping can watch for a task: the losses and the metrics."""
    metrics = metric_names(task)
    return ["loss", "penalty", "train_data_loss", "val_data_loss", "val_loss",
            *(c for m in metrics for c in (m, f"val_{m}", f"train_{m}"))]


def kernel_stats(kernels: Sequence[np.ndarray]) -> dict[str, float]:
    """`weight_l1` (sum |w|), `weight_l2` (sum w^2) and `sparsity` over all kernels."""
    w = np.concatenate([np.ravel(k) for k in kernels]) if len(kernels) else np.zeros(0)
    return {
        "weight_l1": float(np.abs(w).sum()),
        "weight_l2": float(np.square(w, dtype="float64").sum()),
        "sparsity": float(np.mean(np.abs(w) < SPARSE_BELOW)) if w.size else 0.0,
    }


def weight_histograms(run_id: str, kernels: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rows `run_id, layer, bin_left, bin_right, count` of final kernels (fixed bins),
    one layer after another in the order given; empty bins are left out."""
    rows = []
    for layer, kernel in kernels.items():
        counts, _ = np.histogram(np.ravel(kernel), bins=HIST_EDGES)
        for i in np.flatnonzero(counts):
            rows.append({"run_id": run_id, "layer": layer, "bin_left": HIST_EDGES[i],
                         "bin_right": HIST_EDGES[i + 1], "count": int(counts[i])})
    return rows


def is_finite(*values: Any) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


DIVERGES = ("loss", "train_data_loss", "val_data_loss", "val_loss")
"""The history columns a diverged run has a NaN or infinite value in (those a run has: runs
imported from Keras's CSVLogger files have `loss` and `val_loss` only)."""


def diverged_at(row: Mapping[str, Any]) -> bool:
    """Whether an epoch's row shows a diverged run: a loss it has is NaN or infinite, or it has
    no training loss at all."""
    return row.get("loss") is None or not is_finite(*(row[c] for c in DIVERGES if row.get(c) is not None))


def base_summary(run: RunSpec, engine: str, backend: str | None) -> dict[str, Any]:
    """The columns every `runs.csv` row starts with: id, seed, split and fold, parameters, the
    engine and the Keras backend that trained it."""
    return {"run_id": run.run_id, "seed": run.seed, **run.resampling, **run.params_for_csv(), "engine": engine,
            "backend": backend}


def finish(
    run: RunSpec,
    *,
    engine: str,
    backend: str | None,
    task: str,
    history: list[dict[str, Any]],
    best: int | None,
    restored: bool,
    stopped: bool,
    kernels: Mapping[str, np.ndarray] | None,
    test: Mapping[str, float] | None,
    n_params: int | None,
    duration_s: float | None,
    n_train: int | None = None,
    n_val: int | None = None,
    monitor: str | None = None,
) -> RunResult:
    """The record of a run that trained to its end, from what any engine knows.

    Args:
        run: the run.
        engine: the engine that trained it (`keras`, `fused`).
        backend: the Keras backend that trained it (`jax`, `tensorflow`).
        task: the data's task (decides the metric columns).
        history: its rows, one per epoch trained.
        best: index into `history` of early stopping's best epoch, or `None` (early stopping
            off) to take the best epoch by the monitored column.
        restored: the model ends with the best epoch's weights (early stopping restored
            them); else with the last epoch's. `kept_epoch` says which, and the weight
            statistics, histograms and test columns describe that model.
        stopped: early stopping ended the run before `epochs`.
        kernels: the kept model's kernels by layer name (`None` for runs imported without them).
        test: the test-set values (`data_loss` and the metrics), when there is a test set.
        n_params: the model's parameter count.
        duration_s: wall time spent on the run.
        n_train, n_val: the sizes of its training and validation sets.
        monitor: the column that decides the best epoch when `best` is `None`. Defaults to
            the run's `early_stopping.monitor`.

    Columns a history lacks (runs imported from Keras's CSVLogger files have no honest
    columns) stay empty; nothing is invented.
    """
    summary = base_summary(run, engine, backend) | {"n_train": n_train, "n_val": n_val, "epochs_run": len(history),
                                           "stopped_epoch": len(history) if stopped else None}
    if not history or diverged_at(history[-1]):
        summary |= {"error": f"non-finite loss at epoch {len(history)}", "n_params": n_params,
                    "duration_s": duration_s}
        return RunResult(run.run_id, "diverged", summary, history, [])
    if best is None:  # the best epoch by the monitored column, in its direction
        monitor = monitor or run.early_stopping.monitor
        sign = -1.0 if monitor_mode(monitor) == "max" else 1.0
        valued = [i for i in range(len(history)) if history[i].get(monitor) is not None] or [len(history) - 1]
        best = min(valued, key=lambda i: sign * (history[i].get(monitor) or 0.0))
    row = history[best]
    val, train = row.get("val_data_loss"), row.get("train_data_loss")
    summary |= {
        "best_epoch": row["epoch"],
        "kept_epoch": row["epoch"] if restored else len(history),
        "best_val_data_loss": val,
        "train_data_loss_at_best": train,
        "gap": val - train if val is not None and train is not None else None,
        "penalty_at_best": row.get("penalty"),
    }
    for m in metric_names(task):
        for prefix in ("val_", "train_"):
            summary[f"{prefix}{m}_at_best"] = row.get(f"{prefix}{m}")
    summary["final_val_data_loss"] = (row if restored else history[-1]).get("val_data_loss")  # the kept model's
    summary |= kernel_stats(list(kernels.values())) if kernels else {}
    if test is not None:
        summary["test_data_loss"] = test["data_loss"]
        summary |= {f"test_{m}": test.get(m) for m in metric_names(task)}
    summary |= {"n_params": n_params, "duration_s": duration_s}
    return RunResult(run.run_id, "ok", summary, history, weight_histograms(run.run_id, kernels or {}))


def failed(run: RunSpec, error: BaseException | str, *, engine: str, backend: str | None,
           duration_s: float) -> RunResult:
    """The record of a run that raised: status `failed`, its `error` one short line (see
    `error_line`), the whole traceback kept beside it."""
    summary = base_summary(run, engine, backend) | {"epochs_run": 0, "duration_s": duration_s,
                                                    "error": error_line(error)}
    text = "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else error
    return RunResult(run.run_id, "failed", summary, traceback=text)


ERROR_CHARS = 200
"""An error message is cut to this many characters in `runs.csv` and on the console."""

_PYTHON, _MLREG = os.path.dirname(os.__file__), os.path.dirname(os.path.abspath(__file__))
_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_KERAS_CALL = re.compile(r"Exception encountered when calling ([\w.]+)\.call\(\)\.\s*\x1b\[1m(.*?)\x1b\[0m", re.S)


def _users(filename: str) -> bool:
    """Whether a traceback frame is in the user's own code: not Python's, mlreg's, an installed
    package's, or code a backend generated (TensorFlow's autograph writes temporary files)."""
    return not (filename.startswith((_PYTHON, _MLREG, "<")) or "__autograph_generated" in filename
                or any(part in filename for part in ("site-packages", "dist-packages")))


def error_line(error: BaseException | str) -> str:
    """One line for an error: its type, its message (without terminal escape codes, and for an
    error Keras caught in a layer's call, the layer's message) cut to `ERROR_CHARS` characters,
    and where it arose: the file and line of the user's own code (the innermost frame outside
    mlreg, Python, installed packages and generated code), e.g. `RuntimeError: no data (at
    my_models.py:12)`; else, when it arose in mlreg, `(in mlreg's engine, fused/program.py:88)`."""
    if isinstance(error, str):
        return " ".join(_ESCAPES.sub("", error).split())
    message = str(error)
    call = _KERAS_CALL.search(message)
    if call:
        message = f"{call.group(2)} (in {call.group(1)}.call)"
    text = " ".join(_ESCAPES.sub("", f"{type(error).__name__}: {message}").split())
    if len(text) > ERROR_CHARS:
        text = text[: ERROR_CHARS - 3].rstrip() + "..."
    frames = traceback.extract_tb(error.__traceback__)
    users = [f for f in frames if _users(f.filename)]
    if users:
        where = os.path.relpath(users[-1].filename) if users[-1].filename.startswith(os.getcwd()) \
            else users[-1].filename
        return text + f" (at {where}:{users[-1].lineno})"
    ours = [f for f in frames if f.filename.startswith(_MLREG)]
    if ours:
        where = os.path.relpath(ours[-1].filename, _MLREG)
        whose = "mlreg's engine" if where.startswith("engines") else "mlreg"
        text += f" (in {whose}, {where.removeprefix('engines' + os.sep)}:{ours[-1].lineno})"
    return text


HIGHER_IS_BETTER = ("accuracy", "auc", "precision", "recall", "r2")


def higher_is_better(column: str) -> bool:
    """Whether larger values of a column are better (accuracy-like names, not losses)."""
    return any(word in column for word in HIGHER_IS_BETTER) and "loss" not in column


RANKED_BY = ("best_val_data_loss", "val_accuracy_at_best", "val_mae_at_best")
"""What settings are ranked by when no metric is named: the honest validation loss, else (runs
imported from Keras's CSVLogger files lack the honest columns) the validation metric at the
best epoch: the first of these a results directory has values of."""


def default_metric(columns_with_values: Collection[str]) -> str:
    """The column settings are ranked by, among those a results directory has values of."""
    return next((m for m in RANKED_BY if m in columns_with_values), RANKED_BY[0])


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """The direction early stopping watches a history column in: `max` for accuracy-like columns."""
    return "max" if higher_is_better(monitor) else "min"
