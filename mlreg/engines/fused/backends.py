"""What differs between the backends, for the program: gradients, the compiled function, and
an optimizer that can apply its step statelessly."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlreg.engines.fused.conv import tracing

if TYPE_CHECKING:
    import keras


def stateless_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer, able to `stateless_apply` on either backend. Keras's TensorFlow optimizer
    refuses it (for `tf.distribute`, which mlreg does not use) and writes to its variables
    directly; the backend-independent methods of Keras's `BaseOptimizer` do it through
    Keras's variables, which a stateless scope intercepts."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from mlreg.keras_private import base_optimizer

        BaseOptimizer = base_optimizer()
        names = ("stateless_apply", "assign", "assign_add", "assign_sub", "_backend_update_step",
                 "_apply_weight_decay", "_var_key")
        cls = type(optimizer)
        optimizer.__class__ = type(f"Stateless{cls.__name__}", (cls,), {n: getattr(BaseOptimizer, n) for n in names})
    return optimizer


def value_and_grad(fn: Any) -> Any:
    """`fn(tv) -> (value, aux)` to `tv -> ((value, aux), gradients)` on the active backend."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.value_and_grad(fn, has_aux=True)

    import tensorflow as tf

    def value_and_grad(tv: list) -> tuple:
        with tf.GradientTape() as tape, _reads_after_assign():
            tape.watch(tv)
            value, aux = fn(tv)
        grads = tape.gradient(value, tv)
        return (value, aux), [tf.zeros_like(v) if g is None else g for g, v in zip(grads, tv, strict=True)]

    return value_and_grad


_TAPE = contextvars.ContextVar("mlreg_differentiating_on_tensorflow", default=False)
_INSTALL = threading.Lock()


@contextlib.contextmanager
def _reads_after_assign() -> Iterator[None]:
    """Inside (in this thread only), a value a layer assigns to its own variable in the forward
    pass (`self.mean.assign(...)`) is, when read back, a constant to the gradient, as in
    `model.fit` on TensorFlow, where the read is a variable's read; in the stateless call it
    would be the expression assigned, and gradients would flow through it (as they do in
    `model.fit` on JAX, which the fused engine follows there unchanged)."""
    import keras
    import tensorflow as tf

    with _INSTALL:
        if not getattr(keras.StatelessScope.add_update, "_mlreg_hook", False):
            add_update = keras.StatelessScope.add_update

            def hook(self: Any, update: tuple) -> Any:
                variable, value = update
                return add_update(self, (variable, tf.stop_gradient(value) if _TAPE.get() else value))

            hook._mlreg_hook = True  # type: ignore[attr-defined]
            keras.StatelessScope.add_update = hook
    token = _TAPE.set(True)
    try:
        yield
    finally:
        _TAPE.reset(token)


def compile_fn(fn: Any, xla: bool) -> Any:
    """`fn` compiled for the active backend, traced once per shape of its arguments (pack size,
    data size): `jax.jit`; on TensorFlow a `tf.function`, under XLA when `xla`. Measured on
    TensorFlow: the whole epoch under XLA ran 15 MNIST-1D CNNs in 25 s against 40 s as a plain
    graph, and sweep15 in 13 s against 16 s; but XLA's random draws are not TensorFlow's, so a
    pack that draws dropout masks runs as a plain graph, which draws exactly `model.fit`'s masks."""
    import keras

    def traced(*args: Any) -> Any:  # the body runs only while the backend traces it
        with tracing():
            return fn(*args)

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(traced)
    import tensorflow as tf

    return tf.function(traced, jit_compile=xla)

