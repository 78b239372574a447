"""Model builders that return plain `keras.Model`s, and transfer-learning helpers.

Builders: a Sequential MLP (`build_mlp`), a Functional residual MLP
(`build_residual_mlp`), a Functional wide-and-deep model (`build_wide_deep`),
and a user's own `build(hp) -> keras.Model` named as `"package.module:function"`.
The output head, loss and metrics follow from the task.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlreg.regularizers import apply_regularization, kernel_layers, kernel_regularizer

if TYPE_CHECKING:
    import keras

    from mlreg.data import Dataset
    from mlreg.spec import RunSpec, TrainingSpec

Rates = float | Sequence[float]


# -- what the task decides --------------------------------------------------------------
def output_activation(task: str) -> str:
    """`softmax` for single-label, `sigmoid` for binary and multi-label, `linear` for regression."""
    return {"single_label": "softmax", "binary": "sigmoid", "multi_label": "sigmoid"}.get(task, "linear")


def loss_for(task: str) -> keras.losses.Loss:
    """The data loss of a task (Keras's names: crossentropies, or mean squared error)."""
    import keras

    if task == "single_label":
        return keras.losses.SparseCategoricalCrossentropy()
    if task in ("binary", "multi_label"):
        return keras.losses.BinaryCrossentropy()
    return keras.losses.MeanSquaredError()


def data_loss_metric(task: str) -> keras.metrics.Metric:
    """The data loss as a metric named `data_loss`: the loss without the penalty."""
    import keras

    cls = {
        "single_label": keras.metrics.SparseCategoricalCrossentropy,
        "binary": keras.metrics.BinaryCrossentropy,
        "multi_label": keras.metrics.BinaryCrossentropy,
    }.get(task, keras.metrics.MeanSquaredError)
    return cls(name="data_loss")


def metrics_for(task: str) -> list[keras.metrics.Metric]:
    """The task's metric, named as its column (`records.metric_names`): accuracy of the class
    (single-label), accuracy per output at 0.5 (binary, multi-label), or mean absolute error.

    Keras's `"accuracy"` string would pick categorical accuracy (argmax against argmax) for a
    multi-label target, which says nothing about the labels; hence explicit metrics.
    """
    import keras

    if task == "regression":
        return [keras.metrics.MeanAbsoluteError(name="mae")]
    if task == "single_label":
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return [keras.metrics.BinaryAccuracy(name="accuracy")]


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    import keras

    cls = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }[name]
    return cls(learning_rate=learning_rate)


def compile_model(model: keras.Model, task: str, training: TrainingSpec) -> keras.Model:
    """Compiles with the task's loss, its metrics and the `data_loss` metric."""
    model.compile(
        optimizer=make_optimizer(training.optimizer, training.learning_rate),
        loss=loss_for(task),
        metrics=[*metrics_for(task), data_loss_metric(task)],
    )
    return model


# -- builders -------------------------------------------------------------------------
def _rate(rates: Rates, i: int) -> float:
    return float(rates if isinstance(rates, int | float) else rates[i])


def _dense(units: int, i: int, l1: Rates, l2: Rates, name: str, activation: str | None = None):
    import keras

    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_regularizer=kernel_regularizer(_rate(l1, i), _rate(l2, i)),
        name=name,
    )


def build_mlp(
    n_features: int,
    n_outputs: int,
    task: str,
    *,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    dropout: float = 0.0,
    l1: Rates = 0.0,
    l2: Rates = 0.0,
) -> keras.Sequential:
    """A Sequential MLP: Dense (+ Dropout) per hidden layer, then the task's head.

    Args:
        n_features: input width.
        n_outputs: units of the output layer.
        task: `single_label`, `binary`, `multi_label` or `regression`.
        hidden: hidden-layer sizes. Defaults to `(64, 64)`.
        activation: `relu`, `leaky_relu`, `elu`, `tanh`, `sigmoid`, ... Defaults to `"relu"`.
        dropout: rate of the Dropout after each hidden layer. Defaults to `0.0`.
        l1: L1 rate, for all Dense layers or one per layer (hidden..., output). Defaults to `0.0`.
        l2: L2 rate, likewise. Defaults to `0.0`.

    Returns:
        An uncompiled `keras.Sequential` with layers `hidden_1`, ..., `output`.

    Example:
        >>> m = build_mlp(4, 3, "single_label", hidden=(8,), l2=1e-3)
        >>> [layer.name for layer in m.layers]
        ['hidden_1', 'output']
    """
    import keras

    layers: list[Any] = [keras.Input((n_features,))]
    for i, units in enumerate(hidden):
        layers.append(_dense(units, i, l1, l2, f"hidden_{i + 1}", activation))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout_{i + 1}"))
    layers.append(_dense(n_outputs, len(hidden), l1, l2, "output", output_activation(task)))
    return keras.Sequential(layers, name="mlp")


def build_residual_mlp(
    n_features: int,
    n_outputs: int,
    task: str,
    *,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    dropout: float = 0.0,
    l1: Rates = 0.0,
    l2: Rates = 0.0,
) -> keras.Model:
    """A Functional residual MLP: each hidden layer after the first adds a skip connection.

    `x_{i+1} = x_i + Dropout(act(Dense(x_i)))`, with a linear projection on the
    skip when the width changes. Arguments as in `build_mlp`.
    """
    import keras

    inputs = keras.Input((n_features,), name="features")
    x = _dense(hidden[0], 0, l1, l2, "hidden_1", activation)(inputs)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    for i, units in enumerate(hidden[1:], start=1):
        y = _dense(units, i, l1, l2, f"hidden_{i + 1}", activation)(x)
        if dropout:
            y = keras.layers.Dropout(dropout)(y)
        if x.shape[-1] != units:
            x = _dense(units, i, l1, l2, f"skip_{i + 1}")(x)
        x = keras.layers.Add(name=f"residual_{i + 1}")([x, y])
    outputs = _dense(n_outputs, len(hidden), l1, l2, "output", output_activation(task))(x)
    return keras.Model(inputs, outputs, name="residual_mlp")


def build_wide_deep(
    n_features: int,
    n_outputs: int,
    task: str,
    *,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    dropout: float = 0.0,
    l1: Rates = 0.0,
    l2: Rates = 0.0,
) -> keras.Model:
    """A Functional wide-and-deep model: the raw features (wide, linear) and an MLP
    branch (deep) are concatenated before the output layer. Arguments as in `build_mlp`.
    """
    import keras

    inputs = keras.Input((n_features,), name="features")
    deep = inputs
    for i, units in enumerate(hidden):
        deep = _dense(units, i, l1, l2, f"hidden_{i + 1}", activation)(deep)
        if dropout:
            deep = keras.layers.Dropout(dropout)(deep)
    merged = keras.layers.Concatenate(name="wide_and_deep")([inputs, deep])
    outputs = _dense(n_outputs, len(hidden), l1, l2, "output", output_activation(task))(merged)
    return keras.Model(inputs, outputs, name="wide_deep")


BUILDERS = {"mlp": build_mlp, "residual_mlp": build_residual_mlp, "wide_deep": build_wide_deep}


def user_builder(ref: str) -> Any:
    """Imports a user's builder given as `"package.module:function"` (the working
    directory is importable, as with `python -m`).

    Raises:
        ValueError: the module or function cannot be found.
    """
    module_name, _, func = ref.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"Invalid value for `model.builder`: cannot import {module_name!r} ({e}). "
                         f"Received: builder={ref!r}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise ValueError(f"Invalid value for `model.builder`: {module_name} has no function {func!r}. "
                         f"Received: builder={ref!r}")
    return fn


def call_builder(fn: Any, hp: dict[str, Any], ref: str) -> Any:
    """Calls a user's builder with keyword arguments: those its signature names (all of them
    when it takes `**kwargs`).

    Raises:
        TypeError: the builder needs an argument that mlreg does not give, naming it.
    """
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return fn(**hp)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [p.name for p in params if p.default is p.empty and p.name not in hp
               and p.kind is not p.VAR_POSITIONAL]
    if missing:
        raise TypeError(f"builder {ref} needs {missing}, which mlreg does not give; mlreg calls a builder "
                        f"with keyword arguments, those it names of {sorted(hp)}")
    return fn(**{k: v for k, v in hp.items() if k in named})


def build_model(run: RunSpec, data: Dataset) -> keras.Model:
    """Builds (uncompiled) the model of a run for its data.

    A user's builder is called with keyword arguments (see `call_builder`): the run's
    parameters (`run.hp()`: `l1`, `l2`, `dropout`, `hidden`, `learning_rate`, ...) plus
    `n_features`, `n_outputs`, `task` and `output_activation`. It must return a
    `keras.Model` with its own head and is responsible for using `l1`, `l2` and `dropout`
    (see `mlreg.apply_regularization`).
    """
    import keras

    m = run.model
    if m.builder == "transfer":
        if isinstance(m.l1, tuple) or isinstance(m.l2, tuple):
            raise ValueError("per-layer rates do not apply to `transfer`; give one rate (for the new head)")
        base = load_base_model(run.path(m.base_model))  # type: ignore[arg-type]
        return transfer_model(base, data.n_outputs, data.task, freeze_strategy=m.freeze, l1=m.l1, l2=m.l2)
    if m.builder in BUILDERS:
        model = BUILDERS[m.builder](
            data.n_features, data.n_outputs, data.task,
            hidden=m.hidden, activation=m.activation, dropout=m.dropout, l1=m.l1, l2=m.l2,
        )
    else:
        hp = run.hp() | {
            "n_features": data.n_features,
            "n_outputs": data.n_outputs,
            "task": data.task,
            "output_activation": output_activation(data.task),
        }
        model = call_builder(user_builder(m.builder), hp, m.builder)
        if not isinstance(model, keras.Model):
            raise TypeError(f"builder {m.builder} returned {type(model).__name__}, not a keras.Model")
    # "none" leaves the model as built (a user's builder may have frozen layers itself)
    return freeze(model, m.freeze) if m.freeze != "none" else model


# -- transfer learning ----------------------------------------------------------------
FREEZE_STRATEGIES = ("all_but_last", "most", "none")


def freeze(model: keras.Model, strategy: str | int) -> keras.Model:
    """Freezes the layers of a model by strategy, in place.

    Args:
        model: a built model.
        strategy: `"all_but_last"` (train only the last layer with weights),
            `"most"` (train the last two), `"none"` (train everything), or an int
            `k`: train the last `k` layers with weights.

    Returns:
        The same model. Re-compile it after freezing.

    Raises:
        ValueError: an unknown strategy or a negative count.
    """
    layers = kernel_layers(model)
    if isinstance(strategy, bool) or not (strategy in FREEZE_STRATEGIES or isinstance(strategy, int)):
        raise ValueError(f"Invalid value for `freeze`: expected one of {list(FREEZE_STRATEGIES)} "
                         f"or a count of trainable layers. Received: freeze={strategy!r}")
    k = {"all_but_last": 1, "most": 2, "none": len(layers)}.get(strategy, strategy)  # type: ignore[arg-type]
    if k < 0:
        raise ValueError(f"Invalid value for `freeze`: expected a count >= 0. Received: freeze={k}")
    trainable = set(map(id, layers[len(layers) - min(k, len(layers)):]))
    for layer in layers:
        layer.trainable = id(layer) in trainable
    return model


def freeze_strategy_for(n_samples: int, *, small: int = 200, large: int = 2000) -> str:
    """A rule of thumb: little data -> train only the head; much data -> train everything.

    Args:
        n_samples: size of the target training set.
        small: at or below this, `"all_but_last"`. Defaults to `200`.
        large: at or above this, `"none"`; in between `"most"`. Defaults to `2000`.
    """
    return "all_but_last" if n_samples <= small else ("none" if n_samples >= large else "most")


def transfer_model(
    base: keras.Model,
    n_outputs: int,
    task: str,
    *,
    freeze_strategy: str | int = "all_but_last",
    l1: float = 0.0,
    l2: float = 0.0,
) -> keras.Model:
    """A new model: the base without its output layer, a fresh head for the new task,
    frozen by `freeze_strategy` (see `freeze`). Its weights are shared with `base`.
    """
    import keras

    features = base.layers[-2].output
    head = keras.layers.Dense(
        n_outputs, activation=output_activation(task),
        kernel_regularizer=kernel_regularizer(l1, l2), name="new_output",
    )
    model = keras.Model(base.inputs, head(features), name=f"{base.name}_transfer")
    if l1 or l2:  # the base's own layers get the rate too (the head has it already)
        apply_regularization(model, l1=l1, l2=l2)
    return freeze(model, freeze_strategy)


def load_base_model(path: str | os.PathLike[str]) -> keras.Model:
    """Loads a pretrained model from a `.keras` file, uncompiled, with Keras's safe mode on
    (no arbitrary code from the file is run)."""
    import keras

    return keras.models.load_model(path, compile=False, safe_mode=True)
