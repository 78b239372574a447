"""Keras layers mlreg adds to models: data augmentation of one strength.

`Augment(strength)` augments images `[H, W, C]` or sequences `[T, C]` in training only, drawn
from its own seed generator, by one number in [0, 1] that a sweep can vary (`augment`):

- images: each sample shifted by whole pixels, up to `strength x 25%` of its height and of its
  width (zeros fill what comes in), and mirrored left-right with probability `strength / 2`
  (for classes that look alike in a mirror; digits do not);
- sequences: each sample shifted in time by up to `strength x 25%` of its length (zeros fill)
  and scaled by a factor drawn uniformly from `[1 - strength / 2, 1 + strength / 2]`.

A strength of 0 passes every value through unchanged. The transforms are products with shift
matrices, so that the fused engine maps them over runs cheaply, with each run's strength a
traced value (`augment` is the one function both engines call).

Importing this module imports Keras.
"""

from __future__ import annotations

from typing import Any

from mlreg.backend import import_keras

keras = import_keras()


def uniform(seed: Any, shape: tuple[int, ...]) -> Any:
    """Uniform [0, 1) numbers from a seed state (`SeedGenerator.next()`'s value) on the active
    backend: `jax.random.uniform`, or TensorFlow's stateless uniform as Keras seeds it."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.random.uniform(seed, shape)
    import tensorflow as tf

    from mlreg.keras_private import tensorflow_seed

    return tf.random.stateless_uniform(shape, seed=tensorflow_seed(seed))


def _shifts(n: int, shift: Any, flip: Any = None) -> Any:
    """`[B, n, n]` matrices taking output position i from input position `i - shift` (or, where
    `flip`, from the mirrored position), zeros where that falls outside."""
    ops = keras.ops
    i = ops.arange(n, dtype="int32")[None, :, None]
    j = ops.arange(n, dtype="int32")[None, None, :]
    source = i - ops.reshape(shift, (-1, 1, 1))
    if flip is not None:
        source = ops.where(ops.reshape(flip, (-1, 1, 1)), n - 1 - i - ops.reshape(shift, (-1, 1, 1)), source)
    return ops.cast(ops.equal(j, source), "float32")


def _draw_shift(u: Any, strength: Any, n: int) -> Any:
    """A whole shift in `[-m, m]`, `m = floor(strength * n / 4)`, uniform, from `u` in [0, 1)."""
    ops = keras.ops
    most = ops.floor(strength * (n / 4))
    return ops.cast(ops.floor(u * (2 * most + 1)) - most, "int32")


def augment(inputs: Any, strength: Any, seed: Any) -> Any:
    """`Augment`'s training-mode transform of a batch, `strength` a float or a traced value,
    `seed` a seed state (one draw)."""
    ops = keras.ops
    batch = ops.shape(inputs)[0]
    u = uniform(seed, (batch, 3))
    if len(inputs.shape) == 4:
        _, h, w, _ = inputs.shape
        rows = _shifts(h, _draw_shift(u[:, 0], strength, h))
        cols = _shifts(w, _draw_shift(u[:, 1], strength, w), u[:, 2] < strength / 2)
        return ops.einsum("bij,bjlc,bkl->bikc", rows, inputs, cols)
    _, t, _ = inputs.shape
    moved = ops.einsum("bts,bsc->btc", _shifts(t, _draw_shift(u[:, 0], strength, t)), inputs)
    return moved * ops.reshape(1.0 + strength * (u[:, 1] - 0.5), (-1, 1, 1))


class Augment(keras.layers.Layer):
    """Augments images `[H, W, C]` or sequences `[T, C]` by `strength` in [0, 1], in training
    only (see the module's text).

    Args:
        strength: how much, in [0, 1]; 0 changes nothing.
        seed: the seed of its generator. Defaults to `None` (Keras's default seeding: under
            `keras.utils.set_random_seed`, the run's seed).

    Raises:
        ValueError: a strength outside [0, 1], or inputs that are neither images nor sequences.

    Example:
        >>> layer = Augment(0.5)
        >>> layer(keras.ops.ones((2, 8, 8, 1)), training=False).shape
        (2, 8, 8, 1)
    """

    def __init__(self, strength: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= strength <= 1:
            raise ValueError(f"Invalid value for `augment`: expected a strength in [0, 1]. "
                             f"Received: augment={strength}")
        self.strength, self.seed = float(strength), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        if len(input_shape) not in (3, 4):
            shape = list(input_shape[1:])
            raise ValueError(f"Invalid value for `augment`: it takes images [H, W, C] or sequences [T, C]; the "
                             f"samples are {shape}: give [data] a `shape`. Received: shape={shape}")

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training or self.strength == 0:
            return inputs
        strength = keras.ops.convert_to_tensor(self.strength, "float32")  # as the fused engine's traced value
        return augment(inputs, strength, self.seed_generator.next())

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"strength": self.strength, "seed": self.seed}
