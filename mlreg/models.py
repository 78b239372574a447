"""Models for runs: the builders by name, a user's own builder, compiling, and transfer learning.

Builders (keyed by `mlreg.spec.BUILDERS`): the built-in ones of `mlreg.builders` (`build_mlp`,
`build_residual_mlp`, `build_wide_deep`, `build_cnn`, re-exported here), a pretrained base with
a new head (`transfer`), and a user's own builder named as `"package.module:function"`. The
output head, loss and metrics follow from the task. Every builder takes the shape of one
sample (`input_shape`; an int is a flat feature count).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlreg.backend import import_keras
from mlreg.builders import build_cnn, build_mlp, build_residual_mlp, build_wide_deep, output_activation
from mlreg.regularizers import apply_regularization, kernel_layers, kernel_regularizer
from mlreg.spec import FREEZE, InputError, SpecError
from mlreg.tasks import TABLE

if TYPE_CHECKING:
    import keras

    from mlreg.data import Dataset
    from mlreg.spec import RunSpec, TrainingSpec



OPTIMIZER_CLASSES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
"""Keras's optimizer class of each name in `mlreg.spec.OPTIMIZERS`."""


def loss_for(task: str, label_smoothing: float = 0.0) -> keras.losses.Loss:
    """The training loss of a task (Keras's names: crossentropies, or mean squared error), its
    targets smoothed by `label_smoothing` (single-label: integer labels one-hot first, as Keras's
    sparse crossentropy takes no smoothing)."""
    keras = import_keras()

    if not label_smoothing:
        return getattr(keras.losses, TABLE[task].loss)()
    if task == "regression":
        raise InputError(f"Invalid value for `label_smoothing`: a regression task has no labels to smooth. "
                         f"Received: label_smoothing={label_smoothing}")
    if task != "single_label":
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)

    class SmoothedSparseCrossentropy(keras.losses.Loss):
        """Categorical crossentropy of integer labels, one-hot and smoothed (Keras's own function)."""

        def call(self, y_true: Any, y_pred: Any) -> Any:
            ops = keras.ops
            target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), y_pred.shape[-1], dtype=y_pred.dtype)
            return keras.losses.categorical_crossentropy(target, y_pred, label_smoothing=label_smoothing)

    return SmoothedSparseCrossentropy(name="smoothed_crossentropy")


def data_loss_metric(task: str) -> keras.metrics.Metric:
    """The data loss as a metric named `data_loss`: the loss without the penalty."""
    keras = import_keras()

    return getattr(keras.metrics, TABLE[task].loss)(name="data_loss")


def metrics_for(task: str) -> list[keras.metrics.Metric]:
    """The task's metric, named as its column (`mlreg.tasks.TABLE`): accuracy of the class
    (single-label), accuracy per output at 0.5 (binary, multi-label), or mean absolute error."""
    keras = import_keras()

    return [getattr(keras.metrics, TABLE[task].metric_class)(name=TABLE[task].metric)]


def make_optimizer(name: str, learning_rate: float, weight_decay: float | None = None) -> keras.optimizers.Optimizer:
    """A Keras optimizer by its name in `mlreg.spec.OPTIMIZERS`, with Keras's defaults but the
    weight decay: `weight_decay` (`None` or 0: none; `adamw` without one: Keras's 0.004)."""
    keras = import_keras()

    from mlreg.spec import ADAMW_DECAY

    cls = getattr(keras.optimizers, OPTIMIZER_CLASSES[name])
    if name == "adamw":
        return cls(learning_rate=learning_rate, weight_decay=ADAMW_DECAY if weight_decay is None else weight_decay)
    return cls(learning_rate=learning_rate, weight_decay=weight_decay or None)


def decayed(variable: Any, decay_biases: bool) -> bool:
    """Whether weight decay applies to a variable: kernels, embeddings and recurrent kernels
    (two or more dimensions), or every variable with `decay_biases`."""
    return decay_biases or len(variable.shape) >= 2


def compile_model(model: keras.Model, task: str, training: TrainingSpec) -> keras.Model:
    """Compiles with the task's loss (its labels smoothed by `label_smoothing`), its metrics and
    the `data_loss` metric (and, with smoothing, `objective`: the smoothed loss without the
    penalty); the optimizer decays the variables `decayed` says, by `weight_decay`."""
    training = training.resolved()
    optimizer = make_optimizer(training.optimizer, training.learning_rate, training.weight_decay)
    if optimizer.weight_decay and not training.decay_biases:
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if not decayed(v, False)])
    loss = loss_for(task, training.label_smoothing)
    objective = [] if not training.label_smoothing else [_objective_metric(loss)]
    model.compile(optimizer=optimizer, loss=loss, metrics=[*metrics_for(task), data_loss_metric(task), *objective])
    return model


def _objective_metric(loss: Any) -> Any:
    keras = import_keras()

    return keras.metrics.MeanMetricWrapper(lambda y, p: loss.call(y, p), name="objective")


def _model_args(run: RunSpec, builder: str) -> dict[str, Any]:
    """The run's values of the parameters a built-in builder takes (`BUILDER_PARAMS`)."""
    from mlreg.spec import BUILDER_PARAMS

    return {k: getattr(run.model, k) for k in BUILDER_PARAMS[builder]}


def _transfer(run: RunSpec, data: Dataset) -> keras.Model:
    m = run.model
    base = load_base_model(run.path(m.base_model))  # type: ignore[arg-type]
    return transfer_model(base, data.n_outputs, data.task, freeze_strategy=m.freeze,
                          **_model_args(run, "transfer"))  # type: ignore[arg-type]


# The built-in builders, keyed by mlreg.spec.BUILDERS: (run, data) -> an uncompiled keras.Model.
BUILDERS: dict[str, Any] = {
    "mlp": lambda run, data: build_mlp(data.input_shape, data.n_outputs, data.task, **_model_args(run, "mlp")),
    "residual_mlp": lambda run, data: build_residual_mlp(data.input_shape, data.n_outputs, data.task,
                                                         **_model_args(run, "residual_mlp")),
    "wide_deep": lambda run, data: build_wide_deep(data.input_shape, data.n_outputs, data.task,
                                                   **_model_args(run, "wide_deep")),
    "cnn": lambda run, data: build_cnn(data.input_shape, data.n_outputs, data.task, **_model_args(run, "cnn")),
    "transfer": _transfer,
}


def user_builder(ref: str, root: str | None = None) -> Any:
    """A user's builder: the function a label names (passed in memory, `mlreg.memory`), or the
    one `"package.module:function"` names, imported, looking first in `root`
    (the experiment file's folder, where its `data.path` is resolved too), then in the working
    directory (as `python -m` does) and `sys.path` (`PYTHONPATH`). Workers look the same way.

    Raises:
        SpecError: the module or function cannot be found, naming where mlreg looked; or the
            module raised while it was imported, naming its file and line.
    """
    from mlreg import memory
    from mlreg.records import error_line

    if memory.BUILDER_LABEL.fullmatch(ref):
        return memory.get(ref, "model.builder")
    module_name, _, func = ref.partition(":")
    places = [str(Path(root).resolve())] if root is not None else []
    places.append(os.getcwd())
    for place in reversed(places):
        if place not in sys.path:  # once: a sweep calls this for every run
            sys.path.insert(0, place)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        looked = (f"looked in {places[0]}, then in the working directory {places[1]} and sys.path" if root is not None
                  else f"looked in the working directory {places[0]} and sys.path")
        raise SpecError(f"Invalid value for `model.builder`: cannot import {module_name!r} ({e}; {looked}). "
                        f"Received: builder={ref!r}") from None
    except Exception as e:  # noqa: BLE001 - the user's module raised at import: their input, named
        where = f" (at {e.filename}:{e.lineno})" if isinstance(e, SyntaxError) and e.filename else ""
        raise SpecError(f"Invalid value for `model.builder`: importing {module_name!r} raised "
                        f"{error_line(e)}{where}. Received: builder={ref!r}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise SpecError(f"Invalid value for `model.builder`: {module_name} has no function {func!r}. "
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


_CHECKING = contextvars.ContextVar("mlreg_checking", default=False)


def checking() -> bool:
    """Whether the model being built is one `mlreg run` or `validate` builds to check a builder
    before training (`True`), not one that trains: a builder can skip costly work then."""
    return _CHECKING.get()


@contextlib.contextmanager
def _checking() -> Iterator[None]:
    token = _CHECKING.set(True)
    try:
        yield
    finally:
        _CHECKING.reset(token)


def builder_takes(fn: Any) -> tuple[str, ...] | None:
    """The model parameters (`mlreg.spec.MODEL_PARAMS`) a user's builder names in its signature,
    or `None` when it takes `**kwargs` (all of them)."""
    from mlreg.spec import MODEL_PARAMS

    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    names = {p.name for p in params}
    return tuple(k for k in MODEL_PARAMS if k in names)


def builder_arguments(run: RunSpec, data: Dataset) -> dict[str, Any]:
    """The keyword arguments a user's builder can take: the run's parameters (`run.params_for_builder()`:
    `l1`, `l2`, `dropout`, `hidden`, `learning_rate`, ...) and what the data decide:
    `input_shape` (one sample's shape, a tuple), `n_features` (its size), `n_outputs`,
    `task` and `output_activation`."""
    return run.params_for_builder() | {
        "input_shape": data.input_shape,
        "n_features": data.n_features,
        "n_outputs": data.n_outputs,
        "task": data.task,
        "output_activation": output_activation(data.task),
    }


def build_model(run: RunSpec, data: Dataset) -> keras.Model:
    """Builds (uncompiled) the model of a run for its data.

    A user's builder is called with keyword arguments (see `call_builder` and
    `builder_arguments`). It must return a `keras.Model` with its own head and is
    responsible for using `l1`, `l2` and `dropout` (see `mlreg.apply_regularization`).
    """
    keras = import_keras()

    m = run.model
    if m.builder in BUILDERS:
        model = BUILDERS[m.builder](run, data)
        if m.builder == "transfer":  # frozen by transfer_model already
            return model
    else:
        model = call_builder(user_builder(m.builder, run.root), builder_arguments(run, data), m.builder)
        if not isinstance(model, keras.Model):
            raise TypeError(f"builder {m.builder} returned {type(model).__name__}, not a keras.Model")
        _build_variables(model, data)
    # "none" leaves the model as built (a user's builder may have frozen layers itself)
    return freeze(model, m.freeze) if m.freeze != "none" else model


def _build_variables(model: keras.Model, data: Dataset) -> None:
    """Creates the variables of a model whose layers are built on their first call (a
    subclassed model, a Sequential without an `Input`), by calling it on one sample in
    inference mode, so that its initial weights are drawn here, under the run's seed, the same
    for every engine."""
    if all(layer.built for layer in _nested(model)) and model.built:
        return
    model(data.x_train[:1], training=False)


def _nested(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        out += [layer, *_nested(layer)]
    return out


def check_model(model: Any, data: Dataset, builder: str) -> None:
    """Refuses, before any training, a model a builder returned that cannot train on this data:
    not a `keras.Model`, an input that does not take the data's samples, or an output that does
    not fit the task (one value per class, label or target; probabilities for classification).

    Raises:
        SpecError: naming the builder and what it returned.
    """
    keras = import_keras()
    import numpy as np

    where = f"Invalid value for `model.builder`: {builder}"
    if not isinstance(model, keras.Model):
        raise SpecError(f"{where} returned {type(model).__name__}, not a keras.Model. Received: builder={builder!r}")
    try:
        out = np.asarray(model(data.x_train[:4], training=False))
    except Exception as e:  # noqa: BLE001 - the user's model: what it says is the message
        raise SpecError(f"{where} returned a model that cannot take the data's samples of shape "
                        f"{list(data.input_shape)} ({type(e).__name__}: {' '.join(str(e).split())[:200]}). "
                        f"Received: builder={builder!r}") from None
    n, task = data.n_outputs, data.task
    what = {"single_label": f"{n} class probabilities (softmax)", "binary": "1 probability (sigmoid)",
            "multi_label": f"{n} label probabilities (sigmoid)", "regression": f"{n} value{'s' * (n != 1)}"}[task]
    fits = out.ndim == 2 and out.shape[1] == n
    if fits and task != "regression":
        fits = bool(((out >= 0) & (out <= 1)).all())
        fits = fits and (task != "single_label" or bool(np.allclose(out.sum(1), 1, atol=1e-3)))
    if not fits:
        got = f"{out.shape[-1]} value{'s' * (out.shape[-1] != 1)}" if out.ndim == 2 else f"shape {list(out.shape[1:])}"
        if out.ndim == 2 and out.shape[1] == n:
            got += " that are not " + ("probabilities summing to 1" if task == "single_label" else "probabilities")
        raise SpecError(f"{where} returned a model whose output does not fit the {task} task: it gives {got} per "
                        f"sample, the task wants {what} (give the head `n_outputs` units and `output_activation`). "
                        f"Received: builder={builder!r}")


# -- transfer learning ----------------------------------------------------------------
TRAINABLE = {"none": None, "all_but_last": 1, "most": 2}
"""How many layers with weights each freeze strategy of `mlreg.spec.FREEZE` leaves trainable
(counted from the top; `None`: all)."""


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
        InputError: an unknown strategy or a negative count.
    """
    layers = kernel_layers(model)
    if isinstance(strategy, bool) or not (strategy in FREEZE or isinstance(strategy, int)):
        raise InputError(f"Invalid value for `freeze`: expected one of {list(FREEZE)} "
                         f"or a count of trainable layers. Received: freeze={strategy!r}")
    k = TRAINABLE.get(strategy, strategy) if isinstance(strategy, str) else strategy
    k = len(layers) if k is None else k
    if k < 0:
        raise InputError(f"Invalid value for `freeze`: expected a count >= 0. Received: freeze={k}")
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
    **penalties: float,
) -> keras.Model:
    """A new model: the base without its output layer, a fresh head for the new task,
    frozen by `freeze_strategy` (see `freeze`). Its weights are shared with `base`; the kinds
    applied to kernels (`l1`, `l2`, `**penalties`) go on every kernel.
    """
    keras = import_keras()

    features = base.layers[-2].output
    head = keras.layers.Dense(
        n_outputs, activation=output_activation(task),
        kernel_regularizer=kernel_regularizer(l1, l2, **penalties), name="new_output",
    )
    model = keras.Model(base.inputs, head(features), name=f"{base.name}_transfer")
    if l1 or l2 or any(penalties.values()):  # the base's own layers get the rates too (the head has them already)
        apply_regularization(model, l1=l1, l2=l2, **penalties)
    return freeze(model, freeze_strategy)


def load_base_model(path: str | os.PathLike[str]) -> keras.Model:
    """Loads a pretrained model from a `.keras` file, uncompiled, with Keras's safe mode on
    (no arbitrary code from the file is run)."""
    keras = import_keras()

    from mlreg.backend import import_tensorflow

    import_tensorflow()  # Keras's loader looks for TensorFlow types on any backend: its log lines stay out
    return keras.models.load_model(path, compile=False, safe_mode=True)
