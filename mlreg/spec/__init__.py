"""The experiment file: TOML validated into typed objects and expanded into runs.

An experiment file has a few sections with the defaults (`[data]`, `[model]`,
`[training]`, `[early_stopping]`), a `[grid]` whose keys are swept as a
cartesian product, and optional `[[variants]]`: named settings that are
combined with the grid. Every parameter has one short name everywhere
(`l2`, `dropout`, `learning_rate`, ...), see `PARAMS`.

The package's rooms: `names` (the registries of names and the kinds of regularization),
`sections` (the sections' models), `experiment` (`ExperimentSpec`), `runs` (`RunSpec`, run ids,
value labels), `messages` (errors and TOML), `loading` (`load_spec`). Everything is re-exported
here: `from mlreg.spec import ...` is the way in.

Example:
    >>> spec = ExperimentSpec.from_dict({"name": "demo", "seeds": 2,
    ...                                  "grid": {"l2": [0.0, 1e-3]}})
    >>> len(spec.expand())
    4
"""

from __future__ import annotations

from mlreg.errors import InputError, SpecError
from mlreg.spec.experiment import ExperimentSpec
from mlreg.spec.loading import describe_change, load_spec
from mlreg.spec.messages import dumps_toml
from mlreg.spec.names import (
    ACTIVATIONS,
    ADAMW_DECAY,
    ADJUSTMENTS,
    BACKENDS,
    BUILDER_PARAMS,
    BUILDERS,
    DATASETS,
    ENGINES,
    FREEZE,
    GENERATED,
    KINDS,
    MODEL_PARAMS,
    OPTIMIZERS,
    PARAMS,
    PLOTS,
    STRATEGIES,
    STRUCTURE,
    TASKS,
    Kind,
    Rate,
    derive,
)
from mlreg.spec.runs import RunSpec, accepts, format_value, label
from mlreg.spec.sections import (
    _SECTIONS,
    AdaptiveSeeds,
    DataSpec,
    EarlyStoppingSpec,
    ModelSpec,
    SearchSpec,
    TrainingSpec,
    add_kind_fields,
    log_swept,
)

__all__ = ["ACTIVATIONS", "ADAMW_DECAY", "ADJUSTMENTS", "AdaptiveSeeds", "BACKENDS", "BUILDERS", "BUILDER_PARAMS",
           "DATASETS", "DataSpec", "ENGINES", "EarlyStoppingSpec", "ExperimentSpec", "FREEZE", "GENERATED",
           "InputError", "KINDS", "Kind", "MODEL_PARAMS", "ModelSpec", "OPTIMIZERS", "PARAMS", "PLOTS", "Rate",
           "RunSpec", "STRATEGIES", "STRUCTURE", "SearchSpec", "SpecError", "TASKS", "TrainingSpec", "_SECTIONS",
           "accepts", "add_kind", "describe_change", "dumps_toml", "format_value", "label", "load_spec", "log_swept",
           "remove_kind"]


def add_kind(kind: Kind) -> Kind:
    """Adds a kind of regularization: its field in its section, its name in `PARAMS`, the
    builders' keywords (`BUILDER_PARAMS`), its label and its per-run hook, from the one entry.

    Example (Keras's `OrthogonalRegularizer` on every kernel of the dense builders):
        >>> import keras
        >>> from pydantic import Field
        >>> add_kind(Kind("orthogonal", "orthogonal", "model", float, Field(0.0, ge=0),
        ...               builders=("mlp", "residual_mlp", "wide_deep"),
        ...               penalty=lambda rate: keras.regularizers.OrthogonalRegularizer(rate)))  # doctest: +SKIP
    """
    if kind.name in PARAMS:
        raise InputError(f"Invalid value for `name`: `{kind.name}` is a parameter already. Received: "
                         f"name={kind.name!r}")
    if kind.applies == "kernel" and kind.penalty is None:
        raise InputError(f"Invalid value for `penalty`: a kind applied to kernels needs the Keras regularizer of a "
                         f"rate. Received: penalty=None for {kind.name!r}")
    KINDS[kind.name] = kind
    add_kind_fields(kind)
    ExperimentSpec.model_rebuild(force=True)
    derive()
    return kind


def remove_kind(name: str) -> None:
    """Takes back a kind `add_kind` added (its field, its name, its keywords)."""
    if name not in KINDS or name in _BUILT_IN:
        raise InputError(f"Invalid value for `name`: expected a kind added with `add_kind`. Received: name={name!r}")
    kind = KINDS.pop(name)
    section = _SECTIONS[kind.section]
    section.__pydantic_fields__ = {k: v for k, v in section.__pydantic_fields__.items() if k != name}
    section.__annotations__.pop(name, None)
    section.model_rebuild(force=True)
    ExperimentSpec.model_rebuild(force=True)
    derive()


_BUILT_IN = frozenset(KINDS)
