"""What per-run values a pack's program takes beyond its per-run layers (`Reach`), and the
per-run forms of what Keras would bake into a traced program as constants: an activity
regularizer's rates, a `MaxNorm` constraint's bound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlreg.engines.fused.introspect import Built
    from mlreg.spec import RunSpec


@dataclass(frozen=True)
class Reach:
    """What per-run values a program takes, beyond its per-run layers: the trainable variables
    (indices) some run puts an L1/L2 regularizer on (`regularized`) or a `MaxNorm` constraint on
    (`max_norm`: index -> axis), the layers (indices among those not per-run) some run puts an
    L1/L2 activity regularizer on, and whether some run decays its weights or smooths its
    labels. A program serves any pack whose reach lies within its own."""

    regularized: frozenset[int] = frozenset()
    activity: frozenset[int] = frozenset()
    max_norm: tuple[tuple[int, Any], ...] = ()
    decay: bool = False
    smoothing: bool = False

    @classmethod
    def of(cls, builts: Sequence[Built], runs: Sequence[RunSpec]) -> Reach:
        axes: dict[int, Any] = {}
        for b in builts:
            for i, (_, axis) in b.max_norm.items():
                if axes.setdefault(i, axis) != axis:
                    raise TypeError(f"the runs of this pack constrain variable {i} along different axes")
        return cls(frozenset().union(*(b.regularized for b in builts)),
                   frozenset().union(*(b.activity for b in builts)), tuple(sorted(axes.items(), key=lambda kv: kv[0])),
                   any(r.training.weight_decay for r in runs), any(r.training.label_smoothing for r in runs))

    def within(self, other: Reach) -> bool:
        return (self.regularized <= other.regularized and self.activity <= other.activity
                and set(self.max_norm) <= set(other.max_norm) and other.decay >= self.decay
                and other.smoothing >= self.smoothing)

    def union(self, other: Reach) -> Reach:
        return Reach(self.regularized | other.regularized, self.activity | other.activity,
                     tuple(sorted(dict(self.max_norm + other.max_norm).items(), key=lambda kv: kv[0])),
                     self.decay or other.decay, self.smoothing or other.smoothing)


def max_norm(w: Any, most: Any, axis: Any) -> Any:
    """Keras's `MaxNorm(most, axis)` of `w`, with `most` a traced value."""
    import keras

    ops = keras.ops
    norms = ops.sqrt(ops.sum(ops.square(w), axis=axis, keepdims=True))
    return ops.cast(w, norms.dtype) * (ops.clip(norms, 0, most) / (keras.config.epsilon() + norms))


class PerRunActivity:
    """An L1/L2 activity regularizer whose rates are the run's, set while the program is traced:
    `l1 * sum|x| + l2 * sum x^2`, as Keras's `L1`, `L2` and `L1L2` compute it."""

    rates: Any = None

    def __call__(self, x: Any) -> Any:
        import keras

        ops = keras.ops
        if self.rates is None:  # outside the program (a call to measure the model)
            return ops.zeros(())
        return self.rates[0] * ops.sum(ops.abs(x)) + self.rates[1] * ops.sum(ops.square(x))
