"""The `keras` engine: one `model.fit` per run, any Keras model; the exact reference.

Honest loss accounting (see DESIGN.md): the `HonestLogger` of `mlreg.callbacks` records, besides
Keras's own `loss` and `val_loss`, the penalty, the data losses on the training set (inference
mode) and the validation set, and the weight statistics, every epoch.

Early stopping is Keras's own `EarlyStopping` on `early_stopping.monitor`, restoring the
best weights. A non-finite loss stops the run as `diverged`; an exception makes it `failed`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlreg.backend import import_keras, seeded
from mlreg.callbacks import HonestLogger, StopOnSignal
from mlreg.records import RunResult, failed, finish, monitor_mode
from mlreg.regularizers import kernels
from mlreg.signals import STOP

keras = import_keras()  # on the chosen backend, TensorFlow's import-time log lines silenced

if TYPE_CHECKING:
    from mlreg.data import Dataset
    from mlreg.spec import RunSpec

NAME = "keras"


def train_run(run: RunSpec, data: Dataset, until: int | None = None) -> RunResult:
    """Trains one run with `model.fit` and returns its record. Exceptions propagate. With
    `until`, it trains that many epochs at most and a run still going is `paused` (going on
    means training it again from the start: the same numbers, as nothing in a run depends
    on how many epochs it will have)."""
    from mlreg.models import build_model, compile_model

    t0 = time.perf_counter()
    keras.backend.clear_session()
    with seeded(run.seed):
        model = build_model(run, data)
    compile_model(model, data.task, run.training)
    tr, es = run.training, run.early_stopping
    logger = HonestLogger(data.x_train, data.y_train, batch_size=max(tr.batch_size, 256), run_id=run.run_id)
    callbacks: list[Any] = [StopOnSignal(STOP), logger]
    stopper = None
    if es.enabled:
        stopper = keras.callbacks.EarlyStopping(
            monitor=es.monitor, patience=es.patience, min_delta=es.min_delta, mode=monitor_mode(es.monitor),
            restore_best_weights=es.restore_best_weights,
        )
        callbacks.append(stopper)
    model.fit(
        data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
        epochs=min(tr.epochs, until or tr.epochs), batch_size=tr.batch_size, shuffle=True, verbose=0,
        callbacks=callbacks,
    )
    history = logger.rows
    if es.enabled and es.monitor not in (history[0] if history else {}):
        raise ValueError(f"Invalid value for `early_stopping.monitor`: no such history column. "
                         f"Received: monitor={es.monitor!r}; columns: {sorted(history[0])}")
    test = None
    if data.x_test is not None and not logger.diverged:
        test = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    result = finish(
        run, engine=NAME, backend=keras.backend.backend(), task=data.task, history=history,
        best=stopper.best_epoch if stopper is not None else None,
        restored=stopper is not None and es.restore_best_weights,
        stopped=stopper is not None and stopper.stopped_epoch > 0,
        kernels=kernels(model), test=test, n_params=int(model.count_params()),
        duration_s=time.perf_counter() - t0, n_train=len(data.x_train), n_val=len(data.x_val),
    )
    paused = until is not None and len(history) == until < tr.epochs and not result.summary["stopped_epoch"]
    return replace(result, status="paused") if paused and result.status == "ok" else result


def timed(run: RunSpec, data: Dataset, steps: int) -> tuple[float, float]:
    """One run's model built and compiled as `train_run` does, and `steps` training steps of
    `model.fit`, once to compile and once timed: the seconds the first spent compiling, and the
    seconds per epoch of training steps (see `mlreg.engines.fused.sizing.Timing`)."""
    import math

    from mlreg.models import build_model, compile_model

    keras.backend.clear_session()
    with seeded(run.seed):
        model = build_model(run, data)
    compile_model(model, data.task, run.training)
    bs, n = run.training.batch_size, len(data.x_train)
    steps = max(1, min(n // bs, steps))
    x, y = data.x_train[:steps * bs], data.y_train[:steps * bs]
    seconds = []
    for _ in range(2):
        t0 = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=bs, shuffle=True, verbose=0)
        seconds.append(time.perf_counter() - t0)
    return max(seconds[0] - seconds[1], 0.0), seconds[1] / steps * math.ceil(n / bs)


def execute(run: RunSpec, data: Dataset, until: int | None = None) -> RunResult:
    """Trains one run; an exception becomes a `failed` record carrying its message."""
    t0 = time.perf_counter()
    try:
        return train_run(run, data, until)
    except Exception as e:  # noqa: BLE001 - a failed run is a status, the sweep goes on
        return failed(run, e, engine=NAME, backend=keras.backend.backend(), duration_s=time.perf_counter() - t0)


def train_pack(runs: list[RunSpec], data: Dataset, *, until: int | None = None,
               resume: dict[str, Any] | None = None) -> Iterator[RunResult]:
    """The engine's pack interface (see `mlreg.engines.fused.train_pack`): each run in turn,
    yielded as it ends; a paused run starts again from its first epoch."""
    for run in runs:
        yield execute(run, data, until)
