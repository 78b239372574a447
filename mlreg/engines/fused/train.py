"""A pack, start to end: each run's model built, the runs grouped by structure, a program for
each group (cached, so that the packs of a sweep trace once), and the stack trained epoch by
epoch, each run yielded as it ends."""

from __future__ import annotations

import hashlib
import json
import marshal
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg import __version__
from mlreg.engines.fused import sizing
from mlreg.engines.fused.introspect import Built, all_layers, assigned_in_inference, build, fits, why_not_model
from mlreg.engines.fused.packing import pack_key
from mlreg.engines.fused.program import Program
from mlreg.engines.fused.reach import Reach
from mlreg.engines.fused.stack import NAME, Stack
from mlreg.engines.fused.values import initial_state
from mlreg.records import RunResult, failed
from mlreg.signals import STOP

if TYPE_CHECKING:
    from mlreg.data import Dataset
    from mlreg.spec import RunSpec


_PROGRAMS: dict[str, tuple[Program, Any]] = {}
"""Programs by the template's signature and the pack's settings, so that the packs of one
sweep trace once (the template model is kept with its program)."""


def train_pack(runs: Sequence[RunSpec], data: Dataset, *, until: int | None = None,
               resume: dict[str, dict] | None = None,
               fallback: Callable[[RunSpec], RunResult] | None = None,
               alone: Callable[[], sizing.Timing] | None = None) -> Iterator[RunResult]:
    """Trains the runs of a pack, yielding each run's record as soon as it ends (early
    stopping, divergence, or the last epoch). A run whose model the builder fails to build is
    `failed` alone. If the engine itself fails (tracing, compiling, its own code), each run
    it has not finished goes to `fallback` (the keras engine, from `mlreg.engines.train`), the
    first with a note that says why; without one, they are `failed` with the message.

    Args:
        runs: the pack.
        data: its data.
        until: pause the runs still training after this many epochs: each is yielded with
            status `paused`, its record so far and its `state` (what `resume` takes). Defaults
            to `None`: train to the end.
        resume: paused states by run id: those runs go on from where they paused (their
            models are built again, then take their values). Defaults to `None`.
        fallback: trains one run another way. Defaults to `None`.
        alone: times one run of the pack trained alone (engine `auto`, see `sizing.choose`):
            where it measures faster than the fused stack, the runs go to `fallback`, the line
            that says so in the first one's `note`. Defaults to `None`: the pack trains fused.
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
        for members in _groups(built):
            group = [runs[j] for j in members]
            choice, program = _choose(group, [built[j] for j in members], data, alone if fallback else None)
            if choice.engine == "keras":
                for i, run in enumerate(group):
                    done.add(run.run_id)
                    result = fallback(run)  # type: ignore[misc]
                    yield replace(result, note=choice.line) if i == 0 else result
                continue
            for i, result in enumerate(_train(group, [built[j] for j in members], data, t0, until, resume or {},
                                              choice.k, program)):
                done.add(result.run_id)
                yield replace(result, note=result.note or choice.line) if i == 0 and choice.line else result
    except Exception as e:  # noqa: BLE001 - the engine's own failure: no run is lost to it
        left = [run for run in runs if run.run_id not in done]
        share = (time.perf_counter() - t0) / max(len(left), 1)
        for i, run in enumerate(left):
            ours = failed(run, e, engine=NAME, backend=keras.backend.backend(), duration_s=share)
            if fallback is None:
                yield ours
                continue
            result = fallback(run)
            if i == 0:
                result = replace(result, traceback=result.traceback or ours.traceback, note=(
                    f"the fused engine failed on {len(left)} run{'s' * (len(left) != 1)} of a pack "
                    f"({ours.summary['error']}; traceback in errors/{run.run_id}.txt); the keras engine trains them"))
            yield result


def _groups(built: dict[int, tuple[Any, Built]]) -> list[list[int]]:
    """The runs (indices) that train in one program: the same signature, and per-run layers
    that line up with the group's first model (`introspect.fits`), taken in order of most
    per-run layers first, so that a model which left out a Dropout of rate 0 joins one that has it."""
    groups: list[tuple[str, set[str], list[int]]] = []
    for j in sorted(built, key=lambda j: -len(built[j][1].layers)):
        b = built[j][1]
        group = next((g for g in groups if g[0] == b.signature and fits(b.layers, g[1])), None)
        if group is None:
            groups.append((b.signature, set(b.layers), [j]))
        else:
            group[2].append(j)
    return [sorted(g[2]) for g in groups]


def _template(runs: Sequence[RunSpec], built: Sequence[tuple[Any, Built]], data: Dataset) -> Program:
    """The program for these runs, cached by the model's signature and the pack's settings: a
    cached program serves any group whose per-run layers line up with its template's and whose
    reach (`Reach`) lies within its own (a run without a regularizer, a constraint or a per-run
    layer gets 0 there), so the rounds of a search and the packs of a sweep compile each stack
    size once. A new template is the group's model with the most per-run layers."""
    first = runs[0]
    reach = Reach.of([b for _, b in built], runs)
    model, leader = max(built, key=lambda mb: len(mb[1].layers))
    draws = any(v.name == "seed_generator_state" for m, _ in built for v in m.non_trainable_variables)
    xla = not draws  # see compile_fn: XLA's random draws are not TensorFlow's
    key = json.dumps([leader.signature, data.task, first.training.batch_size, first.training.optimizer, xla])
    cached = _PROGRAMS.get(key)
    if cached is not None and all(fits(b.layers, cached[0].keys) for _, b in built) and reach.within(cached[0].reach):
        return cached[0]
    if len(_PROGRAMS) >= 8:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    if cached is not None:  # grow the cached program's reach rather than keep two
        reach = reach.union(cached[0].reach)
    _PROGRAMS[key] = (Program(model, reach, runs, data, xla), model)
    return _PROGRAMS[key][0]


def _choose(runs: list[RunSpec], built: list[tuple[Any, Built]], data: Dataset,
            alone: Callable[[], sizing.Timing] | None) -> tuple[sizing.Choice, Program]:
    """The program for runs whose models share one structure, and how they train (`sizing.choose`)."""
    reason = why_not_model(built[0][0])
    if reason is not None:
        raise TypeError(f"the fused engine cannot train {reason}; use engine = \"keras\"")
    program = _template(runs, built, data)
    builts = [b for _, b in built]
    choice = sizing.choose(sizing.key(builts[0].signature, program.batch_size, (len(data.x_train), len(data.x_val))),
                           sizing.bytes_per_run(program.template, program.batch_size, program.optimizer_name),
                           len(runs), lambda k: _timed(program, runs, builts, data, k), alone,
                           runs[0].training.epochs)
    return choice, program


def _train(runs: list[RunSpec], built: list[tuple[Any, Built]], data: Dataset, t_start: float,
           until: int | None, resume: dict[str, dict], k: int, program: Program) -> Iterator[RunResult]:
    """Trains runs whose models share one structure in stacks of `k`, epoch by epoch, yielding
    each run as it ends (and, with `until`, as it reaches that many epochs: `paused`, its state
    attached)."""
    builts = [b for _, b in built]
    share = (time.perf_counter() - t_start) / len(runs)  # building, spread over the runs
    start = 0
    for size in sizing.stacks(len(runs), k):
        part = slice(start, start + size)
        start += size
        stack = Stack(program, runs[part], builts[part], data, time.perf_counter() - share * size, resume)
        while stack.active.any():
            if STOP.is_set():
                raise KeyboardInterrupt
            diverged, stop = stack.epoch()
            yield from stack.end(diverged, stop, until)
            stack.compact()


def _timed(program: Program, runs: list[RunSpec], builts: list[Built], data: Dataset, k: int) -> sizing.Timing:
    """A stack of `k` runs (the pack's, repeated): `sizing.STEPS` training steps, once to compile
    and once timed (see `sizing.Timing`), by the program that trains a stack of `k` (its
    compilation is the training's, where `k` is chosen)."""
    stack = Stack(program, (runs * k)[:k], (builts * k)[:k], data, time.perf_counter(), {})
    bs, n = program.batch_size, len(data.x_train)
    steps = max(1, min(n // bs, sizing.STEPS))
    order = program.keras.ops.convert_to_tensor(stack.orders.next())
    seconds = []
    for _ in range(2):
        t0 = time.perf_counter()
        out = program.steps(stack.state, stack.consts, order, *stack.xy[:2],
                            program.keras.ops.convert_to_tensor(np.int32(steps)))
        np.asarray(out[4])  # waits for the result
        seconds.append(time.perf_counter() - t0)
    return max(seconds[0] - seconds[1], 0.0), seconds[1] / steps * math.ceil(n / bs) / k


def probe(run: RunSpec, data: Dataset) -> str | None:
    """Why the fused engine cannot train this run's model (one line), or `None`: the model
    trains itself (`why_not_model`), or tracing one epoch of its program on a few samples fails.
    It traces without compiling or training (`jax.eval_shape`, `tf.function.get_concrete_function`),
    so that `mlreg validate` and `run` find, before any training, what the engine would fail on."""
    from mlreg.backend import import_keras
    from mlreg.records import error_line

    keras = import_keras()
    model, b = build(run, data)
    reason = why_not_model(model)
    if reason is not None:
        return reason
    key = probe_key(run, model, b, data)
    if sizing.probed(key):
        return None
    try:
        assigned = assigned_in_inference(model, data.x_train[:2])
        if assigned:
            return f"it assigns {', '.join(assigned)} in inference as well, so evaluating moves it"
        program = Program(model, Reach.of([b], [run]), [run], data, xla=False)
        state, consts = initial_state(program, [b], [run])
        n = min(len(data.x_train), 2 * run.training.batch_size)
        convert = keras.ops.convert_to_tensor
        args = (state, consts, convert(np.arange(n, dtype="int32")[None]),
                *(convert(a[:n]) for a in (data.x_train, data.y_train, data.x_val, data.y_val)))
        if keras.backend.backend() == "jax":
            import jax

            jax.eval_shape(program.traced_epoch, *args)
        else:
            program.traced_epoch.get_concrete_function(*args)
    except Exception as e:  # noqa: BLE001 - what the engine cannot trace goes to the keras engine
        return f"the fused engine cannot trace it: {error_line(e)}"
    sizing.keep_probed(key)
    return None


def probe_key(run: RunSpec, model: Any, built: Built, data: Dataset) -> str:
    """What a probe's verdict depends on, hashed: the run's settings but its per-run values
    (`pack_key`), the model's structure, the code of every method of its classes that are not
    Keras's (a user's layer whose `call` changed is traced again), the data's shapes, the backend
    and the versions. Only a model that traced is kept: one that failed is traced again, so a
    fixed layer is found fixed."""
    import keras

    classes = {cls for layer in [model, *all_layers(model)] for cls in type(layer).__mro__
               if not cls.__module__.startswith(("keras.", "builtins"))}
    code = sorted(hashlib.sha256(marshal.dumps(f.__code__)).hexdigest() for cls in classes
                  for f in (getattr(v, "__func__", v) for v in vars(cls).values()) if hasattr(f, "__code__"))
    shapes = [[list(a.shape[1:]), str(a.dtype)] for a in (data.x_train, data.y_train)]
    text = json.dumps([pack_key(run), built.signature, code, shapes, keras.backend.backend(), keras.__version__,
                       __version__], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]
