"""A sweep, start to end: plan, data, results directory, execution, progress."""

from __future__ import annotations

import hashlib
import math
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlreg import engines, executors, signals
from mlreg.backend import PACKAGES, choose_backend, import_keras
from mlreg.data import DataError, Dataset, for_run
from mlreg.spec import BUILDERS, ExperimentSpec, RunSpec, SpecError, label
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
        answer: a search's answer (see `mlreg.records.describe`); empty for the grid.
    """

    out: Path
    total: int
    skipped: int
    counts: dict[str, int]
    notes: tuple[str, ...] = ()
    backend: str = ""
    answer: str = ""

    def __str__(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
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


def check_builders(plan: list[RunSpec]) -> list[RunSpec]:
    """Imports every user builder of a plan and checks base-model files, so that a typo
    is refused before training. Returns the plan with each run's `takes` (the model
    parameters its builder takes) read from its builder's signature."""
    from mlreg.models import builder_takes, user_builder

    user_refs = {r.model.builder for r in plan} - set(BUILDERS)
    if user_refs:
        import_keras()  # a builder's module may import Keras: on the chosen backend, its log lines out
    for run in plan:
        if run.model.base_model and not run.path(run.model.base_model).is_file():
            raise SpecError(f"Invalid value for `model.base_model`: no such file. "
                            f"Received: base_model={run.model.base_model!r}")
    takes = {ref: builder_takes(user_builder(ref)) for ref in user_refs}
    return [replace(r, takes=takes[r.model.builder]) if r.model.builder in takes else r for r in plan]


def check_ignored(plan: list[RunSpec], swept: list[str]) -> None:
    """Refuses a swept model parameter that the runs' builder does not take: the settings that
    differ in it would train identical models."""
    from mlreg.spec import MODEL_PARAMS

    for run in plan:
        if run.takes is None and run.model.builder not in BUILDERS:
            continue
        ignored = [p for p in swept if p in MODEL_PARAMS and p not in run.params()]
        if ignored:
            raise SpecError(f"Invalid value for `grid.{ignored[0]}`: the builder {run.model.builder} does not take "
                            f"`{ignored[0]}`, so the settings that differ in it would train identical models. "
                            f"Received: {ignored[0]} swept with builder={run.model.builder!r}")


def check_models(plan: list[RunSpec], datasets: dict[str, Dataset], swept: Sequence[str] = (),
                 fused: bool = True) -> tuple[dict[str, str], list[str]]:
    """Builds one model per distinct configuration of a user's builder (the per-run values, such
    as the rates, aside) and checks it (`models.check_model`), so that a builder that raises,
    cannot be called, returns something else than a model, or a model that does not fit the
    task, is refused before anything is trained; and, for each swept model parameter the
    builder takes, a model with another value, refusing a parameter that changes nothing. Then,
    unless `fused` is false (the keras engine trains everything), traces one epoch of the fused
    engine's program for it (`fused.probe`).

    Returns:
        For the runs the fused engine must leave to `model.fit`, why (a model that trains itself,
        one the engine cannot trace); and notes to say once (a builder that returns a compiled
        model, whose compile mlreg does not use).

    Raises:
        SpecError: naming the builder, the setting and the error.
    """
    from mlreg.engines.fused import pack_key, probe
    from mlreg.models import check_model
    from mlreg.spec import MODEL_PARAMS

    reasons: dict[str, str] = {}
    notes: list[str] = []
    seen: dict[str, str | None] = {}
    for run in plan:
        if run.model.builder in BUILDERS:
            continue
        key = pack_key(run)
        if key not in seen:
            data = datasets[run.data_key]
            model = _build_checked(run, data)
            check_model(model, data, run.model.builder)
            if getattr(model, "compiled", False):
                note = (f"{run.model.builder} returns a compiled model: mlreg trains it with [training] (optimizer "
                        f"{run.training.optimizer}) and the {data.task} task's loss, not with its own compile")
                notes += [note] if note not in notes else []
            for param in (p for p in swept if p in MODEL_PARAMS and p in run.params()):
                _check_used(run, param, {r.model.model_dump()[param] for r in plan
                                         if r.model.builder == run.model.builder}, model, data)
            seen[key] = probe(run, data) if fused else None
        if seen[key]:
            reasons[run.run_id] = seen[key]  # type: ignore[assignment]
    return reasons, notes


def _build_checked(run: RunSpec, data: Dataset) -> Any:
    """A run's model, built as the engines build it; a builder that raises is a `SpecError`."""
    from mlreg.backend import seeded
    from mlreg.models import _checking, build_model
    from mlreg.records import error_line
    from mlreg.spec import InputError

    import_keras().backend.clear_session(free_memory=False)  # as the engines build: the same layer names
    try:
        with seeded(run.seed), _checking():
            return build_model(run, data)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's builder: what it says is the message
        raise SpecError(f"Invalid value for `model.builder`: {run.model.builder} failed to build a model "
                        f"(run {run.run_id}, seed {run.seed}): {error_line(e)}. "
                        f"Received: builder={run.model.builder!r}") from None


def _check_used(run: RunSpec, param: str, values: set[Any], model: Any, data: Dataset) -> None:
    """Refuses a swept parameter that a user's builder takes but does not use: the model built
    with another of its values has the same configuration (layers, regularizers, rates)."""
    from mlreg.engines.fused.introspect import structure

    others = sorted((v for v in values if v != run.model.model_dump()[param]), key=repr)
    if not others:
        return
    other = replace(run, model=run.model.model_copy(update={param: others[0]}))
    if structure(_build_checked(other, data), with_values=True) == structure(model, with_values=True):
        raise SpecError(f"Invalid value for `grid.{param}`: the builder {run.model.builder} takes `{param}` but "
                        f"builds the same model for {param}={label(run.model.model_dump()[param])} and "
                        f"{param}={label(others[0])} (use it, e.g. with mlreg.apply_regularization, or do not sweep "
                        f"it). Received: {param} swept with builder={run.model.builder!r}")


def manifest(spec: ExperimentSpec, task: str, n_runs: int, engine: str, content: str) -> dict[str, object]:
    import importlib.metadata

    from mlreg import __version__

    keras = import_keras()
    backend = keras.backend.backend()
    return {
        "experiment": spec.name,
        "description": spec.description,
        "swept": spec.swept,
        "task": task,
        "n_runs": n_runs,
        "engine": engine,
        "backend": backend,
        "data_hash": content,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlreg": __version__,
        "keras": keras.__version__,
        backend: importlib.metadata.version(PACKAGES[backend]),
        "git_commit": _git_commit(),
        "command": " ".join(sys.argv),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def check_monitor(plan: list[RunSpec], task: str) -> None:
    """Refuses, before training, an early-stopping monitor that is not a column the task's
    runs will have."""
    from mlreg.records import monitors

    allowed = monitors(task)
    for monitor in sorted({r.early_stopping.monitor for r in plan if r.early_stopping.enabled}):
        if monitor not in allowed:
            raise SpecError(f"Invalid value for `early_stopping.monitor`: not a history column of a {task} "
                            f"task; expected one of {allowed}. Received: monitor={monitor!r}")


def check_kinds(plan: list[RunSpec], datasets: dict[str, Dataset]) -> None:
    """Refuses, before training, a regularizer the data cannot take: label smoothing of a
    regression target, augmentation of samples that are neither images nor sequences (a
    built-in builder; a user's builder is built and checked)."""
    for run in plan:
        data = datasets[run.data_key]
        if run.training.label_smoothing and data.task == "regression":
            raise SpecError(f"Invalid value for `label_smoothing`: a regression task has no labels to smooth. "
                            f"Received: label_smoothing={run.training.label_smoothing}")
        if run.model.augment and run.model.builder in BUILDERS and len(data.input_shape) not in (2, 3):
            raise SpecError(f"Invalid value for `augment`: it takes images [H, W, C] or sequences [T, C]; the "
                            f"samples are {list(data.input_shape)}: give [data] a `shape`. "
                            f"Received: augment={run.model.augment}")


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
    try:
        plan = check_builders(plan)
        check_ignored(plan, spec.swept)
        check_monitor(plan, first.task)
        check_kinds(plan, datasets)
        import_keras(verbose)
        signals.check()
        reasons, notes = check_models(plan, datasets, spec.swept, fused=engine != "keras")
    except SpecError as e:
        raise spec.named(e) from None
    signals.check()
    params = list(dict.fromkeys(k for r in plan for k in r.params()))
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
    from mlreg.search import zoomed
    from mlreg.spec import describe_change
    from mlreg.store import read_decisions

    plan = [*prepared.plan, *zoomed(prepared.spec, prepared.plan, read_decisions(out) if out.is_dir() else [])]
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
                 say: Callable[[str], None]) -> tuple[Counter[str], str]:
    """Trains a search's rounds (see `mlreg.search`): logs each decision before what it decided
    is trained or recorded, records pruned runs, and keeps paused runs for the next round.
    Returns the counts by status and the answer."""
    from mlreg.records import describe
    from mlreg.search import Search

    spec = prepared.spec
    resampled = spec.data.repeats or spec.data.folds
    overlap = statistics.mean(len(d.x_val) / len(d.x_train) for d in prepared.datasets.values()) if resampled else 0.0
    search = Search(spec, prepared.plan, store.curves(spec.early_stopping.monitor), store.statuses(),
                    store.decisions(say), say, overlap)
    rounds, counts, results = search.rounds(), Counter[str](), None

    def flush() -> None:
        for decision in search.new:
            store.decide(decision)
        for result in search.pruned:
            store.append(result)
            counts["pruned"] += 1
        search.new, search.pruned = [], []

    while True:
        try:
            step = rounds.send(results)  # type: ignore[arg-type]
        except StopIteration as stop:
            flush()
            if search.ended:
                say("nothing to train: the search has ended")
            return counts, describe(stop.value)
        flush()
        packs, note = engines.plan(list(step.runs), prepared.engine, max_pack=max_pack, reasons=prepared.reasons,
                                   parallel=parallel, until=step.until, resume=step.resume)
        results = []
        with Progress(f"{spec.name} {step.title}", len(step.runs), 0, progress) as bar:
            if note:
                say(note)
            counts += drive(_ended(execute(packs), results, bar), store, max_failures=spec.max_failures, bar=bar,
                            say=say)


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
        for note in prepared.notes:
            say(note)
        out = Path(out) if out is not None else default_out(prepared.spec)
        with open_store(prepared, out, fresh) as store:
            statuses = store.statuses()
            retry = {run_id for run_id, status in statuses.items() if status == "failed"}
            store.forget(retry)
            todo = [r for r in plan if r.run_id not in statuses or r.run_id in retry]
            parallel = workers or (2 if dask is not None else 1)
            if retry:
                say(f"retrying {len(retry)} failed run{'s' * (len(retry) != 1)} (diverged runs are results and stay)")
            if prepared.spec.searches:
                counts, answer = drive_search(prepared, store, execute, max_pack=max_pack, parallel=parallel,
                                              progress=progress, say=say)
                return SweepReport(out, len(plan), len(plan) - len(todo), dict(counts), tuple(notes),
                                   prepared.backend, answer)
            packs, note = engines.plan(todo, prepared.engine, max_pack=max_pack, reasons=prepared.reasons,
                                       parallel=parallel)
            with Progress(prepared.spec.name, len(plan), len(plan) - len(todo), progress) as bar:
                if note:
                    say(note)
                counts = drive(execute(packs), store, max_failures=prepared.spec.max_failures, bar=bar, say=say)
    return SweepReport(out, len(plan), len(plan) - len(todo), dict(counts), tuple(notes), prepared.backend)
