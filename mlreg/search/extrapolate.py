"""Your rate at your full data size, from small subsets (`[search] strategy = "extrapolate"`).

The best regularization rate moves with the amount of data in a regular way: mlreg's own
experiments found the best L2 30x larger on 8x less data, and AdamW's best decay falling faster
than 1/N; Wang & Aitchison (ICML 2025) find AdamW's timescale `B / (lr * decay * N)` about
constant, and Bergsma et al. ("Power Lines", 2025) fit the best timescale as a power law and
predict the decay before the large run. So the grid of a rate trains first on subsets of the
training set (`[search] fractions` of it, the validation set unchanged); the best rate at each
size is located on the curve's shape around the best rate tried (the vertex of the parabola
through it and its neighbours, in log rate), with a bootstrap over the seeds and draws for its
uncertainty; log(best rate) is fitted against log(size) (a power law; the `1/N` law, slope -1, is
reported beside it), and the bootstrap's fits give the prediction for all the data an interval.
Only the prediction and its neighbours within that interval (at least the prediction x/ 3) train
at the full size; the confirmed best among them is the answer.

What it spends is counted in full-size run-epochs (the answer's `run_epochs`): an epoch on a
fraction f of the data costs f of one on all of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from mlreg.search.strategy import Search, Step, Strategy
from mlreg.spec import ExperimentSpec, SpecError, accepts, label

BOOTSTRAP = 400
"""Bootstrap resamples of the seeds (and draws) for the location of each size's best rate."""

WIDEST = 7
"""Rates trained at the full size at most (the prediction and its neighbours, a factor 3 apart)."""


class Extrapolate(Strategy):
    kind = "extrapolate"

    @classmethod
    def applies(cls, spec: ExperimentSpec) -> bool:
        return "extrapolate" in spec.search.strategies

    @classmethod
    def adds(cls, spec: ExperimentSpec) -> tuple[str, ...]:
        return ("train_size",)

    def start(self, search: Search, live: list[str]) -> list[str]:
        """The grid's settings on the subsets (logged once, one decision a setting)."""
        logged = {d["from"]: d for d in search.log if d["kind"] == self.kind and d["phase"] == "subsets"}
        for s in live:
            if s not in logged:
                logged[s] = {"kind": self.kind, "phase": "subsets", "param": "train_size", "from": s,
                             "values": subset_sizes(search.spec)}
                search.new.append(logged[s])
        self.full = list(live)
        search.add_values([logged[s] for s in live])
        return [key(s, "train_size", v) for s in live for v in logged[s]["values"]]

    def next(self, search: Search, live: list[str]) -> Step | None:
        if any(json.loads(s)["train_size"] == search.spec.data.train_size for s in live):
            return None  # the full size trained: the answer is among them
        logged = [d for d in search.log if d["kind"] == self.kind and d["phase"] == "full"]
        if not logged:
            logged = [self._decide(search, live)]
            search.new += logged
        d = self.decision = logged[0]
        for text in d.get("notes", ()):  # said again when the decision is read back from the journal
            search.note(text)
        search.add_values([d])
        settings = tuple(key(d["from"], d["param"], v) for v in d["values"])
        for s in settings:  # a grid setting among them trains on its own seeds; an added one on its base's
            search.seeds.setdefault(s, list(search.seeds[d["from"]]))
        return Step(f"{len(settings)} rates at the full size", settings, live=settings)

    def _decide(self, search: Search, live: list[str]) -> dict[str, Any]:
        spec = search.spec
        param = spec.curve_param
        fractions = spec.search.fractions
        sizes = subset_sizes(spec)
        pairs = sorted({p for s in live for p in search.scores(s, None)})
        # per size: the rates, and a (pairs x rates) matrix of best scores
        tables = []
        for size in sizes:
            at = sorted((json.loads(s)[param], s) for s in live if json.loads(s)["train_size"] == size)
            rates = np.array([r for r, _ in at], dtype=float)
            scores = [search.scores(s, None) for _, s in at]
            table = np.array([[sc.get(p, np.nan) for sc in scores] for p in pairs], dtype=float)
            tables.append((rates, table))
        notes = []
        values = sorted({json.loads(s)[param] for s in self.full})
        grid = np.array(values, dtype=float)
        positive = grid[grid > 0]  # the grid's ends, whatever halving pruned
        for (rates, table), fraction in zip(tables, fractions, strict=True):
            mean = column_means(table)
            best = rates[int(np.nanargmin(mean))] if np.isfinite(mean).any() else None
            if len(positive) and best in (positive[0], positive[-1]):
                notes.append(f"extrapolate: the best {param} on {label(fraction)} of the data is the grid's "
                             f"{'first' if best == positive[0] else 'last'} positive value, "
                             f"so it bounds the prediction: extend the grid")
        located = np.array([[best_rate(rates, table[rows]) for rates, table in tables]
                            for rows in resamples(len(pairs))])
        x = np.log(np.asarray(fractions))
        fits = [fit(x, np.log(row)) for row in located if np.all(np.isfinite(row)) and np.all(row > 0)]
        point = located[0]
        if not np.all(np.isfinite(point)) or not np.all(point > 0) or len(fits) < BOOTSTRAP // 2:
            why = ("the best rate is 0 (none) at some size, so there is no power law to fit"
                   if np.any(point == 0) else "the best rate is not located at every size")
            notes.append(f"extrapolate: {why}; the full size trains the grid's rates")
            return {"kind": self.kind, "phase": "full", "param": param, "from": self.full[0],
                    "values": values, "fit": None,
                    "best_by_size": [float(v) for v in point], "fractions": list(fractions), "notes": notes}
        slope, intercept = fit(x, np.log(point))
        predictions = np.exp([b for _, b in fits])
        slopes = np.array([a for a, _ in fits])
        low, high = (float(v) for v in np.percentile(predictions, [2.5, 97.5]))
        predicted = float(np.exp(intercept))
        values = candidates(predicted, low, high, param)
        base = min(self.full, key=lambda s: abs(math.log(max(json.loads(s)[param], 1e-300) / predicted)))
        slope_low, slope_high = (float(v) for v in np.percentile(slopes, [2.5, 97.5]))
        return {"kind": self.kind, "phase": "full", "param": param, "from": base, "values": values,
                "fractions": list(fractions), "best_by_size": [float(v) for v in point],
                "fit": {"slope": float(slope), "slope_interval": [slope_low, slope_high],
                        "prediction": predicted, "interval": [low, high],
                        "inverse_n": bool(slope_low <= -1.0 <= slope_high)}, "notes": notes}

    decision: dict[str, Any] | None = None

    def answer(self, search: Search, live: list[str], verdicts: dict[str, Any]) -> dict[str, Any]:
        d = self.decision
        if d is None:
            return {}
        spent = sum(len(search.curves.get(r.run_id, ())) * fraction_of(r, search.spec)
                    for runs in search.settings.values() for r in runs if r.run_id in search.status)
        return {"run_epochs": round(spent), "extrapolation": {  # run-epochs at the full size's cost
            "param": d["param"], "fractions": d["fractions"], "best_by_size": d["best_by_size"], "fit": d["fit"],
            "trained": d["values"], "confirmed": json.loads(verdicts["best"])[d["param"]]}}


def refuse_small_subsets(spec: ExperimentSpec, datasets: Iterable[Any]) -> None:
    """Refuses, before training, an extrapolating search whose smallest subset of a data set
    cannot hold two samples of every class."""
    for d in datasets:
        classes = len(np.unique(d.y_train)) if d.task in ("single_label", "binary") else 1
        smallest = round(spec.search.fractions[0] * len(d.x_train))
        if smallest < 2 * classes:
            raise SpecError(f"{spec.source}: Invalid value for `search.fractions`: the smallest subset, "
                            f"{spec.search.fractions[0]:g} of {len(d.x_train)} training samples, holds {smallest}, "
                            f"fewer than two of each of the {classes} classes; give larger fractions or more data. "
                            f"Received: fractions={list(spec.search.fractions)}")


def subset_sizes(spec: ExperimentSpec) -> list[float | int]:
    """`data.train_size` times each fraction: a fraction of the pool, or a count (at least 2)."""
    size = spec.data.train_size
    if isinstance(size, int):
        return [max(2, round(f * size)) for f in spec.search.fractions]
    return [float(f"{f * size:.6g}") for f in spec.search.fractions]


def fraction_of(run: Any, spec: ExperimentSpec) -> float:
    """The share of the full training set a run trains on."""
    return float(run.data.train_size) / float(spec.data.train_size)


def key(setting: str, param: str, value: Any) -> str:
    """The key of `setting` with `param` at `value` (the driver's `setting_of` order kept)."""
    return json.dumps(json.loads(setting) | {param: value})


def resamples(n: int) -> list[np.ndarray]:
    """The rows of the bootstrap over `n` pairs: all of them first, then `BOOTSTRAP` resamples with
    replacement (seeded, so a search read back from its journal and a replay draw the same)."""
    rng = np.random.default_rng(0)
    return [np.arange(n)] + [rng.integers(0, n, n) for _ in range(BOOTSTRAP)]


def best_rate(rates: np.ndarray, table: np.ndarray) -> float:
    """Where the mean curve (over the rows, NaN-free columns) has its minimum: the vertex of the
    parabola in log rate through the best positive rate tried and its two neighbours when it falls
    between them, else the best rate tried itself; 0 when no rate beats none."""
    mean = column_means(table)
    if not np.isfinite(mean).any():
        return math.nan
    i = int(np.nanargmin(mean))
    if rates[i] <= 0 or i == 0 or i == len(rates) - 1 or rates[i - 1] <= 0:
        return float(rates[i])
    x, y = np.log(rates[i - 1: i + 2]), mean[i - 1: i + 2]
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return float(rates[i])
    vertex = -b / (2 * a)
    return float(np.exp(np.clip(vertex, x[0], x[2])))


def column_means(table: np.ndarray) -> np.ndarray:
    """Each column's mean over its values (NaN: a pair that setting has no run for, with adaptive
    seeds), NaN for a column without one, without numpy's warning for it."""
    n = np.sum(~np.isnan(table), axis=0)
    return np.where(n > 0, np.nansum(table, axis=0) / np.maximum(n, 1), np.nan)


def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares `y = slope x + intercept`; the intercept is the prediction at x = 0 (all the data)."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def candidates(predicted: float, low: float, high: float, param: str) -> list[float]:
    """The prediction and its neighbours a factor 3 apart, over the interval and at least x/ 3,
    `WIDEST` at most (those nearest the prediction), each a value `param` may take."""
    down = max(1, min(WIDEST // 2, math.ceil(math.log(predicted / low, 3)) if low > 0 else WIDEST // 2))
    up = max(1, min(WIDEST // 2, math.ceil(math.log(high / predicted, 3)) if high > predicted else 1))
    values = [float(f"{predicted * 3.0 ** k:.3g}") for k in range(-down, up + 1)]
    return [v for v in values if accepts(param, v)]


def line(extrapolation: dict[str, Any], monitor: str) -> list[str]:
    """The answer's lines: the prediction with its interval, the law that fits, what trained and
    what it confirmed."""
    param, f = extrapolation["param"], extrapolation["fit"]
    sizes = ", ".join(f"{label(v)} at {label(fr)}" for v, fr in zip(extrapolation["best_by_size"],
                                                                     extrapolation["fractions"], strict=True))
    out = [f"extrapolated {param}: best {sizes} of the data"]
    if f is not None:
        law = "1/N fits (slope -1 inside its interval)" if f["inverse_n"] else "not 1/N (slope -1 outside its interval)"
        out.append(f"predicted for all the data: {param} = {label(f['prediction'])} [{label(f['interval'][0])}, "
                   f"{label(f['interval'][1])}]; power law slope {f['slope']:.2f} "
                   f"[{f['slope_interval'][0]:.2f}, {f['slope_interval'][1]:.2f}], {law}")
    trained = ", ".join(label(v) for v in extrapolation["trained"])
    out.append(f"trained at the full size: {trained}; confirmed best {param} = {label(extrapolation['confirmed'])}")
    return out


