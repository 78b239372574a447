"""What each run's own model says: its initial values, its L1/L2 rates, its per-run layers'
values and seed states, and its structure apart from those (the signature that decides which
runs share a program).

Models built by one builder under different settings differ, for the engine, only in per-run
values; their other layers and variables line up one to one, in Keras's order. A per-run layer
(`per_run.classes()`) is placed by the layer before it that is not one (its *slot*), its class and
its count there, so that a model whose builder left out a Dropout of rate 0 (`if dropout:`)
still lines up with one that has it: its rate there is 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.engines.fused.packing import MAX_PACK
from mlreg.engines.fused.per_run import per_run_layer

EVAL_ELEMENTS = 1 << 22
"""The evaluation passes work in chunks of samples whose activations stay below this many
floats per layer (16 MB), whatever the pack and data size."""

if TYPE_CHECKING:
    import keras

    from mlreg.data import Dataset
    from mlreg.spec import RunSpec


def why_not_model(model: keras.Model) -> str | None:
    """Why a built model cannot be trained here (a short reason), or `None` when it can: a
    model that trains itself (its own `train_step` or `compute_loss`) must go through `fit`."""
    import keras

    for method in ("train_step", "compute_loss", "test_step"):
        if getattr(type(model), method) is not getattr(keras.Model, method):
            return f"a model with its own {method}"
    return None


def assigned_in_inference(model: keras.Model, x: Any) -> list[str]:
    """The paths of the variables the model assigns when called in inference on `x` that the
    fused engine cannot follow: `model.evaluate` moves them batch by batch, while the program
    measures a whole set at once. It follows an integer state that moves by the same step
    each call and does not change the outputs (the seed states Keras's RNN layers move, a
    layer counting its calls), as `model.fit`'s evaluations move it (`Program`'s
    `inference_draws`); a float statistic updated in evaluation, or a count the outputs read,
    it does not."""
    import keras

    assigned: dict[str, Any] = {}

    class Watch(keras.StatelessScope):
        def add_update(self, update: tuple) -> None:
            assigned[update[0].path] = update[0]
            super().add_update(update)

    with Watch():
        model(x, training=False)
    if not assigned:
        return []
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    before = np.asarray(model.stateless_call(tv, ntv, x, training=False)[0])
    out = []
    for path, variable in assigned.items():
        if not np.issubdtype(np.dtype(variable.dtype), np.integer):
            out.append(path)
            continue
        shifted = [v.value + 7 if v is variable else v.value for v in model.non_trainable_variables]
        if not np.array_equal(np.asarray(model.stateless_call(tv, shifted, x, training=False)[0]), before):
            out.append(path)
    return out


@dataclass
class Built:
    """What the engine keeps of one run's freshly built model.

    Attributes:
        trainable: the trainable values, in the model's order.
        non_trainable: the non-trainable values but the per-run layers' seed states.
        regularized: trainable index -> (l1, l2) of its L1/L2/L1L2 regularizer.
        activity: index among the layers that are not per-run -> (l1, l2) of its L1/L2/L1L2
            activity regularizer.
        max_norm: trainable index -> (max value, axis) of its `MaxNorm` constraint.
        layers: per-run layer key -> (value, seed state or `None` where Keras made none).
        signature: the structure apart from the per-run values.
        n_params: the parameter count.
        order_state: the global NumPy random state right after the build (JAX's batch order).
    """

    trainable: list[np.ndarray]
    non_trainable: list[np.ndarray]
    regularized: dict[int, tuple[float, float]]
    activity: dict[int, tuple[float, float]]
    max_norm: dict[int, tuple[float, Any]]
    layers: dict[str, tuple[float, np.ndarray | None]]
    signature: str
    n_params: int
    order_state: Any


def all_layers(model: Any) -> list[Any]:
    """Every layer of a model, nested models' layers after the nested model, in Keras's order."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out += all_layers(layer)
    return out


def per_run_layers(model: Any) -> dict[str, Any]:
    """The model's per-run layers by key: `slot/class/count`, the slot being how many layers
    that are not per-run come before it."""
    out: dict[str, Any] = {}
    slot, counts = 0, {}
    for layer in all_layers(model):
        if per_run_layer(layer) is None:
            slot, counts = slot + 1, {}
            continue
        name = getattr(type(layer), "_mlreg_base", type(layer)).__name__
        counts[name] = counts.get(name, 0) + 1
        out[f"{slot}/{name}/{counts[name] - 1}"] = layer
    return out


def fixed_layers(model: Any) -> list[Any]:
    """The layers that are not per-run, in Keras's order (what a slot counts)."""
    return [layer for layer in all_layers(model) if per_run_layer(layer) is None]


def rates(regularizer: Any) -> tuple[float, float] | None:
    """`(l1, l2)` of an L1, L2 or L1L2 regularizer (the engine takes those over, per run), else `None`."""
    import keras

    if not isinstance(regularizer, keras.regularizers.L1 | keras.regularizers.L2 | keras.regularizers.L1L2):
        return None
    config = regularizer.get_config()
    return float(config.get("l1", 0.0)), float(config.get("l2", 0.0))


def activity(model: Any) -> dict[int, tuple[float, float]]:
    """The L1/L2 activity regularizers of the layers that are not per-run, by their index."""
    out = {}
    for i, layer in enumerate(fixed_layers(model)):
        r = rates(getattr(layer, "activity_regularizer", None))
        if r is not None:
            out[i] = r
    return out


def max_norms(model: Any) -> dict[int, tuple[float, Any]]:
    """The `MaxNorm` constraints of the trainable variables (the engine takes them over, per
    run): index -> (max value, axis)."""
    import keras

    return {i: (float(v.constraint.max_value), _axis(v.constraint.axis))
            for i, v in enumerate(model.trainable_variables) if type(v.constraint) is keras.constraints.MaxNorm}


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list | tuple) else axis


def seed_state(layer: Any) -> Any:
    """A per-run layer's seed-state variable, or `None` (Keras makes none for a rate of 0)."""
    generator = getattr(layer, "seed_generator", None)
    return None if generator is None else generator.state


def layer_config(layer: Any) -> dict[str, Any]:
    """A layer's configuration: `get_config()`, or, for a layer that cannot serialize itself
    (a class of the user's without `get_config`), its plain attributes. A nested model's own is
    left out: its layers are each listed (and its configuration would hold their per-run values)."""
    from mlreg.backend import without_tensorflow

    if hasattr(layer, "layers"):
        return {}
    try:
        with without_tensorflow():
            return layer.get_config()
    except Exception:  # noqa: BLE001 - Keras raises NotImplementedError and others for such a class
        plain = (int, float, str, bool, type(None))
        return {k: v for k, v in vars(layer).items() if isinstance(v, plain)
                or (isinstance(v, tuple) and all(isinstance(x, plain) for x in v))}


_STRIPPED = {"name", "seed"}


def _plain(config: Any) -> Any:
    """A configuration without names, seeds, regularizers and constraints (the engine reads those
    from the variables and layers themselves, see `structure`)."""
    if isinstance(config, dict):
        return {k: _plain(v) for k, v in config.items()
                if k not in _STRIPPED and not k.endswith(("_regularizer", "_constraint"))}
    return [_plain(v) for v in config] if isinstance(config, list | tuple) else config


def structure(model: keras.Model, *, with_values: bool = False) -> str:
    """The structure of a model: its class, every layer with its configuration (no names or
    seeds), the shape of every variable, and the regularizers the engine does not take over
    (of variables and activities). Without `with_values` the per-run values are left out (the
    signature); with them, they and every regularizer are in (two models of a builder that
    differ in nothing else)."""
    per_run = per_run_layers(model)
    taken = {id(layer) for layer in per_run.values()}
    seeds = {id(seed_state(layer)) for layer in per_run.values()}
    layers = [[type(layer).__name__, _plain(layer_config(layer))] for layer in all_layers(model)
              if id(layer) not in taken]
    variables = [[list(v.shape), str(v.dtype), v.trainable] for v in model.variables if id(v) not in seeds]
    regularizers = [str(v.regularizer.get_config()) for v in model.trainable_variables
                    if v.regularizer is not None and (with_values or rates(v.regularizer) is None)]
    regularizers += [[i, str(layer.activity_regularizer.get_config())] for i, layer in enumerate(fixed_layers(model))
                     if getattr(layer, "activity_regularizer", None) is not None
                     and (with_values or rates(layer.activity_regularizer) is None)]
    constrained = max_norms(model)
    regularizers += [[i, type(v.constraint).__name__, str(v.constraint.get_config())]
                     for i, v in enumerate(model.trainable_variables)
                     if v.constraint is not None and (with_values or i not in constrained)]
    values = {key: per_run_layer(layer).value(layer) for key, layer in per_run.items()} if with_values else {}  # type: ignore[union-attr]
    return json.dumps([type(model).__name__, layers, variables, regularizers, values], default=str)


def build(run: RunSpec, data: Dataset) -> tuple[keras.Model, Built]:
    """Builds a run's model exactly as the keras engine does, and reads what is its own."""
    import keras

    from mlreg.backend import seeded
    from mlreg.models import build_model

    keras.backend.clear_session(free_memory=False)
    with seeded(run.seed):
        model = build_model(run, data)
    order_state = np.random.get_state()
    regularized = {i: rates(v.regularizer) for i, v in enumerate(model.trainable_variables)
                   if rates(v.regularizer) is not None}
    per_run = per_run_layers(model)
    seeds = {id(seed_state(layer)) for layer in per_run.values()}

    def value(v: Any) -> np.ndarray:
        return np.array(v.numpy(), copy=True)

    built = Built(
        trainable=[value(v) for v in model.trainable_variables],
        non_trainable=[value(v) for v in model.non_trainable_variables if id(v) not in seeds],
        regularized=regularized,  # type: ignore[arg-type]
        activity=activity(model),
        max_norm=max_norms(model),
        layers={key: (per_run_layer(layer).value(layer), None if seed_state(layer) is None  # type: ignore[union-attr]
                      else value(seed_state(layer))) for key, layer in per_run.items()},
        signature=structure(model),
        n_params=int(model.count_params()),
        order_state=order_state,
    )
    return model, built


def counts(keys: Any) -> dict[str, int]:
    """How many per-run layers of each class each slot holds, from their keys."""
    out: dict[str, int] = {}
    for key in keys:
        slot, name, _ = key.split("/")
        out[f"{slot}/{name}"] = out.get(f"{slot}/{name}", 0) + 1
    return out


def fits(keys: Any, template: Any) -> bool:
    """Whether a model with per-run layers `keys` lines up with a template that has `template`:
    in every slot, of every class, it has as many as the template or none (a left-out layer
    of rate 0); more, or a different count, would be ambiguous."""
    mine, theirs = counts(keys), counts(template)
    return all(theirs.get(k) == n for k, n in mine.items())


def kernel_index(model: keras.Model, kept: list[int]) -> dict[str, tuple[bool, int]]:
    """Each kernel layer's name -> (trainable, index of its kernel among the model's trainable
    variables or the stacked non-trainable ones, `kept`), in `kernel_layers`' order."""
    from mlreg.regularizers import kernel_layers

    trainable = {id(v): i for i, v in enumerate(model.trainable_variables)}
    everything = model.non_trainable_variables
    frozen = {id(everything[i]): j for j, i in enumerate(kept)}
    out = {}
    for layer in kernel_layers(model):
        key = id(layer.kernel)
        out[layer.name] = (True, trainable[key]) if key in trainable else (False, frozen[key])
    return out


def eval_chunk(model: keras.Model) -> int:
    """Samples per evaluation chunk: the widest layer output stays below `EVAL_ELEMENTS` floats
    for a pack of 64."""
    widest = 1
    for layer in all_layers(model):
        try:
            shapes = layer.output.shape if not isinstance(layer.output, list) else layer.output[0].shape
            widest = max(widest, math.prod(d for d in shapes[1:] if d))
        except (AttributeError, ValueError, TypeError):
            continue
    return 1 << max(4, int(math.log2(max(EVAL_ELEMENTS // (widest * MAX_PACK), 1))))
