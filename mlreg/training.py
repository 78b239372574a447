"""One run, start to end: the `keras` engine.

Honest loss accounting (see DESIGN.md): besides Keras's own `loss` (data +
penalty, Dropout on, a running mean over the epoch) and `val_loss` (data +
penalty), every epoch records

- `penalty`: the regularization penalty at the end of the epoch,
- `train_data_loss` and `train_<metric>`: the training set in inference mode
  (no Dropout), without the penalty,
- `val_data_loss`: the validation set without the penalty (a compiled metric,
  so Keras computes it in its own validation pass),
- `weight_l1`, `weight_l2`, `sparsity` over all kernels, `lr`, `epoch_time_s`.

Early stopping watches `val_data_loss` and restores the best weights. A
non-finite loss stops the run as `diverged`; an exception makes it `failed`.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

    from mlreg.data import Dataset
    from mlreg.spec import RunSpec

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
        status: `ok`, `diverged` or `failed`.
        summary: the run's `runs.csv` row.
        history: its `history.csv` rows, one per epoch.
        weights: its `weights.csv` rows (histogram bins with a count > 0).
    """

    run_id: str
    status: str
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    weights: list[dict[str, Any]] = field(default_factory=list)


def import_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and Keras once, with TensorFlow's C++ log noise silenced.

    TensorFlow 2.21 prints absl and CUDA-probe lines while it is imported, whatever
    `TF_CPP_MIN_LOG_LEVEL` says, so file descriptor 2 points at /dev/null for the
    import. Python exceptions still propagate. `verbose=True` keeps everything.
    """
    if verbose or "tensorflow" in sys.modules:
        import keras  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def kernel_stats(model: keras.Model) -> dict[str, float]:
    """`weight_l1` (sum |w|), `weight_l2` (sum w^2) and `sparsity` over all kernels."""
    w = _kernels(model)
    return {
        "weight_l1": float(np.abs(w).sum()),
        "weight_l2": float(np.square(w, dtype="float64").sum()),
        "sparsity": float(np.mean(np.abs(w) < SPARSE_BELOW)) if w.size else 0.0,
    }


def _kernels(model: keras.Model, layer: Any = None) -> np.ndarray:
    from mlreg.regularizers import kernel_layers

    layers = [layer] if layer is not None else kernel_layers(model)
    return np.concatenate([np.ravel(lay.kernel.numpy()) for lay in layers]) if layers else np.zeros(0)


def weight_histograms(model: keras.Model, run_id: str) -> list[dict[str, Any]]:
    """Rows `run_id, layer, bin_left, bin_right, count` of the final kernels (fixed bins)."""
    from mlreg.regularizers import kernel_layers

    rows = []
    for layer in kernel_layers(model):
        counts, _ = np.histogram(_kernels(model, layer), bins=HIST_EDGES)
        for i in np.flatnonzero(counts):
            rows.append({"run_id": run_id, "layer": layer.name, "bin_left": HIST_EDGES[i],
                         "bin_right": HIST_EDGES[i + 1], "count": int(counts[i])})
    return rows


@functools.cache
def _epoch_logger_class() -> type:
    import keras

    class EpochLogger(keras.callbacks.Callback):
        """Adds the honest columns to each epoch's logs and keeps the rows.

        Runs before EarlyStopping, so `train_data_loss` can be monitored too. A
        non-finite loss stops training and marks the run diverged.
        """

        def __init__(self, run_id: str, data: Dataset, batch_size: int) -> None:
            from mlreg.models import metric_names

            super().__init__()
            self.run_id, self.x, self.y, self.batch_size = run_id, data.x_train, data.y_train, batch_size
            self.metrics = metric_names(data.task)

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.rows: list[dict[str, Any]] = []
            self.diverged_at: int | None = None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs if logs is not None else {}
            train = self.model.evaluate(
                self.x, self.y, batch_size=self.batch_size, verbose=0, return_dict=True
            )
            row: dict[str, Any] = {
                "run_id": self.run_id,
                "epoch": epoch + 1,
                "loss": logs.get("loss"),
                "penalty": float(sum(float(x) for x in self.model.losses)),
                "train_data_loss": train["data_loss"],
                "val_data_loss": logs.get("val_data_loss"),
                "val_loss": logs.get("val_loss"),
            }
            for m in self.metrics:
                row |= {m: logs.get(m), f"val_{m}": logs.get(f"val_{m}"), f"train_{m}": train.get(m)}
            row |= kernel_stats(self.model)
            row["lr"] = float(np.asarray(self.model.optimizer.learning_rate))
            row["epoch_time_s"] = time.perf_counter() - self._t0
            logs["train_data_loss"] = row["train_data_loss"]
            logs["penalty"] = row["penalty"]
            self.rows.append(row)
            watched = (row["loss"], row["train_data_loss"], row["val_data_loss"])
            if not all(v is not None and math.isfinite(v) for v in watched):
                self.diverged_at = epoch + 1
                self.model.stop_training = True

    return EpochLogger


def columns(task: str, params: list[str], *, has_test: bool = False) -> dict[str, list[str]]:
    """The header of each CSV file for a task and the parameter columns of its runs."""
    from mlreg.models import metric_names
    from mlreg.store import HISTORY, RUNS, WEIGHT_COLUMNS, WEIGHTS

    metrics = metric_names(task)
    weight_stats = ["weight_l1", "weight_l2", "sparsity"]
    history = ["run_id", "epoch", "loss", "penalty", "train_data_loss", "val_data_loss", "val_loss"]
    history += [c for m in metrics for c in (m, f"val_{m}", f"train_{m}")]
    history += [*weight_stats, "lr", "epoch_time_s"]
    runs = ["run_id", "status", "seed", *params, "best_epoch", "stopped_epoch", "epochs_run",
            "best_val_data_loss", "train_data_loss_at_best", "gap", "penalty_at_best"]
    runs += [c for m in metrics for c in (f"val_{m}_at_best", f"train_{m}_at_best")]
    runs += ["final_val_data_loss", *weight_stats]
    if has_test:
        runs += ["test_data_loss", *(f"test_{m}" for m in metrics)]
    runs += ["n_params", "duration_s", "error"]
    return {RUNS: runs, HISTORY: history, WEIGHTS: WEIGHT_COLUMNS}


def train_run(run: RunSpec, data: Dataset) -> RunResult:
    """Trains one run and returns its record. Exceptions propagate (see `execute`)."""
    import keras

    from mlreg.models import build_model, compile_model, metric_names

    t0 = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(run.seed)
    model = build_model(run, data)
    compile_model(model, data.task, run.training)
    tr, es = run.training, run.early_stopping
    logger = _epoch_logger_class()(run.run_id, data, max(tr.batch_size, 256))
    callbacks: list[Any] = [logger]
    stopper = None
    if es.enabled:
        stopper = keras.callbacks.EarlyStopping(
            monitor=es.monitor, patience=es.patience, min_delta=es.min_delta, mode="min",
            restore_best_weights=es.restore_best_weights,
        )
        callbacks.append(stopper)
    model.fit(
        data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
        epochs=tr.epochs, batch_size=tr.batch_size, shuffle=True, verbose=0, callbacks=callbacks,
    )
    history = logger.rows
    if es.enabled and es.monitor not in (history[0] if history else {}):
        raise ValueError(f"Invalid value for `early_stopping.monitor`: no such history column. "
                         f"Received: monitor={es.monitor!r}; columns: {sorted(history[0])}")
    status = "diverged" if logger.diverged_at else "ok"
    summary: dict[str, Any] = {"run_id": run.run_id, "status": status, "seed": run.seed, **run.params()}
    summary["epochs_run"] = len(history)
    summary["stopped_epoch"] = (
        len(history) if stopper is not None and stopper.stopped_epoch > 0 else None
    )
    if status == "ok":
        if stopper is not None and stopper.best_epoch is not None:
            best = history[stopper.best_epoch]
        else:
            best = min(history, key=lambda r: r[es.monitor])
        summary["best_epoch"] = best["epoch"]
        summary["best_val_data_loss"] = best["val_data_loss"]
        summary["train_data_loss_at_best"] = best["train_data_loss"]
        summary["gap"] = best["val_data_loss"] - best["train_data_loss"]
        summary["penalty_at_best"] = best["penalty"]
        for m in metric_names(data.task):
            for prefix in ("val_", "train_"):
                summary[f"{prefix}{m}_at_best"] = best.get(f"{prefix}{m}")
        summary["final_val_data_loss"] = history[-1]["val_data_loss"]
        summary |= kernel_stats(model)
        if data.x_test is not None:
            test = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
            summary["test_data_loss"] = test["data_loss"]
            for m in metric_names(data.task):
                summary[f"test_{m}"] = test.get(m)
        weights = weight_histograms(model, run.run_id)
    else:
        summary["error"] = f"non-finite loss at epoch {logger.diverged_at}"
        weights = []
    summary["n_params"] = int(model.count_params())
    summary["duration_s"] = time.perf_counter() - t0
    return RunResult(run.run_id, status, summary, history, weights)


def execute(run: RunSpec, data: Dataset) -> RunResult:
    """Trains one run; an exception becomes a `failed` record carrying its message."""
    t0 = time.perf_counter()
    try:
        return train_run(run, data)
    except Exception as e:  # noqa: BLE001 - a failed run is a status, the sweep goes on
        summary = {"run_id": run.run_id, "status": "failed", "seed": run.seed, **run.params(),
                   "epochs_run": 0, "duration_s": time.perf_counter() - t0,
                   "error": " ".join(f"{type(e).__name__}: {e}".split())}
        return RunResult(run.run_id, "failed", summary)
