"""Every private Keras API (`keras.src`) mlreg relies on, in one place.

Keras's public API has no way to do these few things, so mlreg reaches inside. Each function
below names what it uses and was checked against Keras `CHECKED_WITH`; the tests
(tests/test_keras_private.py) call each one and fail, naming it, when a Keras release moves or
changes it. Nothing here imports Keras until a function is called, and nothing here imports
the rest of mlreg.
"""

from __future__ import annotations

from typing import Any

CHECKED_WITH = "3.15.1"
"""The Keras version every use below was read in and tested against."""


def backend_ops() -> Any:
    """`keras.src.backend`: the active backend's ops as Keras's layers call them; a
    convolution layer calls `backend.nn.conv` through this module at call time, so the fused
    engine can hook it (`mlreg.engines.fused.conv`)."""
    from keras.src import backend

    return backend


def standardize_data_format(data_format: Any) -> str:
    """`keras.src.backend.standardize_data_format`: `None` -> the configured image data format."""
    return backend_ops().standardize_data_format(data_format)


def seed_module() -> Any:
    """`keras.src.random.seed_generator`: its module attribute `python_random` is the generator
    Keras draws default seeds from (initializers, `SeedGenerator()` without a seed)."""
    from keras.src.random import seed_generator

    return seed_generator


def tensorflow_flag() -> Any:
    """`keras.src.utils.module_utils.tensorflow`: the lazy module whose `_available` Keras
    consults before it imports TensorFlow to look for its types."""
    from keras.src.utils import module_utils

    return module_utils.tensorflow


def base_optimizer() -> type:
    """`keras.src.optimizers.base_optimizer.BaseOptimizer`: the backend-independent optimizer,
    whose `stateless_apply` and assignment methods the TensorFlow optimizer overrides (and
    refuses statelessness in)."""
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    return BaseOptimizer


def noise_shape(inputs: Any, noise_shape: Any) -> Any:
    """`_get_concrete_noise_shape` of the active backend's random module: a Dropout's
    `noise_shape` with its `None`s filled from the inputs, as Keras's dropout op computes it."""
    return _random()._get_concrete_noise_shape(inputs, noise_shape)


def spatial_noise_shape(layer: Any, inputs: Any) -> Any:
    """`SpatialDropout{1,2,3}D._get_noise_shape`: whole feature maps share a draw."""
    return layer._get_noise_shape(inputs)


def tensorflow_seed(seed: Any) -> Any:
    """`keras.src.backend.tensorflow.random._cast_seed`: a seed state as the int32 pair
    TensorFlow's stateless ops take (Keras's own conversion, so the same draws)."""
    from keras.src.backend.tensorflow import random

    return random._cast_seed(seed)


def _random() -> Any:
    import keras

    if keras.backend.backend() == "jax":
        from keras.src.backend.jax import random
    else:
        from keras.src.backend.tensorflow import random
    return random
