"""A search, start to end: its state (settings, their seeds, the runs' curves and statuses,
the decisions logged) and the rounds it proposes to train, asking its strategies
(`mlreg.search.strategy`) at each rung and after each round.

A search proposes *rounds* of runs and reads their records; it never trains (the runner does)
and never writes (the store does). Each decision a strategy takes is logged (`search.jsonl`)
before anything it decided is trained or recorded, so a search that resumes replays the log and
decides nothing twice; settings the log never saw (a grown grid) are decided on their own. The
answer (best, tied, separated, undecided; run-epochs spent against the full grid; where a curve
search pinned the best rate) is logged last, printed by `mlreg run` and shown at the top of the
report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mlreg.records import RunResult, monitor_mode
from mlreg.search.curve import Curve
from mlreg.search.extrapolate import Extrapolate
from mlreg.search.halving import Halving, projected, rungs
from mlreg.search.seeds import Seeds, seed_batches
from mlreg.search.strategy import Strategy
from mlreg.search.zoom import Zoom, along
from mlreg.spec import PARAMS, AdaptiveSeeds, ExperimentSpec, RunSpec, label, log_swept
from mlreg.stats import paired_test

ENDED = ("ok", "diverged", "pruned")
"""Statuses of runs that need no more training."""

ADDS = ("zoom", "curve", "extrapolate")
"""Kinds of decisions that add values of a parameter (`from` a setting, `values`)."""


@dataclass(frozen=True)
class Round:
    """Runs to train now: to `until` epochs (a rung) or, with `None`, to the end; the runs in
    `resume` go on from their paused states."""

    title: str
    runs: tuple[RunSpec, ...]
    until: int | None = None
    resume: Mapping[str, Any] = field(default_factory=dict)


def describe_search(spec: ExperimentSpec) -> str:
    """`halving (factor 3) with rungs at 22, 66 epochs; seeds 3 to 10 where the decision needs them;
    zoom 1 round` (and the curve search's rate and precision)."""
    parts = []
    if "halving" in spec.search.strategies:
        at = ", ".join(map(str, rungs(spec))) or "none (first_rung >= epochs)"
        parts.append(f"halving (factor {spec.search.factor}) with rungs at {at} epochs")
    else:
        parts.append("every setting to the end")
    if "extrapolate" in spec.search.strategies:
        fractions = ", ".join(label(f) for f in spec.search.fractions)
        inside = f", {parts[-1]} inside each size" if "halving" in spec.search.strategies else ""
        parts[-1] = (f"the grid of {spec.curve_param} on {fractions} of the training set{inside}, then at the full "
                     f"size the rate its best rates predict and the neighbours within the prediction's interval")
    if "curve" in spec.search.strategies:
        parts.append(f"new values of {spec.curve_param} where the best may be, until it is pinned to a factor "
                     f"{spec.search.precision:g}")
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


STRATEGIES: tuple[type[Strategy], ...] = (Halving, Seeds, Zoom, Curve, Extrapolate)
"""Every strategy, in the order they are asked: pruners first, then the samplers, seeds before
new values (so that values are placed once the live ones are decided). A new strategy is a class
here; those named by `[search] strategy` are `NAMED`."""

NAMED: dict[str, type[Strategy]] = {"halving": Halving, "curve": Curve, "extrapolate": Extrapolate}
"""The strategies `[search] strategy` names (keyed by `mlreg.spec.STRATEGIES`, `grid` aside)."""


def strategies(spec: ExperimentSpec) -> list[Strategy]:
    """The strategies a spec asks for, in `STRATEGIES`' order."""
    return [cls() for cls in STRATEGIES if cls.applies(spec)]


def swept(spec: ExperimentSpec, log: Sequence[dict[str, Any]] = ()) -> list[str]:
    """What settings differ in: the swept parameters, those a strategy varies itself (the
    training-set size of an extrapolating search) and those logged decisions added values of."""
    adds = [p for cls in STRATEGIES if cls.applies(spec) for p in cls.adds(spec)]
    return list(dict.fromkeys([*spec.swept, *adds, *(d["param"] for d in log if d["kind"] in ADDS)]))


class Search:
    """One search over a plan (see the module's text): the state every strategy reads and
    changes, and the rounds.

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
        self.swept = swept(spec, log)
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
        self.grid = list(self.settings)  # the added settings join the search where their decision is
        for run in added(spec, plan, log):
            self.settings.setdefault(setting_of(run, self.swept), []).append(run)
        seeds = spec.seed_list
        self.batches = seed_batches(spec.seeds) if isinstance(spec.seeds, AdaptiveSeeds) else [len(seeds)]
        self.seeds = {s: seeds[: self.batches[0]] for s in self.settings}
        self.expansions = 0  # sampler steps that added values so far (zoom, curve)
        self.strategies = strategies(spec)
        self._said: set[str] = set()
        self.ended = False  # True when the log already held the answer and nothing was left to do

    # -- the rounds ---------------------------------------------------------------------------------
    def rounds(self) -> Generator[Round, list[RunResult], dict[str, Any]]:
        """Yields the rounds to train; takes each round's records (ended and paused runs);
        returns the answer (also logged, as the last decision)."""
        live = list(self.grid)
        for strategy in self.strategies:
            live = strategy.start(self, live)
        rungs_ = sorted({r for strategy in self.strategies for r in strategy.rungs(self)})
        for i, rung in enumerate(rungs_, start=1):
            todo = self._todo(live)
            if todo:
                self._take((yield Round(f"rung {i}: {len(live)} settings to epoch {rung}", todo, rung, self._resume())))
            for strategy in self.strategies:
                live = strategy.at_rung(self, rung, live)
        todo = self._todo(live)
        if todo:
            self._take((yield Round(f"{len(live)} settings to the end", todo, None, self._resume())))
        while True:
            step = next((step for strategy in self.strategies if (step := strategy.next(self, live))), None)
            if step is None:
                break
            live = list(step.live) if step.live is not None else live + [s for s in step.settings if s not in live]
            todo = self._todo(live)
            if todo:
                self._take((yield Round(step.title, todo)))
        logged = self.log[-1] if self.log else None
        if logged is not None and logged["kind"] == "answer" and not self.new:
            self.ended = True  # started again after its end: its answer is replayed, not written again
            return logged
        answer = self.answer(live)
        self.new.append(answer)
        return answer

    def drive(self, train: Callable[[Round], list[RunResult]],
              keep: Callable[[list[dict[str, Any]], list[RunResult]], None] = lambda decisions, pruned: None,
              ) -> dict[str, Any]:
        """Runs the search to its answer: `train(round)` trains a round and returns its records;
        `keep(decisions, pruned)` is handed the decisions taken and the pruned runs' records before
        anything they decided is trained, and once more at the end (the runner logs and writes
        them; a replay drops them). Returns the answer."""
        rounds, results = self.rounds(), None
        while True:
            try:
                step = rounds.send(results)  # type: ignore[arg-type]
            except StopIteration as stop:
                self._hand(keep)
                return stop.value
            self._hand(keep)
            results = train(step)

    def _hand(self, keep: Callable[[list[dict[str, Any]], list[RunResult]], None]) -> None:
        new, pruned = self.new, self.pruned
        self.new, self.pruned = [], []
        keep(new, pruned)

    # -- what strategies use --------------------------------------------------------------------------
    def verdicts(self, live: Sequence[str]) -> dict[str, Any]:
        """The best setting by its mean final score, and every other one as separated from it
        (its interval above zero), tied (within `±margin`) or open."""
        scores = {s: self.scores(s, None) for s in live}
        means = {s: self.mean(v) for s, v in scores.items()}
        best = min(live, key=lambda s: means[s])
        margin = self.spec.search.margin
        out: dict[str, Any] = {"best": best, "separated": [], "tied": [], "open": [], "means": means}
        for s in live:
            if s == best:
                continue
            d = self.differences(scores[s], scores[best])
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
        """The search's answer, as logged and shown (see `mlreg.search.answer.describe`)."""
        v = self.verdicts(live)
        for param in log_swept(self.spec.grid):
            end = grid_end(param, v["best"], list(self.settings))
            if end:
                self.note(end)
        seeds = max(len(self.seeds[s]) for s in live)
        grid = self.spec.n_settings * seeds * self.spec.n_resamples * self.spec.training.epochs
        runs = [r for rs in self.settings.values() for r in rs if r.run_id in self.status]
        pruned = sorted({s for s, rs in self.settings.items()
                         if any(self.status.get(r.run_id) == "pruned" for r in rs)})
        out = {
            "kind": "answer", "monitor": self.spec.early_stopping.monitor, "best": v["best"],
            "best_mean": self.sign * v["means"][v["best"]], "tied": v["tied"], "separated": v["separated"],
            "open": v["open"], "pruned": pruned, "seeds": seeds, "runs": len(runs),
            "run_epochs": int(sum(len(self.curves.get(r.run_id, ())) for r in runs)), "grid_run_epochs": grid,
        }
        for strategy in self.strategies:
            out |= strategy.answer(self, live, v)
        return out | {"notes": sorted(self._said)}

    def add_values(self, decisions: Sequence[dict[str, Any]]) -> list[str]:
        """The settings that decisions adding values of a parameter (`from` a setting, `values`)
        bring in, on the `from` setting's seeds; counts a step of new values."""
        new: list[str] = []
        for d in decisions:
            for run in _added_runs(self.settings[d["from"]], d["param"], d["values"]):
                key = setting_of(run, self.swept)
                runs = self.settings.setdefault(key, [])
                if run.run_id not in {r.run_id for r in runs}:
                    runs.append(run)
                if key not in new and key not in self.grid:
                    new.append(key)
                    self.seeds[key] = list(self.seeds[d["from"]])
        self.expansions += bool(decisions)
        return new

    def prune(self, setting: str, rung: int) -> None:
        """Stops a setting's paused runs at `rung`: each becomes a `pruned` record."""
        for run in self.settings[setting]:
            paused = self.paused.pop(run.run_id, None)
            if paused is not None:
                summary = paused.summary | {"pruned_at": rung}
                self.pruned.append(replace(paused, status="pruned", summary=summary, state=None))
                self.status[run.run_id] = "pruned"

    def scores(self, setting: str, until: int | None, project: bool = False) -> dict[tuple[Any, ...], float]:
        """Each trained run's best monitored value (lower is better) in its first `until`
        epochs (all of them with `None`): infinite for a run that diverged. With `project`, the
        value it would reach by the last epoch if it went on improving as fast as over the
        latest half of its epochs (see `halving.projected`)."""
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

    @staticmethod
    def mean(scores: Mapping[Any, float]) -> float:
        return float(np.mean(list(scores.values()))) if scores else math.inf

    @staticmethod
    def differences(a: Mapping[Any, float], b: Mapping[Any, float]) -> list[float]:
        """Paired differences: over the (seed, split, fold, draw) both have."""
        return [a[k] - b[k] for k in a if k in b]

    def note(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self.say(text)

    # -- runs -----------------------------------------------------------------------------------------
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


def grid_end(param: str, best: str, settings: Sequence[str]) -> str | None:
    """What to say when the best value of `param` is at the end of its values: the value to
    extend the grid to. Said of the answer's best only, so that it never contradicts it."""
    values, value = along(param, best, settings), json.loads(best)[param]
    if value not in values or len(values) < 2 or values.index(value) not in (0, len(values) - 1):
        return None
    first = values.index(value) == 0
    other = value / (values[1] / values[0]) if first else value * (values[-1] / values[-2])
    end = ("smallest value above 0" if 0 in {json.loads(s)[param] for s in settings} else "first value") \
        if first else "last value"
    to = label(float(f"{other:.3g}"))
    return f"the best {param} = {label(value)} is the grid's {end}: extend the grid (e.g. to {to})"


def _added_runs(base: Sequence[RunSpec], param: str, values: Sequence[float]) -> list[RunSpec]:
    section, name = PARAMS[param]
    return [replace(run, **{section: getattr(run, section).model_copy(update={name: value})})
            for value in values for run in base]


def added(spec: ExperimentSpec, plan: Sequence[RunSpec], log: Sequence[dict[str, Any]]) -> list[RunSpec]:
    """The runs that logged decisions adding values (zoom, curve) brought into the plan (a store
    that takes over a grown experiment counts them in)."""
    keys = swept(spec, log)
    by_setting: dict[str, list[RunSpec]] = {}
    for run in plan:
        by_setting.setdefault(setting_of(run, keys), []).append(run)
    out: list[RunSpec] = []
    known = {run.run_id for run in plan}  # a value added where the grid has it already adds no run
    for d in (d for d in log if d["kind"] in ADDS):
        base = by_setting.get(d["from"], [])
        for run in _added_runs(base, d["param"], d["values"]):
            if run.run_id not in known:
                known.add(run.run_id)
                by_setting.setdefault(setting_of(run, keys), []).append(run)
                out.append(run)
    return out


