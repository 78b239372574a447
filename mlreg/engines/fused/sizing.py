"""How many runs of a model one program trains at once: measured, once per model and machine.

A fused step is memory-bound: each run brings its weights, gradients, optimizer slots, best
weights and a batch of activations, and a stack that fits the processor's cache runs faster per
run than one that spills (mlreg 0.3 measured sweep15's model at 136 run-epochs/s with 16 runs and
88 with 64). So the stack size starts from the model's bytes per run against the cache of the
machine (`estimate`), and the first time a model is seen on a machine and backend, a short
timing of one epoch at that size, half of it and twice it picks the fastest per run-epoch
(`choose`); the answer is kept in `packs.json` under mlreg's per-user cache (see
`mlreg.backend.cache_dir`), keyed by the model's signature, the batch size, the data's size,
the backend and the machine. Where the runs are too few to choose, nothing is timed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Callable
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


def choose(key: str, per_run: int, n_runs: int, seconds_per_run_epoch: Callable[[int], float]) -> int:
    """The stack size for `n_runs` runs of a model (`key` says which, see `key`): the one kept for
    it, else, when there is a choice to make (more runs than `MIN_STACK`), the fastest per
    run-epoch of the estimate, half and twice it (kept); else `n_runs`. `ENV` overrides."""
    from mlreg.backend import cache_dir

    setting = os.environ.get(ENV, "")
    if setting.isdigit() and int(setting) > 0:
        return min(int(setting), n_runs)
    if setting == "estimate":
        return min(estimate(per_run), n_runs)
    known = _read(cache_dir()).get(key)
    if known is not None:
        return min(int(known["k"]), n_runs)
    if n_runs <= MIN_STACK:
        return n_runs
    guess = estimate(per_run)
    upper = min(MAX_PACK, 1 << (n_runs - 1).bit_length())  # a stack of all the runs, padded
    candidates = sorted({min(max(k, MIN_STACK), upper) for k in (guess // 2, guess, guess * 2)})
    if len(candidates) == 1:
        return min(candidates[0], n_runs)
    timed = {k: seconds_per_run_epoch(k) for k in candidates}
    k = min(candidates, key=lambda c: (timed[c], -c))  # the fastest per run-epoch
    _write(cache_dir(), key, {"k": k, "estimate": guess, "bytes_per_run": per_run,
                              "run_epochs_per_s": {str(c): round(1 / t, 1) for c, t in timed.items()}})
    return min(k, n_runs)


def key(signature: str, batch_size: int, data_sizes: tuple[int, ...]) -> str:
    return hashlib.sha256(json.dumps([signature, batch_size, data_sizes, machine()]).encode()).hexdigest()[:20]


def _read(root: Path | None) -> dict[str, Any]:
    if root is None:
        return {}
    try:
        return json.loads((root / FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write(root: Path | None, key: str, entry: dict[str, Any]) -> None:
    """Adds an entry (a new file renamed over the old: readers never see half of one)."""
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        table = _read(root) | {key: entry}
        tmp = root / f".{FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
        os.replace(tmp, root / FILE)
    except OSError:
        pass  # a cache: without it, the next process measures again
