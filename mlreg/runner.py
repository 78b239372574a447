"""A sweep, start to end: plan, data, results directory, execution, progress."""

from __future__ import annotations

import contextlib
import json
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlreg import engines, executors
from mlreg.data import Dataset, load
from mlreg.spec import BUILDERS, ExperimentSpec, RunSpec, SpecError
from mlreg.store import ResultsStore


class SweepError(RuntimeError):
    """The sweep stopped early (too many failures in a row). Finished runs are kept."""


@dataclass(frozen=True)
class SweepReport:
    """What a call to `run` did."""

    out: Path
    total: int
    skipped: int
    counts: dict[str, int]

    def __str__(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        resumed = f"; {self.skipped} already done" if self.skipped else ""
        return f"{self.total} runs in {self.out}: {parts or 'nothing to do'}{resumed}"


def default_out(spec: ExperimentSpec) -> Path:
    return Path("results") / spec.name


def prepare_data(plan: list[RunSpec]) -> dict[str, Dataset]:
    """Loads each distinct data configuration of a plan once (before anything is written)."""
    out: dict[str, Dataset] = {}
    for run in plan:
        key = _data_key(run)
        if key not in out:
            out[key] = load(run.data)
    return out


def _data_key(run: RunSpec) -> str:
    return json.dumps(run.data.model_dump(mode="json"), sort_keys=True)


def check_builders(plan: list[RunSpec]) -> None:
    """Imports every user builder of a plan and checks base-model files, so that a typo
    is refused before training."""
    from mlreg.models import user_builder

    for path in {r.model.base_model for r in plan if r.model.base_model}:
        if not Path(path).is_file():
            raise SpecError(f"Invalid value for `model.base_model`: no such file. Received: base_model={path!r}")
    for ref in {r.model.builder for r in plan} - set(BUILDERS):
        try:
            user_builder(ref)
        except ValueError as e:
            raise SpecError(str(e)) from None


def manifest(spec: ExperimentSpec, task: str, n_runs: int, engine: str) -> dict[str, object]:
    import keras
    import tensorflow as tf

    from mlreg import __version__

    return {
        "experiment": spec.name,
        "description": spec.description,
        "swept": spec.swept,
        "task": task,
        "n_runs": n_runs,
        "engine": engine,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlreg": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "git_commit": _git_commit(),
        "command": " ".join(sys.argv),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@contextlib.contextmanager
def _interrupt_flag() -> Iterator[threading.Event]:
    """Ctrl-C sets an event as well as raising KeyboardInterrupt, so that a run during
    which it arrived is never recorded, even if native code swallowed the exception."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield event
        return

    def handler(signum: int, frame: object) -> None:
        event.set()
        raise KeyboardInterrupt

    saved = signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, saved)


def run(
    spec: ExperimentSpec,
    *,
    out: str | Path | None = None,
    fresh: bool = False,
    epochs: int | None = None,
    engine: str | None = None,
    max_pack: int | None = None,
    executor: str = "inline",
    progress: bool = True,
    verbose: bool = False,
) -> SweepReport:
    """Runs an experiment: every (setting, seed) not yet in its results directory.

    Args:
        spec: the experiment (see `mlreg.load_spec`).
        out: the results directory. Defaults to `results/<name>`.
        fresh: move an existing directory aside and start anew. Defaults to `False`.
        epochs: override `training.epochs`, for quick tries. Defaults to `None`.
        engine: `auto`, `fused` or `keras`. Defaults to the file's `training.engine`.
        max_pack: most runs the fused engine trains in one graph. Defaults to
            `mlreg.engines.fused.MAX_PACK`.
        executor: where runs execute; `"inline"` (this process). Defaults to `"inline"`.
        progress: show a progress bar over runs on stderr. Defaults to `True`.
        verbose: let TensorFlow's log messages through. Defaults to `False`.

    Returns:
        A `SweepReport`: where, how many runs, how many `ok` / `diverged` / `failed`.

    Raises:
        SpecError, DataError, StoreError: bad input; nothing was trained or written.
        SweepError: `max_failures` runs failed in a row; finished runs are kept.

    Example:
        >>> report = run(load_spec("experiments/l2_rate.toml"), epochs=2)  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from mlreg.records import columns

    engine = engines.check_engine(engine or spec.training.engine)
    if epochs is not None:
        spec = spec.with_overrides(epochs=epochs)
    execute_packs = executors.get(executor)
    plan = spec.expand()
    datasets = prepare_data(plan)
    check_builders(plan)
    first = next(iter(datasets.values()))
    engines.import_tensorflow(verbose)
    params = list(plan[0].params())
    out = Path(out) if out is not None else default_out(spec)
    store = ResultsStore.open(
        out,
        spec_toml=spec.to_toml(),
        manifest=manifest(spec, first.task, len(plan), engine),
        columns=columns(first.task, params, has_test=first.x_test is not None),
        fresh=fresh,
    )
    with store:
        done = store.done()
        todo = [r for r in plan if r.run_id not in done]
        packs, note = engines.plan(todo, engine, max_pack=max_pack)
        counts: Counter[str] = Counter()
        failures_in_row = 0
        bar = tqdm(total=len(plan), initial=len(plan) - len(todo), unit="run", disable=not progress,
                   desc=spec.name, dynamic_ncols=True)
        if note and progress:
            bar.write(note, file=sys.stderr)
        with bar, _interrupt_flag() as interrupted:
            for result in execute_packs(packs, lambda p: datasets[_data_key(p.runs[0])]):
                if interrupted.is_set():  # native code may have turned Ctrl-C into an error
                    raise KeyboardInterrupt
                store.append(result)
                counts[result.status] += 1
                bar.update()
                bar.set_postfix(counts, refresh=False)
                failures_in_row = failures_in_row + 1 if result.status == "failed" else 0
                if failures_in_row >= spec.max_failures:
                    raise SweepError(
                        f"{failures_in_row} runs failed in a row; stopping the sweep. Last error: "
                        f"{result.summary.get('error')}. Finished runs are kept in {out}."
                    )
    return SweepReport(out, len(plan), len(plan) - len(todo), dict(counts))

