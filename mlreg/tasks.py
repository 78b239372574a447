"""What a task decides, one entry per name of `mlreg.spec.TASKS` ("auto" is resolved by the
data): the output layer's activation, the loss (Keras's class for `model.fit`, its per-sample
function for the fused engine), the metric (its column's name, Keras's class, its per-sample
form). A new task is one entry here. Nothing is imported until a function is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    """Everything about one task.

    Attributes:
        activation: the output layer's activation.
        loss: Keras's loss class (also the class of the `data_loss` metric: the loss without
            the penalty).
        per_sample_loss: Keras's loss function of the same loss, per sample.
        metric: the metric's column name (`accuracy`, `mae`), as Keras names it.
        metric_class: Keras's metric class that `model.fit` measures it with.
        per_sample_metric: `(y, p) -> [batch]` of the metric with `keras.ops` (the fused
            engine's), the same number per sample as `metric_class` averages.
    """

    activation: str
    loss: str
    per_sample_loss: str
    metric: str
    metric_class: str
    per_sample_metric: Callable[[Any, Any], Any]


def _class_accuracy(y: Any, p: Any) -> Any:
    import keras

    ops = keras.ops
    return ops.cast(ops.equal(ops.cast(ops.reshape(y, (-1,)), "int32"), ops.cast(ops.argmax(p, -1), "int32")),
                    "float32")


def _label_accuracy(y: Any, p: Any) -> Any:
    import keras

    ops = keras.ops
    return ops.mean(ops.cast(ops.equal(y, ops.cast(p > 0.5, y.dtype)), "float32"), -1)


def _absolute_error(y: Any, p: Any) -> Any:
    import keras

    return keras.ops.mean(keras.ops.abs(y - p), -1)


TABLE: dict[str, Task] = {
    "single_label": Task("softmax", "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy", "accuracy",
                         "SparseCategoricalAccuracy", _class_accuracy),
    "binary": Task("sigmoid", "BinaryCrossentropy", "binary_crossentropy", "accuracy", "BinaryAccuracy",
                   _label_accuracy),
    "multi_label": Task("sigmoid", "BinaryCrossentropy", "binary_crossentropy", "accuracy", "BinaryAccuracy",
                        _label_accuracy),
    "regression": Task("linear", "MeanSquaredError", "mean_squared_error", "mae", "MeanAbsoluteError",
                       _absolute_error),
}
"""Each task's `Task`. Keras's `"accuracy"` string would pick categorical accuracy (argmax
against argmax) for a multi-label target, which says nothing about the labels: hence named
classes."""
