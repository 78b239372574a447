"""A search replayed on the curves a grid recorded: how a strategy's rules and defaults are
measured without training (`benchmarks/replay_search.py`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlreg.records import RunResult
from mlreg.search.driver import Round, Search, _pair, setting_of
from mlreg.spec import ExperimentSpec


def replay(spec: ExperimentSpec, root: str | Path, say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The answer `spec`'s search gives on the curves a grid already recorded in the results
    directory `root`: each run the search trains is served its recorded curve (`history.csv`)
    up to the round's epochs. `spec` is that grid's experiment with a `[search]` (and `epochs`,
    `seeds`) of its own; its settings must be among the grid's, which the values a zoom or a
    curve search adds are not (use halving and seeds). Trains nothing: this is how the rung rule
    and `first_rung`'s default were measured (`benchmarks/replay_search.py`).

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

    def train(step: Round) -> list[RunResult]:
        results = []
        for run in step.runs:
            curve = curves[have[(setting_of(run, spec.swept), *_pair(run))]][: spec.training.epochs]
            end = len(curve) if step.until is None else min(step.until, len(curve))
            status = "paused" if step.until is not None and len(curve) > step.until else "ok"
            results.append(RunResult(run.run_id, status, {"epochs_run": end}, [{monitor: v} for v in curve[:end]]))
        return results

    return Search(spec, spec.expand(), {}, {}, [], say).drive(train)
