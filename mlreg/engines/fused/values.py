"""A stack's initial values: the runs' freshly built models and optimizers stacked along a
leading axis, and each run's per-run constants (rates, decay, smoothing, bounds, layer values)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlreg.engines.fused.introspect import Built
    from mlreg.engines.fused.program import Program
    from mlreg.spec import RunSpec


def initial_state(program: Program, builts: Sequence[Built],
                  runs: Sequence[RunSpec]) -> tuple[dict, dict]:
    """The stacked values of the runs' models and optimizers, and their per-run constants."""
    from mlreg.models import make_optimizer

    ops = program.keras.ops
    template = program.template
    tv = [np.stack([b.trainable[i] for b in builts]) for i in range(len(template.trainable_variables))]
    ntv = [np.stack([b.non_trainable[i] for b in builts]) for i in range(len(program.kept))]
    dtype = next((s.dtype for b in builts for _, s in b.layers.values() if s is not None),
                 np.dtype("uint32" if program.keras.backend.backend() == "jax" else "int64"))
    seeds = [np.stack([b.layers[key][1] if b.layers.get(key, (0, None))[1] is not None
                       else np.zeros(2, dtype) for b in builts]) for key in program.keys]
    optimizers: dict[float, list[np.ndarray]] = {}
    for r in runs:
        lr = r.training.learning_rate
        if lr not in optimizers:
            opt = make_optimizer(program.optimizer_name, lr, weight_decay=0.0)
            opt.build(template.trainable_variables)
            optimizers[lr] = [np.asarray(v.numpy()) for v in opt.variables]
    ov = [np.stack([optimizers[r.training.learning_rate][i] for r in runs])
          for i in range(len(program.optimizer.variables))]
    rates = np.array([[b.regularized.get(i, (0.0, 0.0)) for i in program.regularized] for b in builts], "float32")
    rates = rates.reshape(len(builts), len(program.regularized), 2)
    consts = {
        "l1": rates[..., 0], "l2": rates[..., 1],
        "decay": np.array([[(r.training.weight_decay or 0.0) if r.training.decay_biases or len(v.shape) >= 2
                            else 0.0 for v in template.trainable_variables] for r in runs], "float32"),
        "smooth": np.array([_smoothing(r.training.label_smoothing, program.task, program.classes) for r in runs],
                           "float32"),
        "max_norm": np.array([[b.max_norm.get(i, (0.0, None))[0] for i in program.max_norm] for b in builts],
                             "float32").reshape(len(builts), len(program.max_norm)),
        "values": np.array([[b.layers.get(key, (0.0, None))[0] for key in program.keys] for b in builts],
                           "float32").reshape(len(builts), -1),
        "activity": np.array([[b.activity.get(i, (0.0, 0.0)) for i in program.activity] for b in builts],
                             "float32").reshape(len(builts), len(program.activity), 2),
    }
    convert = ops.convert_to_tensor
    state = {key: [convert(a) for a in arrays] for key, arrays in
             (("tv", tv), ("ntv", ntv), ("seeds", seeds), ("ov", ov))}
    return state, {k: convert(v) for k, v in consts.items()}


def _smoothing(ls: float, task: str, classes: float) -> tuple[float, float]:
    """`(1 - ls, ls / classes)` (binary: `ls / 2`), computed as Keras computes them from a Python
    float, before they become float32."""
    return 1.0 - ls, (0.5 * ls if task != "single_label" else ls / classes) if ls else 0.0
