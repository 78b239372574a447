"""Where packs run. An executor moves the packs an engine made to where they train and
gives back each run's `RunResult`; it never writes files (the store does, in the driver).

- `inline`: one pack after another in this process, each run's record as its run ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlreg.data import Dataset
    from mlreg.engines import Pack
    from mlreg.records import RunResult

EXECUTORS = ("inline",)


def inline(packs: Iterable[Pack], data_for: Callable[[Pack], Dataset]) -> Iterator[RunResult]:
    """Trains each pack here, yielding each record as its run ends."""
    from mlreg.engines import train

    for pack in packs:
        yield from train(pack, data_for(pack))


def get(name: str) -> Callable[..., Iterator[RunResult]]:
    if name not in EXECUTORS:
        raise ValueError(f"Invalid value for `executor`: expected one of {list(EXECUTORS)}. "
                         f"Received: executor={name!r}")
    return inline
