"""A rate search that uses the curve's shape (`[search] strategy = "curve"`), a sampler.

"How much?" is a continuous question: a decade grid answers it to a factor of 10. The validation
loss against log(rate) is smooth and, for the regularizers mlreg sweeps, usually U-shaped; its
minimum is bracketed by the best rate tried and its two neighbours. So the grid is a coarse
start, and each step places new rates inside the bracket of every line (the settings that differ
only in the rate) whose best may still be the answer (the best, and those the seeds cannot
separate from it): in each side of the bracket wider than `precision`, the vertex of the
parabola through the three points (in log rate) when it falls there, else the side's geometric
midpoint; past the grid's end when the best is there. The new rates train on the best setting's
seeds, paired with it, then the seeds strategy (if any) spends where the decision is open, and
the next step follows, until the best rate is pinned (its tested neighbours within a factor
`precision` of it), the neighbours are tied with it within `margin` (no rate between can beat it
by more), or `MAX_STEPS` steps were taken.

Why a bracket and a parabola rather than a Gaussian process: with the handful of rates a search
tries and the seeds' noise on each, a GP's length scale and noise are themselves guesses, and
its acquisition needs a budget rule of its own; the bracket never leaves the region the paired
comparisons say holds the minimum, the parabola makes it converge in a few steps where the U is
smooth, and the midpoint keeps it safe where it is not (Brent's method, in log space, with
paired seeds instead of exact values).
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlreg.search.strategy import Search, Step, Strategy
from mlreg.spec import ExperimentSpec, accepts, label
from mlreg.stats import paired_test

MAX_STEPS = 8
"""Steps of new rates at most."""

EXTEND = 2
"""How many steps past the grid's end (each the grid's own ratio, at most 10) the search may go."""


class Curve(Strategy):
    kind = "curve"

    @classmethod
    def applies(cls, spec: ExperimentSpec) -> bool:
        return "curve" in spec.search.strategies

    def __init__(self) -> None:
        self.steps = 0

    def next(self, search: Search, live: list[str]) -> Step | None:
        step = self.steps + 1
        logged = [d for d in search.log if d["kind"] == "curve" and d["step"] == step]
        if not logged and step <= MAX_STEPS:
            logged = self._decide(search, live, step)
            search.new += logged
        if not logged:
            return None
        self.steps = step
        new = search.add_values(logged)
        values = ", ".join(label(v) for v in sorted(v for d in logged for v in d["values"]))
        return Step(f"curve {step}: {logged[0]['param']} = {values}", tuple(new))

    def _decide(self, search: Search, live: list[str], step: int) -> list[dict[str, Any]]:
        param, spec = search.spec.curve_param, search.spec
        verdicts = search.verdicts(live)
        grid = sorted(v for v in spec.grid[param] if v > 0)
        out, done = [], set()
        for contender in [verdicts["best"], *verdicts["open"]]:
            line = _line(param, contender, search.settings)
            best = min((s for s in line.values() if s in live), key=lambda s: verdicts["means"][s], default=None)
            if best is None or best in done or json.loads(best)[param] <= 0:
                continue
            done.add(best)
            rates = sorted(r for r in line if r > 0)
            flat = {r for r, s in line.items() if s in live and _within(search, s, best)}
            values = _inside(rates, rates.index(json.loads(best)[param]), {r: verdicts["means"].get(s, math.inf)
                                                                            for r, s in line.items()},
                             flat, spec.search.precision, grid)
            values = [v for v in values if v not in line and accepts(param, v)]
            if values:
                out.append({"kind": "curve", "step": step, "param": param, "from": best, "values": values})
        return out

    def answer(self, search: Search, live: list[str], verdicts: dict[str, Any]) -> dict[str, Any]:
        """Where the best rate is pinned: its tested neighbours, the factor they bound it to,
        whether that is the `precision` asked for (and why not), and the interval of the rates
        of its line that the seeds cannot separate from it."""
        param, precision = search.spec.curve_param, search.spec.search.precision
        best = verdicts["best"]
        line = _line(param, best, search.settings)
        value = json.loads(best)[param]
        near = {s for s in (best, *verdicts["tied"], *verdicts["open"])}
        undecided = sorted(r for r, s in line.items() if s in near and r > 0) or [value]
        pinned: dict[str, Any] = {"param": param, "value": value, "precision": precision,
                                  "interval": [undecided[0], undecided[-1]]}
        rates = sorted(r for r in line if r > 0)
        if value <= 0:
            return {"pinned": pinned | {"factor": None, "reached": False, "why": f"no {param} above 0 beats none"}}
        i = rates.index(value)
        below, above = (rates[i - 1] if i else None), (rates[i + 1] if i + 1 < len(rates) else None)
        factor = max(value / below if below else math.inf, above / value if above else math.inf)
        reached = factor <= precision * (1 + 1e-9)
        flat = [r for r in (below, above) if r is not None and _within(search, line[r], best)]
        why = ("its best is the last rate tried on one side" if below is None or above is None
               else "its neighbours are tied with it within the margin" if flat
               else f"after {MAX_STEPS} steps")
        return {"pinned": pinned | {"below": below, "above": above, "factor": factor if math.isfinite(factor) else None,
                                    "reached": reached} | ({} if reached else {"why": why})}


def _within(search: Search, setting: str, best: str) -> bool:
    """Whether the paired interval of `setting` against `best` lies within `±margin`: no rate
    between them can beat the best by more (where the curve is a U)."""
    margin = search.spec.search.margin
    if margin <= 0 or setting == best:
        return False
    d = search.differences(search.scores(setting, None), search.scores(best, None))
    if len(d) < 2 or not all(map(math.isfinite, d)):
        return False
    _, low, high, _ = paired_test(d, search.overlap)
    return -margin <= low and high <= margin


def _line(param: str, setting: str, settings: Any) -> dict[float, str]:
    """The settings (keys) that differ from `setting` only in `param`, by their value of it."""
    fixed = {k: v for k, v in json.loads(setting).items() if k != param}
    out = {}
    for s in settings:
        d = json.loads(s)
        if {k: v for k, v in d.items() if k != param} == fixed:
            out[d[param]] = s
    return out


def _inside(rates: list[float], i: int, means: dict[float, float], flat: set[float], precision: float,
            grid: list[float]) -> list[float]:
    """New rates around `rates[i]`, the best of its line (see the module's text); none between it
    and a neighbour in `flat` (within the margin of it)."""
    best = rates[i]
    below, above = (rates[i - 1] if i else None), (rates[i + 1] if i + 1 < len(rates) else None)
    ratio = min(10.0, rates[1] / rates[0]) if len(rates) > 1 else 10.0
    out = []
    if below is None and best / ratio >= grid[0] / ratio ** EXTEND * (1 - 1e-9):
        out.append(best / ratio)
    if above is None and best * ratio <= grid[-1] * ratio ** EXTEND * (1 + 1e-9):
        out.append(best * ratio)
    vertex = _vertex(below, best, above, means) if below and above else None
    for side in (below, above):
        if side is None or side in flat or max(side, best) / min(side, best) <= precision * (1 + 1e-9):
            continue
        low, high = sorted((side, best))
        keep = (high / low) ** 0.25  # a vertex close to an end would teach little: the side's middle half only
        inside = vertex is not None and low * keep < vertex < high / keep
        out.append(vertex if inside else math.sqrt(low * high))
    return sorted({float(f"{v:.3g}") for v in out} - {float(f"{best:.3g}")})


def _vertex(a: float, b: float, c: float, means: dict[float, float]) -> float | None:
    """The rate at the vertex of the parabola through the three points (log rate, mean score),
    when it opens upward; else `None`."""
    xs = [math.log(r) for r in (a, b, c)]
    ys = [means.get(r, math.inf) for r in (a, b, c)]
    if not all(map(math.isfinite, ys)):
        return None
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    denominator = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    if denominator >= 0:  # a minimum needs the middle point below the chord
        return None
    x = x1 - 0.5 * ((x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)) / denominator
    return math.exp(x)
