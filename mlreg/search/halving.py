"""Successive halving (`[search] strategy = "halving"`), a pruner.

Rungs at `first_rung`, `first_rung * factor`, ... epochs. At a rung each setting is scored by its
runs' best value of the early-stopping monitor so far (all its seeds and splits). A setting stops
there (`pruned`) when it is outside the best `1/factor`, worse than the rung's best beyond the 95%
interval of their paired differences (`mlreg.stats.paired_test`), *and* still worse than the
best is now when its own curve is projected to the last epoch at the rate its best fell over its
latest half (`projected`): noise alone prunes nothing, and neither does slowness. Early in
training more regularization is always behind (it learns slower), so a rung that ranks by the
level alone prunes the settings the question is about (mlreg 0.3 did: on the committed grids
replayed at 42 epochs it pruned the grid's best in 7 of 20). Projecting the best too is not
enough: a leader still falling fast flattens later, and a setting falling a little slower at the
rung may overtake it (`bench_search.py --quick` on MNIST-1D: the grid's best pruned at epoch 5 of
30); so the best is taken at its level now (with that rule, 26 of 26 committed grids replayed,
`benchmarks/replay_search.py`). With one pair per setting there is no interval, and the rank
alone decides (said once); with two, a rung prunes only diverged runs (said once): a 1-degree
interval tight at the rung cleared where the end's, on the same two pairs, left the setting open
(issue 35.7: 9 of 15 pairs of seeds on a digits grid; none with three). In an extrapolating
search each training-set size is a tournament of its own, and its best rate's neighbours stay.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.search.strategy import Search, Strategy, tournaments
from mlreg.stats import paired_test

if TYPE_CHECKING:
    from mlreg.spec import ExperimentSpec


def first_rung(spec: ExperimentSpec) -> int:
    """The first rung in epochs: `[search] first_rung`, else `ceil(epochs / 7)` (see `SearchSpec`)."""
    return spec.search.first_rung or math.ceil(spec.training.epochs / 7)


def rungs(spec: ExperimentSpec) -> list[int]:
    """The epochs at which halving decides (all below `training.epochs`); none without halving."""
    if "halving" not in spec.search.strategies:
        return []
    out, e = [], first_rung(spec)
    while e < spec.training.epochs:
        out.append(e)
        e *= spec.search.factor
    return out


class Halving(Strategy):
    kind = "rung"

    @classmethod
    def applies(cls, spec: ExperimentSpec) -> bool:
        return "halving" in spec.search.strategies

    def rungs(self, search: Search) -> list[int]:
        return rungs(search.spec)

    def at_rung(self, search: Search, rung: int, live: list[str]) -> list[str]:
        """Applies the logged decisions of this rung and decides the settings they never saw
        (a grown grid)."""
        logged = [d for d in search.log if d["kind"] == "rung" and d["at"] == rung]
        seen = {s for d in logged for s in d["considered"]}
        pruned = {s for d in logged for s in d["pruned"]}
        fresh = [s for s in live if s not in seen]
        pairs = min((len(search.scores(s, rung)) for s in live), default=3)
        if pairs == 1:  # said whether the rung is decided now or replayed from the log
            search.note("halving with one seed and split per setting decides on one number per setting "
                        "(no interval): give it seeds >= 2")
        elif pairs == 2:
            search.note("halving prunes at a rung with 3 or more seeds and splits per setting: with 2, "
                        "an interval cleared early may not be at the end")
        if fresh:
            for decision in self._decide_by_size(search, rung, live, fresh):
                search.new.append(decision)
                pruned |= set(decision["pruned"])
        for s in live:
            if s in pruned:
                search.prune(s, rung)
        return [s for s in live if s not in pruned]

    def _decide_by_size(self, search: Search, rung: int, live: list[str],
                        considered: list[str]) -> list[dict[str, Any]]:
        """One decision; in an extrapolating search one for each training-set size (a rate on less data
        is worse for that alone, so it is ranked among the rates of its own size), which keeps the
        best rate's neighbours: the search locates each size's best on the curve's shape around it."""
        if "extrapolate" not in search.spec.search.strategies:
            return [self._decide(search, rung, live, considered)]
        param, out = search.spec.curve_param, []
        for group in tournaments(search.spec, live):
            if not set(group) & set(considered):
                continue
            mine = sorted(group, key=lambda s: json.loads(s)[param])
            d = self._decide(search, rung, mine, [s for s in considered if s in group])
            i = mine.index(d["best"])
            out.append(d | {"pruned": [s for s in d["pruned"] if s not in mine[max(i - 1, 0): i + 2]]})
        return out

    def _decide(self, search: Search, rung: int, live: list[str], considered: list[str]) -> dict[str, Any]:
        scores = {s: search.scores(s, rung) for s in live}
        ahead = {s: search.scores(s, rung, project=True) for s in considered}
        means = {s: search.mean(v) for s, v in scores.items()}
        order = sorted(live, key=lambda s: means[s])
        best = order[0]
        keep = set(order[: math.ceil(len(order) / search.spec.search.factor)])
        pruned = []
        for s in considered:
            if s in keep:
                continue
            d = search.differences(scores[s], scores[best])
            if not d or not all(map(math.isfinite, d)):
                pruned.append(s)  # a run diverged, or nothing to pair: out by rank
            elif len(d) < 2:
                pruned.append(s)  # no interval: the rank decides (said by `at_rung`)
            elif len(d) >= 3 and paired_test(d, search.overlap)[1] > 0 and paired_test(
                    search.differences(ahead[s], scores[best]), search.overlap)[1] > 0:
                # behind now, and would still be behind the best's level now if it went on falling as
                # fast as lately to the last epoch (the best is not projected: a leader still falling
                # fast says nothing of where it flattens, and a slower starter may overtake it late);
                # on 3 pairs or more: a 1-degree interval tight at a rung cleared where the end's, on
                # the same two pairs, did not
                pruned.append(s)
        return {"kind": "rung", "at": rung, "considered": considered, "best": best, "pruned": pruned}


def projected(curve: np.ndarray, epochs: int) -> float:
    """Where a curve's best value may be by `epochs`: its best so far, minus the rate at which
    the best fell over the latest half of the curve, for every epoch left (an optimistic,
    straight-line extrapolation: a curve that still falls is not yet beaten)."""
    best = np.fmin.accumulate(np.where(np.isfinite(curve), curve, np.inf))
    e = len(best)
    w = max(1, e // 2)
    if not np.isfinite(best[e - 1 - w]):
        return float(best[-1])
    rate = (best[e - 1 - w] - best[-1]) / w
    return float(best[-1] - rate * (epochs - e))
