"""Which runs to train next: successive halving, seeds where the decision needs them, zooming in.

A search proposes *rounds* of runs and reads their records; it never trains (the runner does)
and never writes (the store does). Each decision it takes is logged (`search.jsonl`) before
anything it decided is trained or recorded, so a search that resumes replays the log and
decides nothing twice; settings the log never saw (a grown grid) are decided on their own.

- **Halving** (`[search] strategy = "halving"`): rungs at `first_rung`, `first_rung * factor`,
  ... epochs. At a rung each setting is scored by its runs' best value of the early-stopping
  monitor so far (all its seeds and splits). A setting stops there (`pruned`) when it is outside
  the best `1/factor`, worse than the rung's best beyond the 95% interval of their paired
  differences (`mlreg.stats.paired_test`), *and* still worse so when each curve is projected to
  the last epoch at the rate its best fell over its latest half (`projected`): noise alone
  prunes nothing, and neither does slowness. Early in training more regularization is always
  behind (it learns slower), so a rung that ranks by the level alone prunes the settings the
  question is about (mlreg 0.3 did: on the committed grids replayed at 42 epochs it pruned the
  grid's best in 7 of 20; with the projection in 0 of 20, `benchmarks/replay_search.py`). With
  one pair per setting there is no interval, and the rank alone decides (said once).
- **Seeds** (`seeds = {start, max}`): after the last rung, the best setting and every setting
  whose interval against it still holds zero get more seeds (doubling), until each is
  separated from the best, tied with it within `margin`, or `max` is reached.
- **Zoom** (`[search] zoom = n`): a parameter swept on a log grid gets the geometric midpoints
  between the best value and its neighbours, on the best setting's seeds. When the answer's
  best value is at the grid's end, the answer says so, with the value to extend the grid to.

The answer (best, tied, separated, undecided; run-epochs spent against the full grid) is
logged last, printed by `mlreg run` and shown at the top of the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlreg.records import RunResult, monitor_mode
from mlreg.spec import PARAMS, AdaptiveSeeds, ExperimentSpec, RunSpec, label
from mlreg.stats import paired_test

ENDED = ("ok", "diverged", "pruned")
"""Statuses of runs that need no more training."""


@dataclass(frozen=True)
class Round:
    """Runs to train now: to `until` epochs (a rung) or, with `None`, to the end; the runs in
    `resume` go on from their paused states."""

    title: str
    runs: tuple[RunSpec, ...]
    until: int | None = None
    resume: Mapping[str, Any] = field(default_factory=dict)


def first_rung(spec: ExperimentSpec) -> int:
    """The first rung in epochs: `[search] first_rung`, else `ceil(epochs / 7)` (see `SearchSpec`)."""
    return spec.search.first_rung or math.ceil(spec.training.epochs / 7)


def rungs(spec: ExperimentSpec) -> list[int]:
    """The epochs at which halving decides (all below `training.epochs`); none for the grid."""
    if spec.search.strategy != "halving":
        return []
    out, e = [], first_rung(spec)
    while e < spec.training.epochs:
        out.append(e)
        e *= spec.search.factor
    return out


def describe_search(spec: ExperimentSpec) -> str:
    """`halving (factor 3) with rungs at 22, 66 epochs; seeds 3 to 10, doubling; zoom 1 round`."""
    parts = []
    if spec.search.strategy == "halving":
        at = ", ".join(map(str, rungs(spec))) or "none (first_rung >= epochs)"
        parts.append(f"halving (factor {spec.search.factor}) with rungs at {at} epochs")
    else:
        parts.append("every setting to the end")
    if isinstance(spec.seeds, AdaptiveSeeds):
        parts.append(f"seeds {spec.seeds.start} to {spec.seeds.max} where the decision needs them"
                     + (f" (ties within {spec.search.margin:g})" if spec.search.margin else ""))
    if spec.search.zoom:
        parts.append(f"zoom {spec.search.zoom} round{'s' * (spec.search.zoom != 1)}")
    return "; ".join(parts)


def setting_of(run: RunSpec, swept: Sequence[str]) -> str:
    """A setting's key: its swept parameters' values, as JSON."""
    params = run.params_for_csv()
    return json.dumps({k: params.get(k) for k in swept})


def _pair(run: RunSpec) -> tuple[Any, ...]:
    """What pairs two settings' runs: the seed and the data they saw."""
    return run.seed, run.split, run.fold, run.draw


class Search:
    """One search over a plan (see the module's text).

    Args:
        spec: the experiment (its `[search]`, `seeds`, `early_stopping.monitor`).
        plan: every run the experiment may train (all `seeds.max` seeds).
        curves: the monitored column per epoch of the runs already recorded, by run id.
        statuses: their statuses.
        log: the decisions logged so far (`ResultsStore.decisions`).
        say: prints a note (said once per note).
        overlap: `n_val / n_train` when the runs span several splits of one data set
            (`repeats`, `folds`): the intervals are then Nadeau and Bengio's, as `compare`'s.
            Defaults to `0.0` (seeds on one split, or independent draws: the plain paired t).
    """

    def __init__(self, spec: ExperimentSpec, plan: Sequence[RunSpec], curves: Mapping[str, Sequence[float]],
                 statuses: Mapping[str, str], log: Sequence[dict[str, Any]], say: Callable[[str], None],
                 overlap: float = 0.0) -> None:
        self.spec, self.say, self.overlap = spec, say, overlap
        self.swept = list(dict.fromkeys([*spec.swept, *(d["param"] for d in log if d["kind"] == "zoom")]))
        self.sign = -1.0 if monitor_mode(spec.early_stopping.monitor) == "max" else 1.0
        self.curves = {k: self.sign * np.asarray(v, dtype=float) for k, v in curves.items()}
        self.status = {k: v for k, v in statuses.items() if v in ENDED}
        self.log = list(log)
        self.new: list[dict[str, Any]] = []  # decisions taken now, for the driver to log
        self.pruned: list[RunResult] = []  # records for the driver to write
        self.paused: dict[str, RunResult] = {}
        self.settings: dict[str, list[RunSpec]] = {}
        for run in plan:
            self.settings.setdefault(setting_of(run, self.swept), []).append(run)
        self.grid = list(self.settings)  # the zoomed settings join the search where their decision is
        for run in zoomed(spec, plan, log):
            self.settings.setdefault(setting_of(run, self.swept), []).append(run)
        seeds = spec.seed_list
        self.batches = _seed_batches(spec.seeds) if isinstance(spec.seeds, AdaptiveSeeds) else [len(seeds)]
        self.seeds = {s: seeds[: self.batches[0]] for s in self.settings}
        self._said: set[str] = set()
        self.ended = False  # True when the log already held the answer and nothing was left to do

    # -- the rounds ---------------------------------------------------------------------------------
    def rounds(self) -> Generator[Round, list[RunResult], dict[str, Any]]:
        """Yields the rounds to train; takes each round's records (ended and paused runs);
        returns the answer (also logged, as the last decision)."""
        live = list(self.grid)
        for i, rung in enumerate(rungs(self.spec), start=1):
            todo = self._todo(live)
            if todo:
                self._take((yield Round(f"rung {i}: {len(live)} settings to epoch {rung}", todo, rung, self._resume())))
            live = self._rung(rung, live)
        todo = self._todo(live)
        if todo:
            self._take((yield Round(f"{len(live)} settings to the end", todo, None, self._resume())))
        for z in range(self.spec.search.zoom + 1):
            step = 0
            while True:
                step += 1
                added = self._more_seeds(z, step, live)
                if not added:
                    break
                todo = self._todo(live)
                self._take((yield Round(f"more seeds: {len(added)} settings to {len(self.seeds[added[0]])} seeds",
                                        todo)))
            if z == self.spec.search.zoom:
                break
            new = self._zoom(z + 1, live)
            if not new:
                break
            live += new
            self._take((yield Round(f"zoom {z + 1}: {len(new)} new values", self._todo(new))))
        logged = self.log[-1] if self.log else None
        if logged is not None and logged["kind"] == "answer" and not self.new:
            self.ended = True  # started again after its end: its answer is replayed, not written again
            return logged
        answer = self.answer(live)
        self.new.append(answer)
        return answer

    # -- decisions ------------------------------------------------------------------------------------
    def _rung(self, rung: int, live: list[str]) -> list[str]:
        """Applies the logged decisions of this rung and decides the settings they never saw."""
        logged = [d for d in self.log if d["kind"] == "rung" and d["at"] == rung]
        seen = {s for d in logged for s in d["considered"]}
        pruned = {s for d in logged for s in d["pruned"]}
        fresh = [s for s in live if s not in seen]
        if fresh:
            decision = self._decide_rung(rung, live, fresh)
            self.new.append(decision)
            pruned |= set(decision["pruned"])
        for s in live:
            if s in pruned:
                self._prune(s, rung)
        return [s for s in live if s not in pruned]

    def _decide_rung(self, rung: int, live: list[str], considered: list[str]) -> dict[str, Any]:
        scores = {s: self._scores(s, rung) for s in live}
        ahead = {s: self._scores(s, rung, project=True) for s in live}
        means = {s: _mean(v) for s, v in scores.items()}
        order = sorted(live, key=lambda s: means[s])
        best = order[0]
        keep = set(order[: math.ceil(len(order) / self.spec.search.factor)])
        pruned = []
        for s in considered:
            if s in keep:
                continue
            d = _differences(scores[s], scores[best])
            if not d or not all(map(math.isfinite, d)):
                pruned.append(s)  # a run diverged, or nothing to pair: out by rank
            elif len(d) < 2:
                self._note("halving with one seed and split per setting decides on one number per setting "
                           "(no interval): give it seeds >= 2")
                pruned.append(s)
            elif paired_test(d, self.overlap)[1] > 0 and paired_test(_differences(ahead[s], ahead[best]),
                                                                     self.overlap)[1] > 0:
                pruned.append(s)  # behind now, and still behind if it went on falling as fast as lately
        return {"kind": "rung", "at": rung, "considered": considered, "best": best, "pruned": pruned}

    def _more_seeds(self, zoom: int, step: int, live: list[str]) -> list[str]:
        """The settings that get the next batch of seeds now (logged), or none."""
        logged = next((d for d in self.log if d["kind"] == "seeds" and d["zoom"] == zoom and d["step"] == step), None)
        if logged is None:
            if len(self.batches) == 1:
                return []
            verdicts = self.verdicts(live)
            best = verdicts["best"]
            open_ = [s for s in verdicts["open"] if len(self.seeds[s]) < self.batches[-1]]
            if not open_:
                return []
            logged = {"kind": "seeds", "zoom": zoom, "step": step, "settings": [best, *open_]}
            self.new.append(logged)
        for s in logged["settings"]:
            have = len(self.seeds[s])
            more = next((b for b in self.batches if b > have), have)
            self.seeds[s] = self.spec.seed_list[:more]
        return list(logged["settings"])

    def _zoom(self, z: int, live: list[str]) -> list[str]:
        """New settings between the best value of a log-grid parameter and its neighbours."""
        logged = [d for d in self.log if d["kind"] == "zoom" and d["at"] == z]
        if not logged:
            best = self.verdicts(live)["best"]
            for param in _log_params(self.spec):
                values = _midpoints(param, best, list(self.settings))
                if values:
                    decision = {"kind": "zoom", "at": z, "param": param, "from": best, "values": values}
                    self.new.append(decision)
                    logged.append(decision)
        new: list[str] = []
        for d in logged:
            for run in _zoom_runs(self.settings[d["from"]], d["param"], d["values"]):
                key = setting_of(run, self.swept)
                runs = self.settings.setdefault(key, [])
                if run.run_id not in {r.run_id for r in runs}:
                    runs.append(run)
                if key not in live and key not in new:
                    new.append(key)
                    self.seeds[key] = list(self.seeds[d["from"]])
        return new

    def verdicts(self, live: Sequence[str]) -> dict[str, Any]:
        """The best setting by its mean final score, and every other one as separated from it
        (its interval above zero), tied (within `±margin`) or open."""
        scores = {s: self._scores(s, None) for s in live}
        means = {s: _mean(v) for s, v in scores.items()}
        best = min(live, key=lambda s: means[s])
        margin = self.spec.search.margin
        out: dict[str, Any] = {"best": best, "separated": [], "tied": [], "open": [], "means": means}
        for s in live:
            if s == best:
                continue
            d = _differences(scores[s], scores[best])
            finite = d and all(map(math.isfinite, d))
            _, low, high, _ = paired_test(d, self.overlap) if finite else (0, math.inf, math.inf, 0)
            if low > 0:
                out["separated"].append(s)
            elif margin > 0 and -margin <= low and high <= margin:
                out["tied"].append(s)
            else:
                out["open"].append(s)
        return out

    def answer(self, live: list[str]) -> dict[str, Any]:
        """The search's answer, as logged and shown (see `describe`)."""
        v = self.verdicts(live)
        for param in _log_params(self.spec):
            end = grid_end(param, v["best"], list(self.settings))
            if end:
                self._note(end)
        seeds = max(len(self.seeds[s]) for s in live)
        grid = self.spec.n_settings * seeds * self.spec.n_resamples * self.spec.training.epochs
        runs = [r for rs in self.settings.values() for r in rs if r.run_id in self.status]
        pruned = sorted({s for s, rs in self.settings.items()
                         if any(self.status.get(r.run_id) == "pruned" for r in rs)})
        return {
            "kind": "answer", "monitor": self.spec.early_stopping.monitor, "best": v["best"],
            "best_mean": self.sign * v["means"][v["best"]], "tied": v["tied"], "separated": v["separated"],
            "open": v["open"], "pruned": pruned, "seeds": seeds, "runs": len(runs),
            "run_epochs": int(sum(len(self.curves.get(r.run_id, ())) for r in runs)), "grid_run_epochs": grid,
            "notes": sorted(self._said),
        }

    # -- runs and scores ------------------------------------------------------------------------------
    def _todo(self, live: Iterable[str]) -> tuple[RunSpec, ...]:
        return tuple(r for s in live for r in self.settings[s]
                     if r.seed in self.seeds[s] and r.run_id not in self.status)

    def _resume(self) -> dict[str, Any]:
        return {k: r.state for k, r in self.paused.items() if r.state is not None}

    def _take(self, results: list[RunResult]) -> None:
        monitor = self.spec.early_stopping.monitor
        for r in results:
            values = [math.nan if row.get(monitor) is None else row[monitor] for row in r.history]
            self.curves[r.run_id] = self.sign * np.array(values, dtype=float)
            if r.status == "paused":
                self.paused[r.run_id] = r
            elif r.status == "failed":
                self.paused.pop(r.run_id, None)
                self.curves.pop(r.run_id, None)  # no score: it is trained again when the sweep resumes
            else:
                self.paused.pop(r.run_id, None)
                if r.status in ENDED:
                    self.status[r.run_id] = r.status

    def _prune(self, setting: str, rung: int) -> None:
        for run in self.settings[setting]:
            paused = self.paused.pop(run.run_id, None)
            if paused is not None:
                summary = paused.summary | {"pruned_at": rung}
                self.pruned.append(replace(paused, status="pruned", summary=summary, state=None))
                self.status[run.run_id] = "pruned"

    def _scores(self, setting: str, until: int | None, project: bool = False) -> dict[tuple[Any, ...], float]:
        """Each trained run's best monitored value (lower is better) in its first `until`
        epochs (all of them with `None`): infinite for a run that diverged. With `project`, the
        value it would reach by the last epoch if it went on improving as fast as over the
        latest half of its epochs (see `projected`)."""
        out = {}
        for run in self.settings[setting]:
            curve = self.curves.get(run.run_id)
            if curve is None or run.seed not in self.seeds[setting]:
                continue
            part = curve[:until] if until is not None else curve
            diverged = self.status.get(run.run_id) == "diverged" or not np.isfinite(part).any()
            if diverged:
                out[_pair(run)] = math.inf
            elif project and len(part) == until:  # a run early stopping ended does not improve any more
                out[_pair(run)] = projected(part, self.spec.training.epochs)
            else:
                out[_pair(run)] = float(np.nanmin(part))
        return out

    def _note(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self.say(text)


# -- helpers -------------------------------------------------------------------------------------------
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


def _seed_batches(seeds: AdaptiveSeeds) -> list[int]:
    """How many seeds each step of a search has: start, doubled, ..., max."""
    out = [seeds.start]
    while out[-1] < seeds.max:
        out.append(min(out[-1] * 2, seeds.max))
    return out


def _mean(scores: Mapping[Any, float]) -> float:
    return float(np.mean(list(scores.values()))) if scores else math.inf


def _differences(a: Mapping[Any, float], b: Mapping[Any, float]) -> list[float]:
    return [a[k] - b[k] for k in a if k in b]


def _log_params(spec: ExperimentSpec) -> list[str]:
    """The grid's numeric parameters swept on a log grid: three or more positive values (zero
    beside them is allowed), each at least twice the one before."""
    out = []
    for param, values in spec.grid.items():
        numbers = sorted(v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and v > 0)
        if len(numbers) >= 3 and all(b >= 2 * a for a, b in zip(numbers, numbers[1:], strict=False)):
            out.append(param)
    return out


def _along(param: str, best: str, settings: Sequence[str]) -> list[Any]:
    """The positive values of `param` among the settings (pruned ones too) that differ from
    the best only in it, in order."""
    fixed = {k: v for k, v in json.loads(best).items() if k != param}
    return sorted({json.loads(s)[param] for s in settings
                   if {k: v for k, v in json.loads(s).items() if k != param} == fixed and json.loads(s)[param] > 0})


def _midpoints(param: str, best: str, settings: Sequence[str]) -> list[float]:
    """The geometric midpoints between the best value of `param` and its neighbours (`_along`)."""
    values, value = _along(param, best, settings), json.loads(best)[param]
    if value not in values:
        return []
    i = values.index(value)
    out = [float(f"{math.sqrt(value * n):.3g}") for n in (values[i - 1] if i else None,
                                                           values[i + 1] if i + 1 < len(values) else None) if n]
    return [v for v in out if v not in values]


def grid_end(param: str, best: str, settings: Sequence[str]) -> str | None:
    """What to say when the best value of `param` is at the end of its values: the value to
    extend the grid to. Said of the answer's best only, so that it never contradicts it."""
    values, value = _along(param, best, settings), json.loads(best)[param]
    if value not in values or len(values) < 2 or values.index(value) not in (0, len(values) - 1):
        return None
    first = values.index(value) == 0
    other = value / (values[1] / values[0]) if first else value * (values[-1] / values[-2])
    end = ("smallest value above 0" if 0 in {json.loads(s)[param] for s in settings} else "first value") \
        if first else "last value"
    to = label(float(f"{other:.3g}"))
    return f"the best {param} = {label(value)} is the grid's {end}: extend the grid (e.g. to {to})"


def _zoom_runs(base: Sequence[RunSpec], param: str, values: Sequence[float]) -> list[RunSpec]:
    section, name = PARAMS[param]
    return [replace(run, **{section: getattr(run, section).model_copy(update={name: value})})
            for value in values for run in base]


def zoomed(spec: ExperimentSpec, plan: Sequence[RunSpec], log: Sequence[dict[str, Any]]) -> list[RunSpec]:
    """The runs the logged zoom decisions added to the plan (a store that takes over a grown
    experiment counts them in)."""
    swept = list(dict.fromkeys([*spec.swept, *(d["param"] for d in log if d["kind"] == "zoom")]))
    by_setting: dict[str, list[RunSpec]] = {}
    for run in plan:
        by_setting.setdefault(setting_of(run, swept), []).append(run)
    out: list[RunSpec] = []
    for d in (d for d in log if d["kind"] == "zoom"):
        base = by_setting.get(d["from"], [])
        for run in _zoom_runs(base, d["param"], d["values"]):
            by_setting.setdefault(setting_of(run, swept), []).append(run)
            out.append(run)
    return out


def replay(spec: ExperimentSpec, root: str | Path, say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The answer `spec`'s search gives on the curves a grid already recorded in the results
    directory `root`: each run the search trains is served its recorded curve (`history.csv`)
    up to the round's epochs. `spec` is that grid's experiment with a `[search]` (and `epochs`,
    `seeds`) of its own; its settings must be among the grid's, zoom's new values are not (use
    `zoom = 0`). Trains nothing: this is how the rung rule and `first_rung`'s default were
    measured (`benchmarks/replay_search.py`).

    Example:
        >>> d = load_spec("results/l2_rate/spec.toml").to_dict()  # doctest: +SKIP
        >>> halving = ExperimentSpec.from_dict(d | {"search": {"strategy": "halving"}})  # doctest: +SKIP
        >>> replay(halving, "results/l2_rate")["best"]  # doctest: +SKIP
    """
    from mlreg.spec import load_spec
    from mlreg.store import read_curves

    recorded = load_spec(Path(root) / "spec.toml")
    monitor = spec.early_stopping.monitor
    curves = read_curves(root, monitor)
    have = {(setting_of(r, recorded.swept), *_pair(r)): r.run_id for r in recorded.expand()}
    search = Search(spec, spec.expand(), {}, {}, [], say)
    rounds, results = search.rounds(), None
    while True:
        try:
            step = rounds.send(results)  # type: ignore[arg-type]
        except StopIteration as stop:
            return stop.value
        results = []
        for run in step.runs:
            curve = curves[have[(setting_of(run, spec.swept), *_pair(run))]][: spec.training.epochs]
            end = len(curve) if step.until is None else min(step.until, len(curve))
            status = "paused" if step.until is not None and len(curve) > step.until else "ok"
            results.append(RunResult(run.run_id, status, {"epochs_run": end}, [{monitor: v} for v in curve[:end]]))
