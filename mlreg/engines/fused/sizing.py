"""How many runs of a model one program trains at once: measured, once per model and machine.

A fused step is memory-bound: each run brings its weights, gradients, optimizer slots, best
weights and a batch of activations, and a stack that fits the processor's cache runs faster per
run than one that spills (mlreg 0.3 measured sweep15's model at 136 run-epochs/s with 16 runs and
88 with 64). So the stack size starts from the model's bytes per run against the cache of the
machine (`estimate`), and the first time a model is seen on a machine and backend, a short
timing of a few training steps at that size, half of it and twice it (never more than the
pack's runs) picks the fastest per run-epoch (`choose`). Under engine `auto` the same look
decides the engine: one run's `model.fit` is timed too, and a model that trains faster alone
goes to the keras engine. The answer is kept in `packs.json` under mlreg's per-user cache (see
`mlreg.backend.cache_dir`), keyed by the model's signature, the batch size, the data's size,
the backend and the machine. Where the runs are too few to choose and the engine is forced,
nothing is timed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlreg.engines.fused.packing import MAX_PACK, MIN_STACK

FLOAT = 4
"""Bytes of a float32."""

DEFAULT_CACHE = 32 << 20
"""The last-level cache assumed where the machine does not say (32 MiB)."""

SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}
"""Optimizer slots per trainable value (Keras's defaults: Adam's two moments, RMSprop's one)."""

FILE = "packs.json"


def cache_bytes() -> int:
    """The size of the last-level cache of processor 0 (`/sys`), or `DEFAULT_CACHE`."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    sizes = {}
    for index in root.glob("index*"):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        unit = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        sizes[level] = int(text.rstrip("KM")) * unit
    return sizes[max(sizes)] if sizes else DEFAULT_CACHE


def bytes_per_run(model: Any, batch_size: int, optimizer: str) -> int:
    """What one run of the stack holds while it trains: its values (weights, gradients,
    optimizer slots, the best weights kept for early stopping) and a batch of activations
    (forward and backward)."""
    from mlreg.engines.fused.introspect import all_layers

    params = int(model.count_params())
    activations = 0
    for layer in all_layers(model):
        try:
            shape = layer.output.shape if not isinstance(layer.output, list) else layer.output[0].shape
        except (AttributeError, ValueError, TypeError):
            continue
        activations += math.prod(d for d in shape[1:] if d)
    return FLOAT * (params * (3 + SLOTS.get(optimizer, 2)) + 2 * batch_size * activations)


def estimate(per_run: int, cache: int | None = None) -> int:
    """The largest power of two of runs whose bytes fit the cache, within [`MIN_STACK`, `MAX_PACK`]."""
    fit = max(1, (cache or cache_bytes()) // max(per_run, 1))
    return min(MAX_PACK, max(MIN_STACK, 1 << (fit.bit_length() - 1)))


def machine() -> str:
    """What the stack size depends on besides the model: the processor, its count, its cache,
    and the accelerator the backend trains on."""
    import keras

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
               platform.processor())
    device = ""
    if keras.backend.backend() == "jax":
        import jax

        device = ",".join(sorted({d.device_kind for d in jax.devices()}))
    return f"{cpu}|{os.cpu_count()}|{cache_bytes()}|{keras.backend.backend()}|{device}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


ENV = "MLREG_PACK_SIZE"
"""`estimate`: stack sizes from the estimate alone, nothing timed (the test suite's: its many
small models would each be timed once); a number: that stack size; unset: measured."""

STEPS = 8
"""Training steps timed at a stack size (after as many that compile it): a few steps, not an
epoch, so that measuring a slow model costs seconds (issue 33: two timed epochs at each of 8, 16
and 32 runs of a depthwise model took 14 minutes)."""

Timing = tuple[float, float]
"""What a measurement gives: the seconds its first call spent compiling (its first call less the
second), and the seconds per run-epoch of the training steps (the second call, scaled)."""


@dataclass(frozen=True)
class Choice:
    """How a pack trains: its stack size, its engine (`fused`, or `keras` where `auto` measured
    the model faster alone), and the line that says why, once, when it was measured now."""

    k: int
    engine: str = "fused"
    line: str | None = None


def choose(key: str, per_run: int, n_runs: int, fused: Callable[[int], Timing],
           alone: Callable[[], Timing] | None = None, epochs: int = 1) -> Choice:
    """How `n_runs` runs of a model (`key` says which, see `key`) train: the choice kept for it,
    else measured and kept. Measured: the steps of the estimate, half and twice it (never more
    than the runs), from the smallest up until one is slower per run-epoch than the last; the
    fastest is the stack size. Each is timed at the size the pack's first stack trains at
    (`stacks`: 12 runs at 8 train as 6 + 6, so 6 is timed), whose compilation training reuses.
    With `alone` (engine `auto`), one run's `model.fit` is timed too, and the runs train fused
    only where that costs less per run over `epochs` epochs (the fused compilation shared by
    the runs, the keras engine's paid by each). Without `alone`, nothing is
    timed where there is nothing to choose. `ENV` overrides (fused, nothing timed)."""
    from mlreg.backend import cache_dir

    setting = os.environ.get(ENV, "")
    if setting.isdigit() and int(setting) > 0:
        return Choice(min(int(setting), n_runs))
    if setting == "estimate":
        return Choice(min(estimate(per_run), n_runs))
    known = _read(cache_dir()).get(key)
    clipped = known is not None and known["k"] >= known.get("runs", MAX_PACK) and n_runs > known["k"]
    if known is not None and not clipped and (alone is None or "engine" in known):
        return Choice(min(int(known["k"]), n_runs), known.get("engine", "fused") if alone else "fused")
    guess = estimate(per_run)
    candidates = sorted({min(max(k, MIN_STACK), n_runs) for k in (guess // 2, guess, guess * 2)})
    if len(candidates) == 1 and alone is None:
        return Choice(candidates[0])
    t0 = time.perf_counter()
    timed: dict[int, Timing] = {}
    for k in candidates:
        timed[k] = fused(stacks(n_runs, k)[0])  # the size the pack trains at: its compilation is the training's
        if len(timed) > 1 and timed[k][1] > min(t for _, t in timed.values()):
            break  # slower per run-epoch than a smaller stack: a larger one is slower still
    k = min(timed, key=lambda c: (timed[c][1], -c))
    entry: dict[str, Any] = {"k": k, "runs": n_runs, "estimate": guess, "bytes_per_run": per_run,
                             "run_epochs_per_s": {str(c): round(1 / t, 2) for c, (_, t) in timed.items()}}
    choice = Choice(k)
    if alone is not None:
        compiled, steady = alone()
        fused_cost = timed[k][0] / n_runs + epochs * timed[k][1]  # per run: its share of one compilation
        engine = "fused" if fused_cost <= compiled + epochs * steady else "keras"
        entry |= {"engine": engine, "alone_run_epochs_per_s": round(1 / steady, 2),
                  "compile_s": {"fused": round(timed[k][0], 2), "alone": round(compiled, 2)}}
        choice = Choice(k, engine, f"engine auto: fused {k} at {1 / timed[k][1]:.1f} run-epochs/s, alone "
                                   f"{1 / steady:.1f}/s (compiling {timed[k][0]:.1f} s once, {compiled:.1f} s a run): "
                                   f"{'fused' if engine == 'fused' else 'keras engine'} (measured in "
                                   f"{time.perf_counter() - t0:.1f} s, kept in {FILE})")
    _write(cache_dir(), key, entry)
    return replace(choice, k=min(k, n_runs))


def stacks(n_runs: int, k: int) -> list[int]:
    """The stacks `n_runs` runs train in at a stack size of at most `k`: as even as can be, so that
    few sizes compile (18 runs at 16 as 9 + 9)."""
    count = -(-n_runs // k)
    return [n_runs // count + (i < n_runs % count) for i in range(count)]


def key(signature: str, batch_size: int, data_sizes: tuple[int, ...]) -> str:
    return hashlib.sha256(json.dumps([signature, batch_size, data_sizes, machine()]).encode()).hexdigest()[:20]


def _read(root: Path | None, name: str = FILE) -> dict[str, Any]:
    if root is None:
        return {}
    try:
        return json.loads((root / name).read_text())
    except (OSError, ValueError):
        return {}


def _write(root: Path | None, key: str, entry: Any, name: str = FILE) -> None:
    """Adds an entry (a new file renamed over the old: readers never see half of one)."""
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        table = _read(root, name) | {key: entry}
        tmp = root / f".{name}.{os.getpid()}"
        tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
        os.replace(tmp, root / name)
    except OSError:
        pass  # a cache: without it, the next process measures again


PROBED = "probed.json"
"""The models `train.probe` traced without error, by `probe_key`, kept beside `FILE`."""


def probed(key: str) -> bool:
    from mlreg.backend import cache_dir

    return key in _read(cache_dir(), PROBED)


def keep_probed(key: str) -> None:
    from mlreg.backend import cache_dir

    _write(cache_dir(), key, time.strftime("%Y-%m-%d"), PROBED)
