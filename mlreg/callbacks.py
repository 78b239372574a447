"""Callbacks a user can put in their own `model.fit`; mlreg's keras engine uses them too.

- `HonestLogger`: the honest columns of DESIGN.md (penalty, data losses without the penalty
  and in inference mode, weight statistics) in Keras's logs and `History`.
- `StopOnSignal`: stops between batches when an event is set (Ctrl-C, SIGTERM).

Importing this module imports Keras (on the backend `mlreg.backend` chooses).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from mlreg.backend import import_keras
from mlreg.records import diverged_at, kernel_stats
from mlreg.regularizers import kernels

keras = import_keras()  # on the chosen backend, TensorFlow's import-time log lines silenced


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
        train = evaluate(self.model, self.x, self.y, batch_size=self.batch_size)
        penalty = train.pop("penalty")
        val_data_loss = logs.get("val_data_loss")
        if val_data_loss is None and logs.get("val_loss") is not None:
            val_data_loss = float(logs["val_loss"]) - penalty
        row: dict[str, Any] = {
            "run_id": self.run_id,
            "epoch": epoch + 1,
            "loss": logs.get("loss"),
            "penalty": penalty,
            "train_data_loss": train["data_loss"],
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


def evaluate(model: Any, x: Any, y: Any, *, batch_size: int | None = None) -> dict[str, float]:
    """`model.evaluate`'s values with the honest two beside them: `data_loss` and `penalty`.

    With a compiled `data_loss` metric (mlreg compiles one), the penalty is what Keras's `loss`
    adds to it (to `objective`, the smoothed data loss, where labels are smoothed): every
    regularizer of the model's variables (kernel, bias, embeddings,
    recurrent, ...), its activity regularizers as their mean over these samples, and what it
    adds with `add_loss`; a model with no regularizer whose difference is float32 rounding
    has a penalty of exactly 0. Without the metric, the penalty is the variables' regularizers
    at the current weights, and `data_loss` is Keras's `loss` less it."""
    values = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    if "data_loss" not in values:
        penalty = float(sum(float(v.regularizer(v)) for v in model.trainable_variables if v.regularizer is not None))
        return {"data_loss": values["loss"] - penalty} | values | {"penalty": penalty}
    penalty = values["loss"] - values.pop("objective", values["data_loss"])  # objective: the smoothed data loss
    if abs(penalty) <= 4 * np.finfo("float32").eps * abs(values["loss"]) and not _regularized(model):
        penalty = 0.0
    return values | {"penalty": penalty}


def _regularized(model: Any) -> bool:
    """Whether a variable of the model has a regularizer or a layer an activity regularizer."""
    def layers(m: Any) -> list[Any]:
        return [m, *(x for layer in getattr(m, "layers", []) for x in layers(layer))]

    return any(v.regularizer is not None for v in model.trainable_variables) or any(
        getattr(layer, "activity_regularizer", None) is not None for layer in layers(model))


class StopOnSignal(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` after the batch during which `event` was set (mlreg's sweep
    sets `mlreg.signals.STOP` on Ctrl-C and SIGTERM), so a run stops at a safe point.

    Args:
        event: the event to watch.
    """

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
