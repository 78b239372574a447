"""The `keras` engine: one `model.fit` per run, any Keras model; the exact reference.

Honest loss accounting (see DESIGN.md): besides Keras's own `loss` (data +
penalty, Dropout on, a running mean over the epoch) and `val_loss` (data +
penalty), every epoch records

- `penalty`: the regularization penalty at the end of the epoch,
- `train_data_loss` and `train_<metric>`: the training set in inference mode
  (no Dropout), without the penalty,
- `val_data_loss`: the validation set without the penalty (a compiled metric,
  so Keras computes it in its own validation pass),
- `weight_l1`, `weight_l2`, `sparsity` over all kernels, `lr`, `epoch_time_s`.

Early stopping is Keras's own `EarlyStopping` on `early_stopping.monitor`, restoring the
best weights. A non-finite loss stops the run as `diverged`; an exception makes it `failed`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.engines import STOP, import_tensorflow
from mlreg.records import RunResult, diverged_at, failed, finish, kernel_stats, monitor_mode
from mlreg.regularizers import kernel_layers

import_tensorflow()  # before Keras, so that TensorFlow's import-time log lines stay silent

import keras  # noqa: E402

if TYPE_CHECKING:
    from mlreg.data import Dataset
    from mlreg.spec import RunSpec

NAME = "keras"


def kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """The kernels of a model by layer name, as arrays."""
    return {layer.name: layer.kernel.numpy() for layer in kernel_layers(model)}


class HonestLogger(keras.callbacks.Callback):
    """The honest columns of DESIGN.md for any `model.fit`, in Keras's logs and `History`.

    At each epoch's end: `penalty` (the regularization losses of the model), `train_data_loss`
    and `train_<metric>` (one evaluation of the training set in inference mode, Dropout off,
    without the penalty), `val_data_loss` (Keras's `val_loss` less the penalty, or the
    compiled `data_loss` metric where there is one: no extra pass), and `weight_l1`,
    `weight_l2`, `sparsity` over all kernels. They go into the epoch's `logs`, so
    `History` records them and Keras's own `EarlyStopping` can monitor `val_data_loss`; put
    this callback before it. The same rows are kept in `rows` (the columns of history.csv).
    This is what mlreg's keras engine uses: it costs one inference pass over the training
    set per epoch.

    Args:
        x: the training inputs.
        y: the training targets.
        batch_size: batch size of the evaluation. Defaults to `256`.
        run_id: written in each row. Defaults to `""`.
        stop_on_divergence: stop training when a loss turns NaN or infinite (`diverged` is
            set). Defaults to `True`.

    Example:
        >>> logger = HonestLogger(x_train, y_train)  # doctest: +SKIP
        >>> stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", mode="min")  # doctest: +SKIP
        >>> model.fit(x_train, y_train, validation_data=(x_val, y_val), callbacks=[logger, stop])  # doctest: +SKIP
    """

    def __init__(self, x: Any, y: Any, *, batch_size: int = 256, run_id: str = "",
                 stop_on_divergence: bool = True) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.run_id = x, y, batch_size, run_id
        self.stop_on_divergence = stop_on_divergence
        self.rows: list[dict[str, Any]] = []
        self.diverged = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.rows = []
        self.diverged = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        penalty = float(sum(float(x) for x in self.model.losses))
        train = self.model.evaluate(self.x, self.y, batch_size=self.batch_size, verbose=0, return_dict=True)
        val_data_loss = logs.get("val_data_loss")
        if val_data_loss is None and logs.get("val_loss") is not None:
            val_data_loss = float(logs["val_loss"]) - penalty
        row: dict[str, Any] = {
            "run_id": self.run_id,
            "epoch": epoch + 1,
            "loss": logs.get("loss"),
            "penalty": penalty,
            "train_data_loss": train["data_loss"] if "data_loss" in train else train["loss"] - penalty,
            "val_data_loss": val_data_loss,
            "val_loss": logs.get("val_loss"),
        }
        for m in (k for k in train if k not in ("loss", "data_loss")):
            row |= {m: logs.get(m), f"val_{m}": logs.get(f"val_{m}"), f"train_{m}": train[m]}
        row |= kernel_stats(list(kernels(self.model).values()))
        row["lr"] = float(np.asarray(self.model.optimizer.learning_rate))
        row["epoch_time_s"] = time.perf_counter() - self._t0
        logs |= {k: v for k, v in row.items() if k not in logs and k not in ("run_id", "epoch", "epoch_time_s")}
        self.rows.append(row)
        if diverged_at(row):
            self.diverged = True
            if self.stop_on_divergence:
                self.model.stop_training = True


class StopOnSignal(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` after the batch during which the sweep was asked to stop."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if STOP.is_set():
            raise KeyboardInterrupt


def train_run(run: RunSpec, data: Dataset) -> RunResult:
    """Trains one run with `model.fit` and returns its record. Exceptions propagate."""
    from mlreg.models import build_model, compile_model

    t0 = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(run.seed)
    model = build_model(run, data)
    compile_model(model, data.task, run.training)
    tr, es = run.training, run.early_stopping
    logger = HonestLogger(data.x_train, data.y_train, batch_size=max(tr.batch_size, 256), run_id=run.run_id)
    callbacks: list[Any] = [StopOnSignal(), logger]
    stopper = None
    if es.enabled:
        stopper = keras.callbacks.EarlyStopping(
            monitor=es.monitor, patience=es.patience, min_delta=es.min_delta, mode=monitor_mode(es.monitor),
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
    test = None
    if data.x_test is not None and not logger.diverged:
        test = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    return finish(
        run, engine=NAME, task=data.task, history=history,
        best=stopper.best_epoch if stopper is not None else None,
        restored=stopper is not None and es.restore_best_weights,
        stopped=stopper is not None and stopper.stopped_epoch > 0,
        kernels=kernels(model), test=test, n_params=int(model.count_params()),
        duration_s=time.perf_counter() - t0, n_train=len(data.x_train), n_val=len(data.x_val),
    )


def execute(run: RunSpec, data: Dataset) -> RunResult:
    """Trains one run; an exception becomes a `failed` record carrying its message."""
    t0 = time.perf_counter()
    try:
        return train_run(run, data)
    except Exception as e:  # noqa: BLE001 - a failed run is a status, the sweep goes on
        return failed(run, e, engine=NAME, duration_s=time.perf_counter() - t0)


def train_pack(runs: list[RunSpec], data: Dataset) -> Iterator[RunResult]:
    """The engine's pack interface: each run in turn, yielded as it ends."""
    for run in runs:
        yield execute(run, data)
