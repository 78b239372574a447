"""Everything `mlreg run` and `mlreg validate` check before anything is trained or written, in
one order (`check`): a user's builders (imported from the experiment file's folder, base-model
files), the swept parameters they take, the early-stopping monitor, what the data can take (label
smoothing, augmentation), then the models themselves (one built and checked per configuration of
a user's builder, and one epoch of the fused engine's program traced). Each refusal is a
`SpecError` naming the field and the value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlreg.backend import import_keras
from mlreg.spec import BUILDERS, RunSpec, SpecError, label

if TYPE_CHECKING:
    from mlreg.data import Dataset


def check(plan: list[RunSpec], datasets: dict[str, Dataset], swept: Sequence[str], *, fused: bool = True,
          verbose: bool = False) -> tuple[list[RunSpec], dict[str, str], list[str]]:
    """Checks a plan (all of it, or the runs `validate` lists) on its data, in the order of the
    module's text.

    Returns:
        The plan with each run's `takes` (what its builder takes), why the fused engine must
        leave some runs to `model.fit` (by run id), and notes to say once (see `check_models`).

    Raises:
        SpecError: the first problem found.
    """
    from mlreg import signals

    if any(r.model.builder not in BUILDERS for r in plan):
        import_keras(verbose)  # a builder's module may import Keras: on the chosen backend, its log lines out
    plan = check_builders(plan)
    check_ignored(plan, swept)
    check_monitor(plan, next(iter(datasets.values())).task)
    check_kinds(plan, datasets)
    signals.check()
    reasons, notes = check_models(plan, datasets, swept, fused=fused)
    return plan, reasons, notes


def check_builders(plan: list[RunSpec]) -> list[RunSpec]:
    """Imports every user builder of a plan and checks base-model files, so that a typo
    is refused before training. Returns the plan with each run's `takes` (the model
    parameters its builder takes) read from its builder's signature."""
    from mlreg.models import builder_takes, user_builder

    user_refs = {r.model.builder: r.root for r in plan if r.model.builder not in BUILDERS}
    for run in plan:
        if run.model.base_model and not run.path(run.model.base_model).is_file():
            raise SpecError(f"Invalid value for `model.base_model`: no such file. "
                            f"Received: base_model={run.model.base_model!r}")
    takes = {ref: builder_takes(user_builder(ref, root)) for ref, root in user_refs.items()}
    return [replace(r, takes=takes[r.model.builder]) if r.model.builder in takes else r for r in plan]


def check_ignored(plan: list[RunSpec], swept: list[str]) -> None:
    """Refuses a swept model parameter that the runs' builder does not take: the settings that
    differ in it would train identical models."""
    from mlreg.spec import MODEL_PARAMS

    for run in plan:
        if run.takes is None and run.model.builder not in BUILDERS:
            continue
        ignored = [p for p in swept if p in MODEL_PARAMS and p not in run.params_for_csv()]
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
            for param in (p for p in swept if p in MODEL_PARAMS and p in run.params_for_csv()):
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
