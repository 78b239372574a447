"""A pack, start to end: each run's model built, the runs grouped by structure, a program for
each group (cached, so that the packs of a sweep trace once), and the stack trained epoch by
epoch, each run yielded as it ends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mlreg.engines.fused.introspect import Built, build, why_not_model
from mlreg.engines.fused.program import Program
from mlreg.engines.fused.stack import NAME, Stack
from mlreg.records import RunResult, failed
from mlreg.signals import STOP

if TYPE_CHECKING:
    from mlreg.data import Dataset
    from mlreg.spec import RunSpec


_PROGRAMS: dict[str, tuple[Program, Any]] = {}
"""Programs by the template's signature and the pack's settings, so that the packs of one
sweep trace once (the template model is kept with its program)."""


def train_pack(runs: Sequence[RunSpec], data: Dataset, *, until: int | None = None,
               resume: dict[str, dict] | None = None) -> Iterator[RunResult]:
    """Trains the runs of a pack, yielding each run's record as soon as it ends (early
    stopping, divergence, or the last epoch). If the pack itself fails, its unfinished runs
    are `failed` with the message.

    Args:
        runs: the pack.
        data: its data.
        until: pause the runs still training after this many epochs: each is yielded with
            status `paused`, its record so far and its `state` (what `resume` takes). Defaults
            to `None`: train to the end.
        resume: paused states by run id: those runs go on from where they paused (their
            models are built again, then take their values). Defaults to `None`.
    """
    from mlreg.backend import import_keras

    keras = import_keras()
    t0 = time.perf_counter()
    done: set[str] = set()
    try:
        built: dict[int, tuple[Any, Built]] = {}
        for j, run in enumerate(runs):  # a run whose model cannot be built fails alone
            t1 = time.perf_counter()
            try:
                built[j] = build(run, data)
            except Exception as e:  # noqa: BLE001 - the user's builder: a failed run, the pack goes on
                done.add(run.run_id)
                yield failed(run, e, engine=NAME, backend=keras.backend.backend(), duration_s=time.perf_counter() - t1)
        groups: dict[str, list[int]] = {}
        for j, (_, b) in built.items():
            groups.setdefault(b.signature, []).append(j)
        for members in groups.values():
            for result in _train([runs[j] for j in members], [built[j] for j in members], data, t0, until,
                                 resume or {}):
                done.add(result.run_id)
                yield result
    except Exception as e:  # noqa: BLE001 - a failed pack fails its runs, the sweep goes on
        share = (time.perf_counter() - t0) / max(len(runs) - len(done), 1)
        for run in runs:
            if run.run_id not in done:
                yield failed(run, e, engine=NAME, backend=keras.backend.backend(), duration_s=share)


def _template(runs: Sequence[RunSpec], built: Sequence[tuple[Any, Built]], data: Dataset) -> Program:
    """The program for these runs, cached by the model's signature and the pack's settings: a
    cached program serves any pack whose Dropout layers and regularized variables it has (a
    run without them gets rate 0 there), so the rounds of a search and the packs of a sweep
    compile each stack size once. A new template is the model with the most Dropout layers."""
    first = runs[0]
    regularized = set().union(*(b.regularized for _, b in built))
    names = {n for _, b in built for n in b.dropout}
    xla = not any(rate > 0 for _, b in built for rate in b.dropout.values())  # see compile_fn
    key = json.dumps([built[0][1].signature, data.task, first.training.batch_size, first.training.optimizer, xla])
    cached = _PROGRAMS.get(key)
    if cached is not None and names <= {layer.name for layer in cached[0].dropouts} \
            and regularized <= set(cached[0].regularized):
        return cached[0]
    if len(_PROGRAMS) >= 8:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    model = max(built, key=lambda mb: len(mb[1].dropout))[0]
    if cached is not None:  # grow the cached program's reach rather than keep two
        regularized |= set(cached[0].regularized)
    _PROGRAMS[key] = (Program(model, sorted(regularized), runs, data, xla), model)
    return _PROGRAMS[key][0]


def _train(runs: list[RunSpec], built: list[tuple[Any, Built]], data: Dataset, t_start: float,
           until: int | None, resume: dict[str, dict]) -> Iterator[RunResult]:
    """Trains runs whose models share one structure, epoch by epoch, yielding each run as it
    ends (and, with `until`, as it reaches that many epochs: `paused`, its state attached)."""
    reason = why_not_model(built[0][0])
    if reason is not None:
        raise TypeError(f"the fused engine cannot train {reason}; use engine = \"keras\"")
    program = _template(runs, built, data)
    missing = set().union(*(b.dropout for _, b in built)) - {layer.name for layer in program.dropouts}
    if missing:
        raise TypeError(f"the runs of this pack have Dropout layers {sorted(missing)} that the template lacks")
    stack = Stack(program, runs, [b for _, b in built], data, t_start, resume)
    while stack.active.any():
        if STOP.is_set():
            raise KeyboardInterrupt
        diverged, stop = stack.epoch()
        yield from stack.end(diverged, stop, until)
        stack.compact()


