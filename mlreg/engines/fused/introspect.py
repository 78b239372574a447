"""What each run's own model says: its initial values, its L1/L2 rates and dropout rates, and
its structure apart from those (the signature that decides which runs share a program)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

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


@dataclass
class Built:
    """What the engine keeps of one run's freshly built model."""

    trainable: list[np.ndarray]
    non_trainable: dict[str, np.ndarray]  # by variable path
    regularized: dict[int, tuple[float, float]]  # trainable index -> (l1, l2) of its L1/L2/L1L2 regularizer
    dropout: dict[str, float]  # Dropout layer name -> rate
    signature: str  # the model apart from the per-run values
    n_params: int
    order_state: Any  # the global NumPy random state right after the build (JAX's batch order)


def dropout_layers(model: keras.Model) -> list[Any]:
    """The model's Dropout layers whose rate can be a per-run value (Keras's own `call`)."""
    import keras

    return [layer for layer in all_layers(model)
            if isinstance(layer, keras.layers.Dropout) and call_of(type(layer)) is keras.layers.Dropout.call]


def call_of(cls: type) -> Any:
    return getattr(cls, "_mlreg_call", cls.call)


def all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out += all_layers(layer)
    return out


_STRIPPED = {"name", "kernel_regularizer", "bias_regularizer", "activity_regularizer", "seed", "rate"}


def _signature(model: keras.Model, regularized: dict[int, tuple[float, float]]) -> str:
    """The structure of a model apart from the per-run values: its class, every layer but the
    per-run Dropout layers with its configuration (no names, regularizers or seeds), and the
    shape of every variable."""
    per_run = set(map(id, dropout_layers(model)))

    def plain(config: Any) -> Any:
        if isinstance(config, dict):
            return {k: plain(v) for k, v in config.items() if k not in _STRIPPED}
        return [plain(v) for v in config] if isinstance(config, list | tuple) else config

    from mlreg.backend import without_tensorflow

    with without_tensorflow():
        layers = [[type(layer).__name__, plain(layer.get_config())] for layer in all_layers(model)
                  if id(layer) not in per_run]
    variables = [[list(v.shape), str(v.dtype), v.trainable] for v in model.variables if "seed_generator" not in v.path]
    custom = [str(v.regularizer.get_config()) for i, v in enumerate(model.trainable_variables)
              if v.regularizer is not None and i not in regularized]
    return json.dumps([type(model).__name__, layers, variables, custom], default=str)


def build(run: RunSpec, data: Dataset) -> tuple[keras.Model, Built]:
    """Builds a run's model exactly as the keras engine does, and reads what is its own."""
    import keras

    from mlreg.backend import seeded
    from mlreg.models import build_model

    keras.backend.clear_session(free_memory=False)
    with seeded(run.seed):
        model = build_model(run, data)
    order_state = np.random.get_state()
    regularized = {}
    for i, v in enumerate(model.trainable_variables):
        if isinstance(v.regularizer, keras.regularizers.L1 | keras.regularizers.L2 | keras.regularizers.L1L2):
            config = v.regularizer.get_config()
            regularized[i] = (float(config.get("l1", 0.0)), float(config.get("l2", 0.0)))
    built = Built(
        trainable=[np.array(v.numpy(), copy=True) for v in model.trainable_variables],
        non_trainable={v.path: np.array(v.numpy(), copy=True) for v in model.non_trainable_variables},
        regularized=regularized,
        dropout={layer.name: float(layer.rate) for layer in dropout_layers(model)},
        signature=_signature(model, regularized),
        n_params=int(model.count_params()),
        order_state=order_state,
    )
    return model, built

