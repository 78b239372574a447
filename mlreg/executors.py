"""Where runs execute. The unit of work is a *pack*: a list of `RunSpec`s, so that an
engine training several runs in one graph, or a pool of processes, can slot in.

Only the inline executor exists so far: packs run one after another in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlreg.data import Dataset
    from mlreg.spec import RunSpec
    from mlreg.training import RunResult

EXECUTORS = ("inline",)


def inline(packs: Iterable[list[RunSpec]], data_for: Callable[[RunSpec], Dataset]) -> Iterator[RunResult]:
    """Runs each pack's runs in order, here, yielding each record as its run ends."""
    from mlreg.training import execute

    for pack in packs:
        for run in pack:
            yield execute(run, data_for(run))


def get(name: str) -> Callable[..., Iterator[RunResult]]:
    if name not in EXECUTORS:
        raise ValueError(f"Invalid value for `executor`: expected one of {list(EXECUTORS)}. "
                         f"Received: executor={name!r}")
    return inline
