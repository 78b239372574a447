"""A sweep, start to end: plan, data, results directory, execution, progress."""

from __future__ import annotations

import contextlib
import hashlib
import math
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlreg import engines, executors, memory, signals
from mlreg.backend import PACKAGES, choose_backend, import_keras
from mlreg.check import check
from mlreg.data import DataError, Dataset, for_run
from mlreg.spec import ExperimentSpec, RunSpec, SpecError
from mlreg.store import ResultsStore

if TYPE_CHECKING:
    from mlreg.records import RunResult

MAX_RUNS = 100_000
"""Plans larger than this are refused unless the caller raises `max_runs` (a typo in a grid
can ask for a million runs)."""


class SweepError(RuntimeError):
    """The sweep stopped early (too many failures in a row). Finished runs are kept."""


@dataclass(frozen=True)
class SweepReport:
    """What a call to `run` did.

    Attributes:
        out: the results directory.
        total: runs in the plan.
        skipped: runs already recorded (resumed).
        counts: runs trained now, by status.
        notes: what the sweep said on the way (engine fallbacks, retries, the first failure).
        backend: the Keras backend that trained the runs.
        answer: a search's answer (see `mlreg.search.answer.describe`); empty for the grid.
        ended: a search that had ended already: nothing was left to train.
    """

    out: Path
    total: int
    skipped: int
    counts: dict[str, int]
    notes: tuple[str, ...] = ()
    backend: str = ""
    answer: str = ""
    ended: bool = False

    def __str__(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        if not parts and self.ended:
            parts = "nothing to train: the search has ended"
        resumed = f"; {self.skipped} already done" if self.skipped else ""
        on = f" ({self.backend} backend)" if self.backend else ""
        runs = f"{'at most ' if self.answer else ''}{self.total} run{'s' * (self.total != 1)}"
        head = f"{runs} in {self.out}{on}: {parts or 'nothing to do'}{resumed}"
        return f"{head}\n{self.answer}" if self.answer else head


class Progress:
    """Progress over a sweep's runs, on stderr: tqdm's bar on a terminal; elsewhere (a log file,
    CI) one line each time another `STEP` of the plan is done, not one per update.

    Args:
        name: the experiment's name.
        total: runs in the plan.
        done: runs already done (resumed).
        enabled: show anything at all (notes are printed either way).
    """

    STEP = 0.05

    def __init__(self, name: str, total: int, done: int, enabled: bool) -> None:
        self.name, self.total, self.done, self.enabled = name, total, done, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.next_line = done + max(1, math.ceil(self.STEP * total))
        self.bar = None
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, unit="run", desc=name, dynamic_ncols=True)

    def update(self, counts: Counter[str]) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()
            self.bar.set_postfix(counts, refresh=True)
        elif self.enabled and (self.done >= self.next_line or self.done == self.total):
            self.next_line = self.done + max(1, math.ceil(self.STEP * self.total))
            parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            print(f"{self.name}: {self.done}/{self.total} runs ({self.done / self.total:.0%}); {parts}",
                  file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        (self.bar.write if self.bar is not None else print)(text, file=sys.stderr)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def default_out(spec: ExperimentSpec) -> Path:
    return Path("results") / spec.name


def data_hash(datasets: dict[str, Dataset]) -> str:
    """One hash of the content of every data set of a plan (see `Dataset.content_hash`)."""
    return hashlib.sha256(" ".join(sorted({d.content_hash for d in datasets.values()})).encode()).hexdigest()[:16]


def manifest(spec: ExperimentSpec, task: str, n_runs: int, engine: str, content: str) -> dict[str, object]:
    import importlib.metadata

    from mlreg import __version__
    from mlreg.search.driver import swept as search_swept

    keras = import_keras()
    backend = keras.backend.backend()
    return {
        "experiment": spec.name,
        "description": spec.description,
        "swept": search_swept(spec),
        "task": task,
        "n_runs": n_runs,
        "engine": engine,
        "backend": backend,
        "data_hash": content,
        "mlreg": __version__,
        "keras": keras.__version__,
        backend: importlib.metadata.version(PACKAGES[backend]),
    }


@dataclass(frozen=True)
class Prepared:
    """A sweep checked and ready, before anything is written: its plan (each run with what its
    builder takes), the data of each split, why the fused engine must leave some runs to
    `model.fit`, and what the results directory is to hold."""

    spec: ExperimentSpec
    plan: list[RunSpec]
    datasets: dict[str, Dataset]
    reasons: dict[str, str]
    engine: str
    backend: str
    columns: dict[str, list[str]]
    manifest: dict[str, object]
    notes: tuple[str, ...] = ()


def prepare(spec: ExperimentSpec, *, engine: str | None = None, backend: str | None = None, epochs: int | None = None,
            max_runs: int = MAX_RUNS, verbose: bool = False) -> Prepared:
    """Everything `run` checks before it writes anything: the engine and backend, the plan's
    size, the data (loaded once per split), the builders (imported, one model per configuration
    built and checked), the early-stopping monitor. Stops at a safe point on Ctrl-C.

    Raises:
        SpecError, DataError: bad input, naming the experiment file, the field and the value.
    """
    from mlreg.records import columns

    engine = engines.check_engine(engine or spec.training.engine)
    backend = choose_backend(backend)
    if epochs is not None:
        spec = spec.with_overrides(epochs=epochs)
    if spec.n_runs > max_runs:
        raise SpecError(f"{spec.name}: the plan has {spec.size}, more than the limit of {max_runs:,} runs; "
                        f"check the grid, or pass --max-runs {spec.n_runs} to go on")
    plan = spec.expand()
    try:
        datasets = {r.data_key: for_run(r) for r in plan}
    except DataError as e:
        raise spec.named(e) from None
    signals.check()
    first = next(iter(datasets.values()))
    if "extrapolate" in spec.search.strategies:
        from mlreg.search.extrapolate import refuse_small_subsets

        refuse_small_subsets(spec, datasets.values())
    try:
        plan, reasons, notes = check(plan, datasets, spec.swept, fused=engine != "keras", verbose=verbose)
    except SpecError as e:
        raise spec.named(e) from None
    import_keras(verbose)
    signals.check()
    params = list(dict.fromkeys(k for r in plan for k in r.params_for_csv()))
    content = data_hash(datasets)
    return Prepared(
        spec, plan, datasets, reasons, engine, backend,
        columns(first.task, params, has_test=first.x_test is not None, resampling=list(plan[0].resampling),
                search=spec.searches),
        manifest(spec, first.task, len(plan), engine, content), tuple(notes),
    )


def open_store(prepared: Prepared, out: Path, fresh: bool) -> ResultsStore:
    """The results directory of a prepared sweep: created, or resumed when it holds the same
    experiment (or one it grew from) on the same data and backend."""
    from mlreg.search import added
    from mlreg.spec import describe_change
    from mlreg.store import read_decisions

    plan = [*prepared.plan, *added(prepared.spec, prepared.plan, read_decisions(out) if out.is_dir() else [])]
    return ResultsStore.open(
        out,
        spec_toml=prepared.spec.to_toml(),
        manifest=prepared.manifest,
        columns=prepared.columns,
        fresh=fresh,
        plan={r.run_id for r in plan},
        describe_change=describe_change,
        must_match={"data_hash": prepared.manifest["data_hash"], "backend": prepared.backend},
        assume={"backend": "tensorflow"},  # mlreg 0.2 trained on TensorFlow only
    )


def drive(runs: Iterator[RunResult], store: ResultsStore, *, max_failures: int, bar: Progress,
          say: Callable[[str], None]) -> Counter[str]:
    """Records each run as it ends; stops on `max_failures` failures in a row, and on Ctrl-C or
    SIGTERM at the next safe point (nothing that ended after it is recorded)."""
    counts: Counter[str] = Counter()
    failures_in_row, said = 0, set()
    for result in runs:
        signals.check()
        store.append(result)
        counts[result.status] += 1
        bar.update(counts)
        if result.note and result.note not in said:
            said.add(result.note)
            say(result.note)
        if result.status == "failed" and counts["failed"] == 1:
            say(f"run {result.run_id} failed: {result.summary.get('error')} (traceback in "
                f"{store.root / 'errors' / (result.run_id + '.txt')})")
        failures_in_row = failures_in_row + 1 if result.status == "failed" else 0
        if failures_in_row >= max_failures:
            raise SweepError(f"{failures_in_row} runs failed in a row; stopping the sweep. Last error: "
                             f"{result.summary.get('error')}. Finished runs are kept in {store.root}.")
    signals.check()
    return counts


def drive_search(prepared: Prepared, store: ResultsStore, execute: Callable[[list[engines.Pack]], Iterator[RunResult]],
                 *, max_pack: int | None, parallel: int, progress: bool,
                 say: Callable[[str], None]) -> tuple[Counter[str], str, int, bool]:
    """Trains a search's rounds (see `mlreg.search`): logs each decision before what it decided
    is trained or recorded, records pruned runs, and keeps paused runs for the next round.
    Returns the counts by status, the answer, how many runs the search had to choose from
    (the plan's, and those of the values it added), and whether it had ended before."""
    from mlreg.search import Round, Search, describe

    spec = prepared.spec
    resampled = spec.data.repeats or spec.data.folds
    overlap = statistics.mean(len(d.x_val) / len(d.x_train) for d in prepared.datasets.values()) if resampled else 0.0
    search = Search(spec, prepared.plan, store.curves(spec.early_stopping.monitor), store.statuses(),
                    store.decisions(say), say, overlap)
    counts: Counter[str] = Counter()

    def keep(decisions: list[dict[str, Any]], pruned: list[RunResult]) -> None:
        for decision in decisions:
            store.decide(decision)
        for result in pruned:
            store.append(result)
            counts["pruned"] += 1

    def train(step: Round) -> list[RunResult]:
        packs, note = engines.plan(list(step.runs), prepared.engine, max_pack=max_pack, reasons=prepared.reasons,
                                   parallel=parallel, until=step.until, resume=step.resume)
        results: list[RunResult] = []
        with Progress(f"{spec.name} {step.title}", len(step.runs), 0, progress) as bar:
            if note:
                say(note)
            counts.update(drive(_ended(execute(packs), results, bar), store, max_failures=spec.max_failures, bar=bar,
                                say=say))
        return results

    answer = search.drive(train, keep)
    if search.ended:
        say("nothing to train: the search has ended")
    return counts, describe(answer), sum(map(len, search.settings.values())), search.ended


def _tracked(execute: Callable[[list[engines.Pack]], Iterator[RunResult]],
             live: Any) -> Callable[[list[engines.Pack]], Iterator[RunResult]]:
    """`execute` that lets `live` export after each record is written (the store writes a
    record before it asks for the next)."""
    def tracked(packs: list[engines.Pack]) -> Iterator[RunResult]:
        for record in execute(packs):
            yield record
            live.tick()

    return tracked


@contextlib.contextmanager
def _finally(live: Any) -> Iterator[None]:
    """The last export of a live-logged sweep, when it ends or stops."""
    try:
        yield
    finally:
        if live is not None:
            live.tick(final=True)


def _ended(records: Iterator[RunResult], taken: list[RunResult], bar: Progress) -> Iterator[RunResult]:
    """The records that end their runs; every record, paused ones too, also goes to `taken`."""
    for r in records:
        taken.append(r)
        if r.status == "paused":
            bar.update(Counter(paused=1))
        else:
            yield r


def run(
    spec: ExperimentSpec,
    *,
    out: str | Path | None = None,
    fresh: bool = False,
    epochs: int | None = None,
    engine: str | None = None,
    max_pack: int | None = None,
    max_runs: int = MAX_RUNS,
    workers: int | None = None,
    dask: Any = None,
    backend: str | None = None,
    progress: bool = True,
    verbose: bool = False,
    mlflow: str | bool | None = None,
) -> SweepReport:
    """Runs an experiment: every (setting, seed) not yet in its results directory.

    Runs recorded as `failed` are trained again (after their cause was fixed); `ok` and
    `diverged` runs are results and are kept. An experiment that grew (more seeds, grid
    values or variants) keeps its finished runs and trains the new ones.

    Args:
        spec: the experiment (see `mlreg.load_spec`).
        out: the results directory. Defaults to `results/<name>`.
        fresh: move an existing directory aside and start anew. Defaults to `False`.
        epochs: override `training.epochs`, for quick tries. Defaults to `None`.
        engine: `auto`, `fused` or `keras`. Defaults to the file's `training.engine`.
        max_pack: most runs the fused engine trains in one program. Defaults to
            `mlreg.engines.fused.MAX_PACK`.
        max_runs: refuse plans with more runs than this. Defaults to `MAX_RUNS`.
        workers: train packs in this many worker processes on this machine (or, with
            `dask="local"`, the local cluster's workers). Defaults to `None`: this process.
        dask: a Dask scheduler's address (`"tcp://host:8786"`), `"local"` for a
            `LocalCluster` of `workers` processes, or a `distributed.Client`. Defaults to `None`.
        backend: the Keras backend, `jax` or `tensorflow` (see `mlreg.backend`); Keras must
            not have been imported with another one. Defaults to `None`: `KERAS_BACKEND`,
            else `mlreg.backend.DEFAULT_BACKEND`.
        progress: show progress over runs on stderr. Defaults to `True`.
        verbose: let TensorFlow's log messages through. Defaults to `False`.
        mlflow: log the sweep to this MLflow tracking store while it trains (`True`: MLflow's
            default store), as `mlreg export mlflow` does (`mlreg.analysis.tracking.Live`).
            Defaults to `None`: MLflow is not imported.

    Returns:
        A `SweepReport`: where, how many runs, how many `ok` / `diverged` / `failed`, and
        the notes printed on the way.

    Raises:
        SpecError, DataError, StoreError: bad input; nothing was trained or written.
        SweepError: `max_failures` runs failed in a row; finished runs are kept.
        Interrupted: Ctrl-C or SIGTERM; finished runs are kept.

    Example:
        >>> report = run(load_spec("experiments/l2_rate.toml"), epochs=2)  # doctest: +SKIP
    """
    notes: list[str] = []
    bar: Progress | None = None

    def say(text: str) -> None:
        notes.append(text)
        if bar is not None:
            bar.write(f"mlreg: {text}")
        else:
            print(f"mlreg: {text}", file=sys.stderr)

    with signals.stopping():
        execute = executors.make(workers, dask, say)  # refused before anything is written
        prepared = prepare(spec, engine=engine, backend=backend, epochs=epochs, max_runs=max_runs, verbose=verbose)
        plan = prepared.plan
        if workers or dask is not None:  # a builder that cannot be sent to workers: refused before training
            memory.shipped(memory.needed(plan))
        for note in prepared.notes:
            say(note)
        out = Path(out) if out is not None else default_out(prepared.spec)
        live = None
        if mlflow:
            from mlreg.analysis.tracking import Live

            live = Live(mlflow, out)  # the store reached before training
            execute = _tracked(execute, live)
        with open_store(prepared, out, fresh) as store, _finally(live):
            if store.moved_aside is not None:
                say(f"moved the old {out} aside to {store.moved_aside}")
            for repair in store.repairs:
                say(repair)
            statuses = store.statuses()
            retry = {run_id for run_id, status in statuses.items() if status == "failed"}
            store.forget(retry)
            todo = [r for r in plan if r.run_id not in statuses or r.run_id in retry]
            parallel = workers or (2 if dask is not None else 1)
            if retry:
                say(f"retrying {len(retry)} failed run{'s' * (len(retry) != 1)} (diverged runs are results and stay)")
            if prepared.spec.searches:
                counts, answer, total, ended = drive_search(prepared, store, execute, max_pack=max_pack,
                                                            parallel=parallel, progress=progress, say=say)
                return SweepReport(out, total, len(statuses) - len(retry), dict(counts), tuple(notes),
                                   prepared.backend, answer, ended)
            packs, note = engines.plan(todo, prepared.engine, max_pack=max_pack, reasons=prepared.reasons,
                                       parallel=parallel)
            with Progress(prepared.spec.name, len(plan), len(plan) - len(todo), progress) as bar:
                if note:
                    say(note)
                counts = drive(execute(packs), store, max_failures=prepared.spec.max_failures, bar=bar, say=say)
    return SweepReport(out, len(plan), len(plan) - len(todo), dict(counts), tuple(notes), prepared.backend)
