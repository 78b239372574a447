"""The seam every search strategy plugs into (in the spirit of Optuna's sampler / pruner split).

A *pruner* stops settings at rungs (`rungs`, `at_rung`); a *sampler* says what to train once
the live settings have trained to the end: more seeds for some, or new values of a rate
(`next`). The driver (`mlreg.search.driver.Search`, which `Search` below describes) asks the
pruners at each rung, then the samplers in order until none has anything left; a strategy adds
what it knows to the answer (`answer`). Each decision is a dict whose `kind` is the strategy's, logged (`search.new`)
before it takes effect; a strategy looks for its own decision in `search.log` before it takes
one, so that a search that resumes decides nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from mlreg.spec import ExperimentSpec, RunSpec


class Search(Protocol):
    """What a strategy reads and changes of the search it serves (`driver.Search` is one): the
    experiment, the settings and their seeds, the decisions logged and taken, and the scores."""

    spec: ExperimentSpec
    settings: dict[str, list[RunSpec]]
    curves: dict[str, Any]
    status: dict[str, str]
    seeds: dict[str, list[int]]
    batches: list[int]
    log: list[dict[str, Any]]
    new: list[dict[str, Any]]
    expansions: int
    overlap: float

    def verdicts(self, live: Sequence[str]) -> dict[str, Any]: ...
    def scores(self, setting: str, until: int | None, project: bool = False) -> dict[tuple[Any, ...], float]: ...
    def mean(self, scores: Mapping[Any, float]) -> float: ...
    def differences(self, a: Mapping[Any, float], b: Mapping[Any, float]) -> list[float]: ...
    def add_values(self, decisions: Sequence[dict[str, Any]]) -> list[str]: ...
    def prune(self, setting: str, rung: int) -> None: ...
    def note(self, text: str) -> None: ...


def tournaments(spec: ExperimentSpec, live: Sequence[str]) -> list[list[str]]:
    """The groups of settings compared with each other: all of them, or in an extrapolating search
    those of each training-set size (a rate on less data is worse for that alone)."""
    if "extrapolate" not in spec.search.strategies:
        return [list(live)]
    size = {s: json.loads(s)["train_size"] for s in live}
    return [[s for s in live if size[s] == n] for n in dict.fromkeys(size.values())]


@dataclass(frozen=True)
class Step:
    """What a sampler asks to train: `settings` (keys), titled `title` in the progress."""

    title: str
    settings: tuple[str, ...]
    live: tuple[str, ...] | None = None
    """The settings the search goes on with from now (its answer is among them); `None`: those
    live before, and `settings`."""


class Strategy:
    """One way of spending a search's budget; a subclass overrides what it does."""

    kind: ClassVar[str] = ""
    """The `kind` of the decisions it logs."""

    @classmethod
    def applies(cls, spec: ExperimentSpec) -> bool:
        """Whether the experiment asks for it."""
        return False

    @classmethod
    def adds(cls, spec: ExperimentSpec) -> tuple[str, ...]:
        """The parameters it varies besides the swept ones (settings differ in them)."""
        return ()

    def start(self, search: Search, live: list[str]) -> list[str]:
        """The settings the search starts with, from the grid's."""
        return live

    def rungs(self, search: Search) -> list[int]:
        """The epochs at which it may stop settings (a pruner); none by default."""
        return []

    def at_rung(self, search: Search, rung: int, live: list[str]) -> list[str]:
        """The settings that go on after `rung` (those it prunes are stopped through
        `search.prune`)."""
        return live

    def next(self, search: Search, live: list[str]) -> Step | None:
        """What to train next now that every live setting trained to the end (a sampler): new
        settings join `live` through `search.add_values`; `None` when it has nothing to add."""
        return None

    def answer(self, search: Search, live: list[str], verdicts: dict[str, Any]) -> dict[str, Any]:
        """What it adds to the answer (entries of its own)."""
        return {}
