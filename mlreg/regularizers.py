"""Kernel regularizers from rates, and regularization applied to an existing model."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.backend import import_keras
from mlreg.errors import InputError

if TYPE_CHECKING:
    import keras


def kernel_regularizer(l1: float = 0.0, l2: float = 0.0, **penalties: float) -> keras.regularizers.Regularizer | None:
    """The Keras regularizer for the rates: `L1`, `L2`, `L1L2`, or `None` when all are 0; with
    another kind applied to kernels (`mlreg.spec.add_kind`) at a rate above 0, their sum
    (`Penalties`).

    Args:
        l1: L1 rate (penalty `l1 * sum(|w|)`). Defaults to `0.0`.
        l2: L2 rate (penalty `l2 * sum(w**2)`, Keras's convention, no 1/2). Defaults to `0.0`.
        **penalties: the rates of other kinds applied to kernels, by name.

    Returns:
        A `keras.regularizers.Regularizer`, or `None`.

    Raises:
        InputError: a negative or non-finite rate, or a name that is not a kind applied to kernels.

    Example:
        >>> type(kernel_regularizer(l2=1e-3)).__name__
        'L2'
    """
    from mlreg.spec import KINDS

    keras = import_keras()

    for name, rate in (("l1", l1), ("l2", l2), *penalties.items()):
        if name not in KINDS or KINDS[name].applies != "kernel":
            kernel = [k for k, kind in KINDS.items() if kind.applies == "kernel"]
            raise InputError(f"Invalid value for `{name}`: not a kind of regularization applied to kernels "
                             f"({', '.join(kernel)}). Received: {name}={rate}")
        if not (rate >= 0 and rate != float("inf")):
            raise InputError(f"Invalid value for `{name}`: expected a rate >= 0. Received: {name}={rate}")
    if any(penalties.values()):
        return Penalties({"l1": l1, "l2": l2, **penalties})
    if l1 and l2:
        return keras.regularizers.L1L2(l1=l1, l2=l2)
    if l1:
        return keras.regularizers.L1(l1)
    if l2:
        return keras.regularizers.L2(l2)
    return None


def Penalties(rates: dict[str, float]) -> keras.regularizers.Regularizer:  # noqa: N802 - a class, made on first use
    """The sum of the penalties of several kinds applied to kernels, each at its rate (those at 0
    left out): what `kernel_regularizer` gives when a kind besides L1 and L2 is on."""
    return _penalties_class()({k: float(r) for k, r in rates.items() if r})


@functools.cache
def _penalties_class() -> type:
    keras = import_keras()

    @keras.saving.register_keras_serializable(package="mlreg")
    class Penalties(keras.regularizers.Regularizer):
        def __init__(self, rates: dict[str, float]) -> None:
            self.rates = dict(rates)

        def __call__(self, x: Any) -> Any:
            from mlreg.spec import KINDS

            return sum(KINDS[name].penalty(rate)(x) for name, rate in self.rates.items())

        def get_config(self) -> dict[str, Any]:
            return {"rates": dict(self.rates)}

    return Penalties


def apply_regularization(
    model: keras.Model, *, l1: float = 0.0, l2: float = 0.0, layers: list[str] | None = None, **penalties: float
) -> keras.Model:
    """Puts an L1/L2 penalty on the kernels of an existing (built) model, in place.

    Keras 3 collects penalties from `variable.regularizer` of each trainable
    variable, so setting it on the kernels is enough; the layer's
    `kernel_regularizer` is set too so that `get_config()` tells the truth.
    Compile (or re-compile) the model afterwards.

    Args:
        model: a built Keras model.
        l1: L1 rate. Defaults to `0.0`.
        l2: L2 rate. Defaults to `0.0`.
        layers: names of the layers to regularize. Defaults to every layer with a kernel.
        **penalties: the rates of other kinds applied to kernels, by name (see `kernel_regularizer`).

    Returns:
        The same model.
    """
    reg = kernel_regularizer(l1, l2, **penalties)
    for layer in kernel_layers(model):
        if layers is None or layer.name in layers:
            layer.kernel.regularizer = reg
            layer.kernel_regularizer = reg
    return model


def kernel_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of a model that own a `kernel`, in order, looking inside nested models."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            out += kernel_layers(layer)
        elif getattr(layer, "kernel", None) is not None:
            out.append(layer)
    return out


def kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """The kernels of a model by layer name, as arrays (`kernel_layers`' order)."""
    return {layer.name: np.asarray(layer.kernel.numpy()) for layer in kernel_layers(model)}
