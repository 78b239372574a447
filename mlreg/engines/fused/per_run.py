"""The layers whose parameter is a per-run value in a pack's program, and their calls with
that value traced.

A Keras layer's rate or standard deviation is a Python float, a constant of a traced program;
so in the template model each such layer draws with the run's own value, from the run's own
seed state (an explicit `[2]` state that advances by `[0, 1]` a draw, as Keras's
`SeedGenerator.next` does), through the ops Keras's own call uses, so that the draws are the
ones `model.fit` makes. A layer Keras built without a seed generator (a rate of 0) is the same
as one that draws with rate 0: its values pass through unchanged.

`classes()` keys each such Keras class to what the engine reads from it and how it draws; a class
with its own `call` (a subclass of the user's) is not taken over and stays a part of the
model's structure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PerRunLayer:
    """A layer class whose parameter is a per-run value.

    Attributes:
        value: the layer -> the float the traced call takes (computed in float64, as Keras
            computes it before it becomes a float32 constant).
        draw: `(layer, inputs, value, seed) -> outputs`: the training-mode call.
    """

    value: Callable[[Any], float]
    draw: Callable[[Any, Any, Any, Any], Any]


def _dropout(layer: Any, inputs: Any, rate: Any, seed: Any) -> Any:
    """`keras.layers.Dropout.call` in training, with the rate traced (a rate of 0 keeps every value)."""
    import keras

    from mlreg.keras_private import noise_shape, spatial_noise_shape, tensorflow_seed

    spatial = isinstance(layer, (keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
                                 keras.layers.SpatialDropout3D))
    shape = noise_shape(inputs, spatial_noise_shape(layer, inputs) if spatial else layer.noise_shape)
    if keras.backend.backend() == "jax":
        import jax

        keep = 1.0 - rate
        mask = jax.random.bernoulli(seed, p=keep, shape=shape)
        return jax.lax.select(jax.numpy.broadcast_to(mask, inputs.shape), inputs / keep, jax.numpy.zeros_like(inputs))
    import tensorflow as tf

    return tf.nn.experimental.stateless_dropout(inputs, rate=rate, noise_shape=shape, seed=tensorflow_seed(seed))


def _normal(inputs: Any, mean: float, stddev: Any, seed: Any, dtype: str) -> Any:
    """`keras.random.normal` of the active backend with a traced standard deviation."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.random.normal(seed, shape=inputs.shape, dtype=dtype) * stddev + mean
    import tensorflow as tf

    from mlreg.keras_private import tensorflow_seed

    return tf.random.stateless_normal(shape=tf.shape(inputs), mean=mean, stddev=stddev, dtype=dtype,
                                      seed=tensorflow_seed(seed))


def _gaussian_noise(layer: Any, inputs: Any, stddev: Any, seed: Any) -> Any:
    """`keras.layers.GaussianNoise.call` in training: inputs + N(0, stddev)."""
    return inputs + _normal(inputs, 0.0, stddev, seed, layer.compute_dtype)


def _gaussian_dropout(layer: Any, inputs: Any, stddev: Any, seed: Any) -> Any:
    """`keras.layers.GaussianDropout.call` in training: inputs x N(1, sqrt(rate / (1 - rate)))."""
    return inputs * _normal(inputs, 1.0, stddev, seed, layer.compute_dtype)


def _augment(layer: Any, inputs: Any, strength: Any, seed: Any) -> Any:
    """`mlreg.layers.Augment.call` in training: the same function, the strength traced."""
    from mlreg.layers import augment

    return augment(inputs, strength, seed)


def classes() -> dict[type, PerRunLayer]:
    """The per-run layer classes, each with its `PerRunLayer` (Keras's own classes, whose calls are the
    ones replicated here, and mlreg's `Augment`)."""
    import keras

    from mlreg.layers import Augment

    rate = PerRunLayer(lambda layer: float(layer.rate), _dropout)
    return {
        Augment: PerRunLayer(lambda layer: float(layer.strength), _augment),
        keras.layers.Dropout: rate,
        keras.layers.SpatialDropout1D: rate,
        keras.layers.SpatialDropout2D: rate,
        keras.layers.SpatialDropout3D: rate,
        keras.layers.GaussianNoise: PerRunLayer(lambda layer: float(layer.stddev), _gaussian_noise),
        keras.layers.GaussianDropout: PerRunLayer(lambda layer: math.sqrt(layer.rate / (1.0 - layer.rate))
                                           if layer.rate < 1 else 0.0, _gaussian_dropout),
    }


def per_run_layer(layer: Any) -> PerRunLayer | None:
    """The layer's `PerRunLayer`, or `None`: only a layer of exactly one of the classes of `classes()`
    (or a template layer the engine made from one) is taken over."""
    cls = getattr(type(layer), "_mlreg_base", type(layer))
    return classes().get(cls)


def take_over(layer: Any) -> None:
    """Makes a template layer draw with the value and seed state set on it (`_mlreg_value`,
    `_mlreg_seed`, plain attributes Keras does not track) while the program is traced; each
    draw advances the seed state as `SeedGenerator.next` does."""
    cls = type(layer)
    if hasattr(cls, "_mlreg_base"):
        return
    kind = classes()[cls]

    def call(self: Any, inputs: Any, training: bool = False) -> Any:
        if not training:
            return inputs
        import keras

        seed = self._mlreg_seed
        object.__setattr__(self, "_mlreg_seed", seed + keras.ops.convert_to_tensor([0, 1], dtype=seed.dtype))
        return kind.draw(self, inputs, self._mlreg_value, seed)

    layer.__class__ = type(f"PerRun{cls.__name__}", (cls,), {"call": call, "_mlreg_base": cls})
