"""`model.fit`'s batch order, per run: the permutation Keras draws under the run's seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlreg.engines.fused.introspect import Built
    from mlreg.spec import RunSpec


class Orders:
    """Each run's batch order, as `model.fit(shuffle=True)` draws it under the run's seed.

    Measured on Keras 3: on TensorFlow the array adapter draws one permutation per `fit` (two
    `tf.data` ops under the global seed) and repeats it every epoch; on JAX it draws a NumPy
    permutation per epoch from the global state, the first draw spent by `fit`'s symbolic
    build. A test checks both against what `model.fit` feeds its train step."""

    def __init__(self, builts: Sequence[Built], runs: Sequence[RunSpec], n: int) -> None:
        import keras

        self.n = n
        if keras.backend.backend() == "jax":
            self.states = []
            for b in builts:
                rs = np.random.RandomState()
                rs.set_state(b.order_state)
                rs.permutation(n)  # spent by fit's symbolic build
                self.states.append(rs)
            self.fixed = None
        else:
            self.fixed = np.stack([keras_batch_order(r.seed, n) for r in runs])

    def next(self) -> np.ndarray:
        if self.fixed is not None:
            return self.fixed
        return np.stack([rs.permutation(self.n) for rs in self.states]).astype("int32")

    def state(self, pos: int) -> Any:
        """What position `pos` needs to go on drawing where it stopped (`None` on TensorFlow,
        whose order is the same every epoch)."""
        return None if self.fixed is not None else self.states[pos].get_state()

    def restore(self, pos: int, state: Any) -> None:
        if state is not None:
            self.states[pos].set_state(state)

    def keep(self, where: np.ndarray) -> None:
        if self.fixed is not None:
            self.fixed = self.fixed[where]
        else:
            self.states = [self.states[i] for i in where]


def keras_batch_order(seed: int, n: int) -> np.ndarray:
    """The sample order of `model.fit(shuffle=True)` on `n` samples under
    `keras.utils.set_random_seed(seed)` on the TensorFlow backend: Keras 3's array data
    adapter draws it inside a `tf.data` map function, with the same two ops as here (so the
    same op seed under the same global seed), once per `fit`, repeated every epoch."""
    import tensorflow as tf

    tf.random.set_seed(seed)

    def permutation(_: tf.Tensor) -> tf.Tensor:
        return tf.random.shuffle(tf.range(n, dtype=tf.int64))

    return next(iter(tf.data.Dataset.range(1).map(permutation))).numpy().astype(np.int32)


