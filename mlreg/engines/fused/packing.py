"""What packs together, and how large: runs that can share one compiled program, cut into
packs whose sizes repeat (a stack's size is its program's shape, so sizes that repeat compile
once)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlreg.spec import RunSpec

MAX_PACK = 64
"""Runs trained in one program at most (`benchmarks/bench_engines.py` measures throughput by
pack size: it stops growing before this while memory keeps growing)."""

MIN_STACK = 8
"""Stacks are not compacted below this many positions: a smaller stack saves little time per
epoch (per-step overhead dominates there), and each new size costs a compilation (about 1.5 s
for the 2x128 MLP on this machine, measured with `jax_log_compiles`)."""

PER_RUN: dict[str, tuple[str, ...]] = {
    "training": ("learning_rate", "decay_biases"),
    "early_stopping": ("enabled", "patience", "min_delta"),
}
"""The fields, by section, besides the kinds of regularization, that the program takes as per-run
values. With the kinds whose entries name a per-run hook (`mlreg.spec.Kind.per_run`: the engine
reads them from each run's own model, its rates of regularizers, per-run layers and constraints,
or from its own settings), they are `per_run()`; every other field of a run's sections must be the
same in a pack."""


def per_run() -> dict[str, tuple[str, ...]]:
    """The fields, by section, that the program takes as per-run values (see `PER_RUN`)."""
    from mlreg.spec import KINDS

    out = dict(PER_RUN)
    for kind in KINDS.values():
        if kind.per_run is not None:
            out[kind.section] = (*out.get(kind.section, ()), kind.name)
    return out


def pack_key(run: RunSpec) -> str:
    """Runs with the same key can share a program: they differ in nothing but the per-run values
    (`per_run`) and the seed. Derived from every field of the run's sections, so that a field
    added later splits packs until the engine takes it per run."""
    taken = per_run()
    sections = {name: {k: v for k, v in getattr(run, name).model_dump(mode="json").items()
                       if k not in taken.get(name, ())} for name in ("data", "model", "training", "early_stopping")}
    return json.dumps([sections, run.split, run.fold, run.draw, run.root], sort_keys=True)


def pack(runs: Sequence[RunSpec], max_pack: int = MAX_PACK) -> list[list[RunSpec]]:
    """Groups fusable runs by `pack_key` (in plan order) into packs of at most `max_pack`
    runs, each a power of two where that wastes little (see `pack_sizes`)."""
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(pack_key(run), []).append(run)
    packs = []
    for group in groups.values():
        start = 0
        for size in pack_sizes(len(group), max_pack):
            packs.append(group[start:start + size])
            start += size
    return packs


def pack_sizes(n: int, max_pack: int = MAX_PACK) -> list[int]:
    """How `n` runs are cut into packs: as many `max_pack` as fit, the rest in powers of two
    (72 -> 64 + 8), or in one pack when it fills at least 3/4 of the next power (60, 12). A
    stack's size is its program's shape: sizes that repeat (here, and in compaction, and
    across the rounds of a search) compile once."""
    sizes = [max_pack] * (n // max_pack)
    rest = n % max_pack
    while rest:
        size = rest if stack_size(rest) > rest or rest & (rest - 1) == 0 else 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def stack_size(n: int) -> int:
    """The positions a stack of `n` runs has: the next power of two when `n` fills at least
    3/4 of it (the rest are padding that never trains), else `n`."""
    up = 1 << max(n - 1, 0).bit_length()
    return up if n * 4 >= up * 3 else n

