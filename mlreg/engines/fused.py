"""The `fused` engine: K runs of any Keras model trained at once, in one compiled program.

For the small models of regularization sweeps, the time of `model.fit` goes to per-step
overhead, not to arithmetic. This engine builds each run's model with its builder under its
seed (so it starts from exactly the weights the keras engine starts from), keeps one of them as
the *template*, stacks the values of all K models along a leading axis and maps one training
step over that axis with `keras.ops.vectorized_map` (`jax.vmap` on JAX, `tf.vectorized_map` on
TensorFlow). The step calls Keras's own layers and optimizer without touching their variables
(`model.stateless_call`, `optimizer.stateless_apply`), so any model a builder returns trains
here: Sequential or Functional, Dense, convolutions, Dropout, BatchNormalization, Embedding,
frozen layers. One compiled call per epoch trains every run of the pack and measures the
honest columns of all of them.

What a run keeps of its own inside a pack (nothing couples runs: each run's loss, gradient and
optimizer update are its own, and there is no clipping across the stack):
- its initial weights, BatchNorm statistics and dropout seed state: its own model's;
- its batch order: the one `model.fit` uses under its seed on this backend (measured; a test
  checks it);
- its learning rate: the value of its own optimizer's learning-rate variable;
- its L1/L2 rates, per variable, read from its model's regularizers. A regularizer's factor is
  a Python constant in a traced program, so the engine computes the penalty itself from the
  regularized weights with each run's rates (`l1 * sum|w| + l2 * sum w^2`, as Keras does);
  losses a model adds itself (other regularizers, `add_loss`) are kept as they are;
- its dropout rate, per Dropout layer, read from its model: the template's Dropout layers draw
  with the run's rate as a value, from the run's own seed state, through Keras's own dropout
  op (so the masks are those `model.fit` draws). A run whose model lacks a Dropout layer the
  template has (dropout 0 in the built-in builders) gets rate 0 there, which passes values
  through unchanged;
- early stopping (on or off, patience, min_delta), by Keras's rules (`StopRule`).

A run that stops or diverges is recorded at once, with the weights of the epoch it kept; its
slice of the stack is then ignored, and when half of the stack has ended the stack is compacted
to the runs still training (padded to a power of two, so that few program sizes compile).

A pack holds runs that share the data, the model apart from those per-run values, the batch
size, the number of epochs, the optimizer and what early stopping monitors (`pack_key`); runs
whose built models still differ in structure are trained as separate groups.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.records import RunResult, diverged_at, failed, finish, metric_names, monitor_mode
from mlreg.signals import STOP

if TYPE_CHECKING:
    import keras

    from mlreg.data import Dataset
    from mlreg.spec import RunSpec

NAME = "fused"

MAX_PACK = 64
"""Runs trained in one program at most (`benchmarks/bench_engines.py` measures throughput by
pack size: it stops growing before this while memory keeps growing)."""

MIN_STACK = 8
"""Stacks are not compacted below this many positions: a smaller stack saves little time per
epoch (per-step overhead dominates there), and each new size costs a compilation (about 1.5 s
for the 2x128 MLP on this machine, measured with `jax_log_compiles`)."""

EVAL_ELEMENTS = 1 << 22
"""The evaluation passes work in chunks of samples whose activations stay below this many
floats per layer (16 MB), whatever the pack and data size."""

PER_RUN = ("l1", "l2", "dropout", "learning_rate", "early_stopping", "patience", "min_delta")
"""Parameters that may differ between the runs of one pack."""


def why_not_model(model: keras.Model) -> str | None:
    """Why a built model cannot be trained here (a short reason), or `None` when it can: a
    model that trains itself (its own `train_step` or `compute_loss`) must go through `fit`."""
    import keras

    for method in ("train_step", "compute_loss", "test_step"):
        if getattr(type(model), method) is not getattr(keras.Model, method):
            return f"a model with its own {method}"
    return None


def pack_key(run: RunSpec) -> str:
    """Runs with the same key can share a program: the same data, model (apart from the
    per-run values), batch size, epochs, optimizer and early-stopping monitor."""
    m, t, es = run.model, run.training, run.early_stopping
    model = {k: v for k, v in m.model_dump(mode="json").items() if k not in PER_RUN}
    return json.dumps([run.data_key, model, t.batch_size, t.epochs, t.optimizer, es.monitor,
                       es.restore_best_weights], sort_keys=True)


def pack(runs: Sequence[RunSpec], max_pack: int = MAX_PACK) -> list[list[RunSpec]]:
    """Groups fusable runs by `pack_key` (in plan order) into packs of at most `max_pack`
    runs, each a power of two where that wastes little (see `pack_sizes`)."""
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(pack_key(run), []).append(run)
    packs = []
    for group in groups.values():
        start = 0
        for size in pack_sizes(len(group), max_pack):
            packs.append(group[start:start + size])
            start += size
    return packs


def pack_sizes(n: int, max_pack: int = MAX_PACK) -> list[int]:
    """How `n` runs are cut into packs: as many `max_pack` as fit, the rest in powers of two
    (72 -> 64 + 8), or in one pack when it fills at least 3/4 of the next power (60, 12). A
    stack's size is its program's shape: sizes that repeat (here, and in compaction, and
    across the rounds of a search) compile once."""
    sizes = [max_pack] * (n // max_pack)
    rest = n % max_pack
    while rest:
        size = rest if stack_size(rest) > rest or rest & (rest - 1) == 0 else 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def stack_size(n: int) -> int:
    """The positions a stack of `n` runs has: the next power of two when `n` fills at least
    3/4 of it (the rest are padding that never trains), else `n`."""
    up = 1 << max(n - 1, 0).bit_length()
    return up if n * 4 >= up * 3 else n


# -- early stopping, vectorised ------------------------------------------------------------
class StopRule:
    """Keras's `EarlyStopping` rules for K runs at once (numpy, no Keras).

    Per run, at each epoch's end: `wait` is incremented first; an improvement is
    `current + min_delta < best` (mode `min`; `current - min_delta > best` for `max`), and the
    first epoch always improves; an improvement resets `wait` and makes the epoch's weights
    the best; otherwise the run stops when `wait >= patience` and `epoch > 0`. A run with early
    stopping off never stops.

    Args:
        patience: one value per run.
        min_delta: one value per run (its absolute value counts).
        enabled: one value per run.
        mode: `"min"` or `"max"`. Defaults to `"min"`.
    """

    def __init__(self, patience: Sequence[int], min_delta: Sequence[float], enabled: Sequence[bool],
                 mode: str = "min") -> None:
        self.patience = np.asarray(patience, dtype=np.int64)
        self.min_delta = np.abs(np.asarray(min_delta, dtype=np.float64))
        self.enabled = np.asarray(enabled, dtype=bool)
        self.sign = 1.0 if mode == "min" else -1.0
        k = len(self.patience)
        self.best = np.full(k, np.nan)
        self.seen = np.zeros(k, dtype=bool)
        self.best_epoch = np.zeros(k, dtype=np.int64)
        self.wait = np.zeros(k, dtype=np.int64)

    def update(self, epoch: int | Sequence[int], current: Sequence[float],
               which: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Takes epoch `epoch` (0-based; one for all, or one per run) of the runs `which`
        (indices); returns, for those runs, whether each improved (its weights become the best)
        and whether each stops now."""
        which = np.asarray(which, dtype=np.int64)
        epoch = np.broadcast_to(np.asarray(epoch, dtype=np.int64), which.shape)
        current = np.asarray(current, dtype=np.float64)
        s = self.sign
        self.wait[which] += 1
        with np.errstate(invalid="ignore"):  # Keras compares in float32, after the subtraction in float64
            shifted = (current + s * self.min_delta[which]).astype(np.float32)
            improved = ~self.seen[which] | (s * shifted < s * self.best[which].astype(np.float32))
        idx = which[improved]
        self.best[idx], self.best_epoch[idx] = current[improved], epoch[improved]
        self.wait[idx], self.seen[idx] = 0, True
        stop = ~improved & (self.wait[which] >= self.patience[which]) & (epoch > 0) & self.enabled[which]
        return improved, stop


# -- what each run's own model says ----------------------------------------------------------
@dataclass
class _Built:
    """What the engine keeps of one run's freshly built model."""

    trainable: list[np.ndarray]
    non_trainable: dict[str, np.ndarray]  # by variable path
    regularized: dict[int, tuple[float, float]]  # trainable index -> (l1, l2) of its L1/L2/L1L2 regularizer
    dropout: dict[str, float]  # Dropout layer name -> rate
    signature: str  # the model apart from the per-run values
    n_params: int
    order_state: Any  # the global NumPy random state right after the build (JAX's batch order)


def _dropout_layers(model: keras.Model) -> list[Any]:
    """The model's Dropout layers whose rate can be a per-run value (Keras's own `call`)."""
    import keras

    return [layer for layer in _all_layers(model)
            if isinstance(layer, keras.layers.Dropout) and _call_of(type(layer)) is keras.layers.Dropout.call]


def _call_of(cls: type) -> Any:
    return getattr(cls, "_mlreg_call", cls.call)


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out += _all_layers(layer)
    return out


_STRIPPED = {"name", "kernel_regularizer", "bias_regularizer", "activity_regularizer", "seed", "rate"}


def _signature(model: keras.Model, regularized: dict[int, tuple[float, float]]) -> str:
    """The structure of a model apart from the per-run values: its class, every layer but the
    per-run Dropout layers with its configuration (no names, regularizers or seeds), and the
    shape of every variable."""
    per_run = set(map(id, _dropout_layers(model)))

    def plain(config: Any) -> Any:
        if isinstance(config, dict):
            return {k: plain(v) for k, v in config.items() if k not in _STRIPPED}
        return [plain(v) for v in config] if isinstance(config, list | tuple) else config

    from mlreg.backend import without_tensorflow

    with without_tensorflow():
        layers = [[type(layer).__name__, plain(layer.get_config())] for layer in _all_layers(model)
                  if id(layer) not in per_run]
    variables = [[list(v.shape), str(v.dtype), v.trainable] for v in model.variables if "seed_generator" not in v.path]
    custom = [str(v.regularizer.get_config()) for i, v in enumerate(model.trainable_variables)
              if v.regularizer is not None and i not in regularized]
    return json.dumps([type(model).__name__, layers, variables, custom], default=str)


def _build(run: RunSpec, data: Dataset) -> tuple[keras.Model, _Built]:
    """Builds a run's model exactly as the keras engine does, and reads what is its own."""
    import keras

    from mlreg.backend import seeded
    from mlreg.models import build_model

    keras.backend.clear_session(free_memory=False)
    with seeded(run.seed):
        model = build_model(run, data)
    order_state = np.random.get_state()
    regularized = {}
    for i, v in enumerate(model.trainable_variables):
        if isinstance(v.regularizer, keras.regularizers.L1 | keras.regularizers.L2 | keras.regularizers.L1L2):
            config = v.regularizer.get_config()
            regularized[i] = (float(config.get("l1", 0.0)), float(config.get("l2", 0.0)))
    built = _Built(
        trainable=[np.array(v.numpy(), copy=True) for v in model.trainable_variables],
        non_trainable={v.path: np.array(v.numpy(), copy=True) for v in model.non_trainable_variables},
        regularized=regularized,
        dropout={layer.name: float(layer.rate) for layer in _dropout_layers(model)},
        signature=_signature(model, regularized),
        n_params=int(model.count_params()),
        order_state=order_state,
    )
    return model, built


# -- the template: the pack's model, made to take per-run values ------------------------------------
def _per_run_dropout(cls: type) -> type:
    """A subclass of a Dropout class whose rate is the value set in `_mlreg_rate` while the
    pack's program is traced (the run's own, mapped over the stack), through Keras's own op."""
    if cls.__name__.startswith("PerRun"):
        return cls

    def call(self: Any, inputs: Any, training: bool = False) -> Any:
        return _dropout(inputs, self._mlreg_rate, self.noise_shape, self.seed_generator) if training else inputs

    return type(f"PerRun{cls.__name__}", (cls,), {"call": call, "_mlreg_call": cls.call})


def _stateless(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer, able to `stateless_apply` on either backend. Keras's TensorFlow optimizer
    refuses it (for `tf.distribute`, which mlreg does not use) and writes to its variables
    directly; the backend-independent methods of Keras's `BaseOptimizer` do it through
    Keras's variables, which a stateless scope intercepts."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from keras.src.optimizers.base_optimizer import BaseOptimizer

        names = ("stateless_apply", "assign", "assign_add", "assign_sub", "_backend_update_step",
                 "_apply_weight_decay", "_var_key")
        cls = type(optimizer)
        optimizer.__class__ = type(f"Stateless{cls.__name__}", (cls,), {n: getattr(BaseOptimizer, n) for n in names})
    return optimizer


class _Program:
    """The compiled functions of one template model: a training epoch and an evaluation
    pass, for stacks of any size (each size is traced once)."""

    def __init__(self, template: keras.Model, regularized: list[int], runs: Sequence[RunSpec], data: Dataset,
                 xla: bool) -> None:
        import keras

        from mlreg.models import make_optimizer

        self.keras = keras
        self.template = template
        self.task = data.task
        self.batch_size = runs[0].training.batch_size
        self.dropouts = _dropout_layers(template)
        for layer in self.dropouts:
            layer.__class__ = _per_run_dropout(type(layer))
        self.regularized = regularized
        for i in self.regularized:
            template.trainable_variables[i].regularizer = None  # the engine adds its penalty, per run
        self.kernels = _kernel_index(template)
        self.optimizer_name = runs[0].training.optimizer
        self.optimizer = _stateless(make_optimizer(self.optimizer_name, 1e-3))
        self.optimizer.build(template.trainable_variables)
        self.chunk = _chunk(template)
        self.loss = _per_sample_loss(data.task)
        self.metric = _per_sample_metric(data.task)
        self.epoch = _compile(self._epoch, xla)
        self.evaluate = _compile(self._evaluate, xla)

    # -- one run (mapped over the stack) -----------------------------------------------------------
    def _forward(self, tv: list, ntv: list, x: Any, training: bool, drop: Any = None) -> tuple[Any, list, Any]:
        for i, layer in enumerate(self.dropouts):  # plain attributes, not tracked by Keras
            object.__setattr__(layer, "_mlreg_rate", None if drop is None else drop[i])
        try:
            if training:
                return self.template.stateless_call(tv, ntv, x, training=True, return_losses=True)
            y_pred, ntv = self.template.stateless_call(tv, ntv, x, training=False)
            return y_pred, ntv, []
        finally:
            for layer in self.dropouts:
                object.__setattr__(layer, "_mlreg_rate", None)

    def _penalty(self, tv: list, l1: Any, l2: Any) -> Any:
        """`sum l1 * |w| + l2 * w^2` over the regularized variables, with the run's rates."""
        ops = self.keras.ops
        total = ops.zeros(())
        for j, i in enumerate(self.regularized):
            w = tv[i]
            total = total + l1[j] * ops.sum(ops.abs(w)) + l2[j] * ops.sum(ops.square(w))
        return total

    def _step(self, args: tuple) -> tuple:
        """One optimizer step of one run on its batch."""
        ops = self.keras.ops
        tv, ntv, ov, l1, l2, drop, x, y = args

        def objective(tv: list) -> tuple:
            y_pred, new_ntv, losses = self._forward(tv, ntv, x, True, drop)
            total = ops.mean(self.loss(y, y_pred)) + self._penalty(tv, l1, l2)
            for extra in losses:  # what the model adds itself
                total = total + extra
            return total, (new_ntv, ops.sum(self.metric(y, y_pred)))

        (total, (new_ntv, hits)), grads = _value_and_grad(objective)(tv)
        new_tv, new_ov = self.optimizer.stateless_apply(ov, grads, tv)
        return new_tv, new_ntv, new_ov, total, hits

    # -- the pack ----------------------------------------------------------------------------------
    def _epoch(self, state: dict, consts: dict, order: Any, x: Any, y: Any, x_val: Any, y_val: Any) -> tuple:
        """Trains every run of the stack for one epoch, then measures each. Returns the new
        state and a dict of `[K]` values: the running `loss` and `metric` (Dropout on, as Keras
        reports them), the data loss and metric on the training and validation sets in
        inference mode (`train_*`, `val_*`), the penalty and the weight statistics."""
        ops = self.keras.ops
        k, n = order.shape[0], order.shape[1]
        bs = self.batch_size

        def batch(carry: tuple, idx: Any) -> tuple:
            tv, ntv, ov, loss_sum, hit_sum = carry
            xb, yb = ops.take(x, idx, axis=0), ops.take(y, idx, axis=0)
            tv, ntv, ov, total, hits = ops.vectorized_map(
                self._step, (tv, ntv, ov, consts["l1"], consts["l2"], consts["drop"], xb, yb))
            size = ops.cast(idx.shape[1], "float32")
            return tv, ntv, ov, loss_sum + total * size, hit_sum + hits

        carry = (state["tv"], state["ntv"], state["ov"], ops.zeros((k,)), ops.zeros((k,)))
        full = n // bs
        if full:
            carry = ops.fori_loop(0, full, lambda i, c: batch(c, ops.slice(order, (0, i * bs), (k, bs))), carry)
        if n % bs:
            carry = batch(carry, order[:, full * bs:])
        tv, ntv, ov, loss_sum, hit_sum = carry
        new = {"tv": tv, "ntv": ntv, "ov": ov}
        values = {"loss": loss_sum / n, "metric": hit_sum / n}
        values |= {f"train_{name}": v for name, v in self._evaluate(new, x, y).items()}
        values |= {f"val_{name}": v for name, v in self._evaluate(new, x_val, y_val).items()}
        return new, values | self._weights(new, consts)

    def _evaluate(self, state: dict, x: Any, y: Any) -> dict:
        """Per run, over a whole data set in inference mode, `chunk` samples at a time: the
        mean data loss and metric."""
        ops = self.keras.ops
        n = x.shape[0]
        chunk = min(self.chunk, n)
        k = state["tv"][0].shape[0]

        def part(carry: tuple, xc: Any, yc: Any) -> tuple:
            def one(args: tuple) -> tuple:
                tv, ntv = args
                y_pred = self._forward(tv, ntv, xc, False)[0]
                return ops.sum(self.loss(yc, y_pred)), ops.sum(self.metric(yc, y_pred))

            loss, hits = ops.vectorized_map(one, (state["tv"], state["ntv"]))
            return carry[0] + loss, carry[1] + hits

        carry = (ops.zeros((k,)), ops.zeros((k,)))
        full = n // chunk
        carry = ops.fori_loop(0, full, lambda i, c: part(c, ops.slice(x, (i * chunk,) + (0,) * (len(x.shape) - 1),
                                                                      (chunk,) + tuple(x.shape[1:])),
                                                        ops.slice(y, (i * chunk,) + (0,) * (len(y.shape) - 1),
                                                                  (chunk,) + tuple(y.shape[1:]))), carry)
        if n % chunk:
            carry = part(carry, x[full * chunk:], y[full * chunk:])
        return {"data_loss": carry[0] / n, "metric": carry[1] / n}

    def _weights(self, state: dict, consts: dict) -> dict:
        """Per run: the penalty and the weight statistics over every kernel."""
        ops = self.keras.ops

        def weights(args: tuple) -> tuple:
            tv, ntv, l1, l2 = args
            penalty = self._penalty(tv, l1, l2) + self._custom_penalty(tv)
            ws = [ops.reshape((tv if trainable else ntv)[i], (-1,)) for trainable, i in self.kernels.values()]
            w = ops.concatenate(ws) if ws else ops.zeros((0,))
            return (penalty, ops.sum(ops.abs(w)), ops.sum(ops.square(w)),
                    ops.mean(ops.cast(ops.abs(w) < SPARSE_BELOW, "float32")) if ws else ops.zeros(()))

        penalty, l1_sum, l2_sum, sparsity = ops.vectorized_map(
            weights, (state["tv"], state["ntv"], consts["l1"], consts["l2"]))
        return {"penalty": penalty, "weight_l1": l1_sum, "weight_l2": l2_sum, "sparsity": sparsity}

    def _custom_penalty(self, tv: list) -> Any:
        """What the regularizers the engine does not take over (not L1/L2) add, at these weights."""
        total = self.keras.ops.zeros(())
        for v, value in zip(self.template.trainable_variables, tv, strict=True):
            if v.regularizer is not None:
                total = total + v.regularizer(value)
        return total

    # -- a stack's initial state ---------------------------------------------------------------------
    def initial_state(self, builts: Sequence[_Built], runs: Sequence[RunSpec]) -> tuple[dict, dict]:
        """The stacked values of the runs' models and optimizers, and their per-run constants."""
        from mlreg.models import make_optimizer

        ops = self.keras.ops
        template = self.template
        tv = [np.stack([b.trainable[i] for b in builts]) for i in range(len(template.trainable_variables))]
        ntv = [np.stack([b.non_trainable.get(v.path, np.asarray(v.numpy())) for b in builts])
               for v in template.non_trainable_variables]
        optimizers: dict[float, list[np.ndarray]] = {}
        for r in runs:
            lr = r.training.learning_rate
            if lr not in optimizers:
                opt = make_optimizer(self.optimizer_name, lr)
                opt.build(template.trainable_variables)
                optimizers[lr] = [np.asarray(v.numpy()) for v in opt.variables]
        ov = [np.stack([optimizers[r.training.learning_rate][i] for r in runs])
              for i in range(len(self.optimizer.variables))]
        rates = np.array([[b.regularized.get(i, (0.0, 0.0)) for i in self.regularized] for b in builts], "float32")
        rates = rates.reshape(len(builts), len(self.regularized), 2)
        consts = {
            "l1": rates[..., 0], "l2": rates[..., 1],
            "drop": np.array([[b.dropout.get(layer.name, 0.0) for layer in self.dropouts] for b in builts],
                             "float32").reshape(len(builts), -1),
        }
        convert = ops.convert_to_tensor
        state = {"tv": [convert(a) for a in tv], "ntv": [convert(a) for a in ntv], "ov": [convert(a) for a in ov]}
        return state, {k: convert(v) for k, v in consts.items()}


SPARSE_BELOW = 1e-3  # as records.SPARSE_BELOW, a constant of the traced program


def _kernel_index(model: keras.Model) -> dict[str, tuple[bool, int]]:
    """Each kernel layer's name -> (trainable, index of its kernel among the model's trainable
    or non-trainable variables), in `kernel_layers`' order."""
    from mlreg.regularizers import kernel_layers

    trainable = {id(v): i for i, v in enumerate(model.trainable_variables)}
    frozen = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    out = {}
    for layer in kernel_layers(model):
        key = id(layer.kernel)
        out[layer.name] = (True, trainable[key]) if key in trainable else (False, frozen[key])
    return out


def _chunk(model: keras.Model) -> int:
    """Samples per evaluation chunk: the widest layer output stays below `EVAL_ELEMENTS` floats
    for a pack of 64."""
    widest = 1
    for layer in _all_layers(model):
        try:
            shapes = layer.output.shape if not isinstance(layer.output, list) else layer.output[0].shape
            widest = max(widest, math.prod(d for d in shapes[1:] if d))
        except (AttributeError, ValueError, TypeError):
            continue
    return 1 << max(4, int(math.log2(max(EVAL_ELEMENTS // (widest * MAX_PACK), 1))))


def _per_sample_loss(task: str) -> Any:
    import keras

    return {"single_label": keras.losses.sparse_categorical_crossentropy,
            "binary": keras.losses.binary_crossentropy, "multi_label": keras.losses.binary_crossentropy,
            "regression": keras.losses.mean_squared_error}[task]


def _per_sample_metric(task: str) -> Any:
    import keras

    ops = keras.ops
    if task == "single_label":
        return lambda y, p: ops.cast(ops.equal(ops.cast(ops.reshape(y, (-1,)), "int32"),
                                               ops.cast(ops.argmax(p, -1), "int32")), "float32")
    if task == "regression":
        return lambda y, p: ops.mean(ops.abs(y - p), -1)
    return lambda y, p: ops.mean(ops.cast(ops.equal(y, ops.cast(p > 0.5, y.dtype)), "float32"), -1)


# -- the backends ---------------------------------------------------------------------------------------
def _value_and_grad(fn: Any) -> Any:
    """`fn(tv) -> (value, aux)` to `tv -> ((value, aux), gradients)` on the active backend."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.value_and_grad(fn, has_aux=True)

    import tensorflow as tf

    def value_and_grad(tv: list) -> tuple:
        with tf.GradientTape() as tape:
            tape.watch(tv)
            value, aux = fn(tv)
        grads = tape.gradient(value, tv)
        return (value, aux), [tf.zeros_like(v) if g is None else g for g, v in zip(grads, tv, strict=True)]

    return value_and_grad


@contextlib.contextmanager
def _convolutions_as_matmuls() -> Iterator[None]:
    """While the pack's program is traced, Keras's convolution op of the active backend works as
    shifted slices of the input times the kernel as a matrix (`_conv`): the same convolution,
    summed in another order. Mapped over a stack of runs, a convolution with a kernel per run
    becomes a grouped convolution, which XLA runs slowly on CPU (measured: 3.9 s an epoch of 15
    MNIST-1D CNNs in a rolled loop, 0.45 s this way); slices and a batched matrix product map
    well."""
    from keras.src import backend

    original = backend.nn.conv

    def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: Any = None,
             dilation_rate: Any = 1) -> Any:
        if (backend.standardize_data_format(data_format) != "channels_last" or padding not in ("valid", "same")
                or kernel.shape[-2] != inputs.shape[-1]):
            return original(inputs, kernel, strides, padding, data_format, dilation_rate)
        return _conv(inputs, kernel, strides, padding, dilation_rate)

    backend.nn.conv = conv
    try:
        yield
    finally:
        backend.nn.conv = original


def _conv(inputs: Any, kernel: Any, strides: Any, padding: str, dilation_rate: Any) -> Any:
    """A channels-last convolution (1-, 2- or 3-D, no groups) as a matrix product: each window
    position's slice of the (padded) input, side by side, times the kernel as a
    `[window x in, out]` matrix. Padding `same` pads as XLA and TensorFlow do (the extra one
    after)."""
    import keras

    ops = keras.ops
    kernel, inputs = ops.convert_to_tensor(kernel), ops.convert_to_tensor(inputs)
    window = tuple(kernel.shape[:-2])
    nd = len(window)
    strides = (strides,) * nd if isinstance(strides, int) else tuple(strides)
    dilation = (dilation_rate,) * nd if isinstance(dilation_rate, int) else tuple(dilation_rate)
    size = tuple(inputs.shape[1:-1])
    if padding == "same":
        out = tuple(-(-n // s) for n, s in zip(size, strides, strict=True))
        total = [max((o - 1) * s + (w - 1) * d + 1 - n, 0)
                 for o, s, w, d, n in zip(out, strides, window, dilation, size, strict=True)]
        inputs = ops.pad(inputs, [(0, 0), *((t // 2, t - t // 2) for t in total), (0, 0)])
    else:
        out = tuple((n - (w - 1) * d - 1) // s + 1 for n, w, d, s in zip(size, window, dilation, strides, strict=True))
    columns = []
    for offset in itertools.product(*(range(w) for w in window)):
        index = tuple(slice(o * d, o * d + (m - 1) * s + 1, s)
                      for o, d, m, s in zip(offset, dilation, out, strides, strict=True))
        columns.append(inputs[(slice(None), *index, slice(None))])
    patches = ops.concatenate(columns, axis=-1) if len(columns) > 1 else columns[0]
    return ops.matmul(patches, ops.reshape(kernel, (-1, kernel.shape[-1])))


def _dropout(inputs: Any, rate: Any, noise_shape: Any, seed: Any) -> Any:
    """Keras's dropout op of the active backend (`keras.src.backend.<name>.random.dropout`),
    with the rate a traced value: the same draws from the same seed state, without the Python
    tests of the rate that a traced value cannot answer (a rate of 0 keeps every value)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax
        from keras.src.backend.jax import random

        keep = 1.0 - rate
        mask = jax.random.bernoulli(random.jax_draw_seed(seed), p=keep,
                                    shape=random._get_concrete_noise_shape(inputs, noise_shape))
        return jax.lax.select(jax.numpy.broadcast_to(mask, inputs.shape), inputs / keep, jax.numpy.zeros_like(inputs))
    import tensorflow as tf
    from keras.src.backend.tensorflow import random

    return tf.nn.experimental.stateless_dropout(inputs, rate=rate,
                                                noise_shape=random._get_concrete_noise_shape(inputs, noise_shape),
                                                seed=random._cast_seed(random.draw_seed(seed)))


def _compile(fn: Any, xla: bool) -> Any:
    """`fn` compiled for the active backend, traced once per shape of its arguments (pack size,
    data size): `jax.jit`; on TensorFlow a `tf.function`, under XLA when `xla`. Measured on
    TensorFlow: the whole epoch under XLA ran 15 MNIST-1D CNNs in 25 s against 40 s as a plain
    graph, and sweep15 in 13 s against 16 s; but XLA's random draws are not TensorFlow's, so a
    pack that draws dropout masks runs as a plain graph, which draws exactly `model.fit`'s masks."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    import tensorflow as tf

    return tf.function(fn, jit_compile=xla)


def _select(mask: np.ndarray, new: Any, old: Any) -> Any:
    """`new` where `mask` (one flag per run) is true, `old` elsewhere, in every array of a tree."""
    import keras

    return _tree_op("select")(keras.ops.convert_to_tensor(mask), new, old)


def _take(tree: dict, where: np.ndarray) -> dict:
    """The runs at positions `where` of every stacked array of a tree."""
    import keras

    return _tree_op("take")(tree, keras.ops.convert_to_tensor(where.astype("int32")))


@functools.cache
def _tree_op(name: str) -> Any:
    """`select` or `take` over a whole tree of stacked arrays: one compiled program per tree
    and size on JAX (op by op, each array's shape would compile its own), plain ops elsewhere."""
    import keras

    ops = keras.ops

    def select(m: Any, new: dict, old: dict) -> dict:
        def pick(a: Any, b: Any) -> Any:
            return ops.where(ops.reshape(m, (-1,) + (1,) * (len(a.shape) - 1)), a, b)

        return {key: [pick(a, b) for a, b in zip(new[key], old[key], strict=True)] for key in new}

    def take(tree: dict, idx: Any) -> dict:
        return {key: [ops.take(a, idx, axis=0) for a in arrays] if isinstance(arrays, list)
                else ops.take(arrays, idx, axis=0) for key, arrays in tree.items()}

    fn = {"select": select, "take": take}[name]
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


# -- batch order --------------------------------------------------------------------------------------
class _Orders:
    """Each run's batch order, as `model.fit(shuffle=True)` draws it under the run's seed.

    Measured on Keras 3: on TensorFlow the array adapter draws one permutation per `fit` (two
    `tf.data` ops under the global seed) and repeats it every epoch; on JAX it draws a NumPy
    permutation per epoch from the global state, the first draw spent by `fit`'s symbolic
    build. A test checks both against what `model.fit` feeds its train step."""

    def __init__(self, builts: Sequence[_Built], runs: Sequence[RunSpec], n: int) -> None:
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


# -- a pack, start to end ----------------------------------------------------------------------------------
_PROGRAMS: dict[str, tuple[_Program, Any]] = {}
"""Programs by the template's signature and the pack's settings, so that the packs of one
sweep trace once (the template model is kept with its program)."""


def train_pack(runs: Sequence[RunSpec], data: Dataset, *, until: int | None = None,
               resume: dict[str, dict] | None = None) -> Iterator[RunResult]:
    """Trains the runs of a pack, yielding each run's record as soon as it ends (early
    stopping, divergence, or the last epoch). If the pack itself fails, its unfinished runs
    are `failed` with the message.

    Args:
        runs: the pack.
        data: its data.
        until: pause the runs still training after this many epochs: each is yielded with
            status `paused`, its record so far and its `state` (what `resume` takes). Defaults
            to `None`: train to the end.
        resume: paused states by run id: those runs go on from where they paused (their
            models are built again, then take their values). Defaults to `None`.
    """
    from mlreg.backend import import_keras

    keras = import_keras()
    t0 = time.perf_counter()
    done: set[str] = set()
    try:
        built: dict[int, tuple[Any, _Built]] = {}
        for j, run in enumerate(runs):  # a run whose model cannot be built fails alone
            t1 = time.perf_counter()
            try:
                built[j] = _build(run, data)
            except Exception as e:  # noqa: BLE001 - the user's builder: a failed run, the pack goes on
                done.add(run.run_id)
                yield failed(run, e, engine=NAME, backend=keras.backend.backend(), duration_s=time.perf_counter() - t1)
        groups: dict[str, list[int]] = {}
        for j, (_, b) in built.items():
            groups.setdefault(b.signature, []).append(j)
        for members in groups.values():
            for result in _train([runs[j] for j in members], [built[j] for j in members], data, t0, until,
                                 resume or {}):
                done.add(result.run_id)
                yield result
    except Exception as e:  # noqa: BLE001 - a failed pack fails its runs, the sweep goes on
        share = (time.perf_counter() - t0) / max(len(runs) - len(done), 1)
        for run in runs:
            if run.run_id not in done:
                yield failed(run, e, engine=NAME, backend=keras.backend.backend(), duration_s=share)


def _template(runs: Sequence[RunSpec], built: Sequence[tuple[Any, _Built]], data: Dataset) -> _Program:
    """The program for these runs, cached by the model's signature and the pack's settings: a
    cached program serves any pack whose Dropout layers and regularized variables it has (a
    run without them gets rate 0 there), so the rounds of a search and the packs of a sweep
    compile each stack size once. A new template is the model with the most Dropout layers."""
    first = runs[0]
    regularized = set().union(*(b.regularized for _, b in built))
    names = {n for _, b in built for n in b.dropout}
    xla = not any(rate > 0 for _, b in built for rate in b.dropout.values())  # see _compile
    key = json.dumps([built[0][1].signature, data.task, first.training.batch_size, first.training.optimizer, xla])
    cached = _PROGRAMS.get(key)
    if cached is not None and names <= {layer.name for layer in cached[0].dropouts} \
            and regularized <= set(cached[0].regularized):
        return cached[0]
    if len(_PROGRAMS) >= 8:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    model = max(built, key=lambda mb: len(mb[1].dropout))[0]
    if cached is not None:  # grow the cached program's reach rather than keep two
        regularized |= set(cached[0].regularized)
    _PROGRAMS[key] = (_Program(model, sorted(regularized), runs, data, xla), model)
    return _PROGRAMS[key][0]


def _train(runs: list[RunSpec], built: list[tuple[Any, _Built]], data: Dataset, t_start: float,
           until: int | None, resume: dict[str, dict]) -> Iterator[RunResult]:
    """Trains runs whose models share one structure, epoch by epoch, yielding each run as it
    ends (and, with `until`, as it reaches that many epochs: `paused`, its state attached)."""
    reason = why_not_model(built[0][0])
    if reason is not None:
        raise TypeError(f"the fused engine cannot train {reason}; use engine = \"keras\"")
    program = _template(runs, built, data)
    missing = set().union(*(b.dropout for _, b in built)) - {layer.name for layer in program.dropouts}
    if missing:
        raise TypeError(f"the runs of this pack have Dropout layers {sorted(missing)} that the template lacks")
    stack = _Stack(program, runs, [b for _, b in built], data, t_start, resume)
    while stack.active.any():
        if STOP.is_set():
            raise KeyboardInterrupt
        diverged, stop = stack.epoch()
        yield from stack.end(diverged, stop, until)
        stack.compact()


class _Stack:
    """The runs of one program in flight: their stacked values (`tv`, `ntv`, `ov` and the best
    weights so far), early-stopping counters, batch orders, histories and times, and which
    positions of the stack still train (`alive`: position -> run index)."""

    def __init__(self, program: _Program, runs: list[RunSpec], builts: list[_Built], data: Dataset,
                 t_start: float, resume: dict[str, dict]) -> None:
        import keras

        self.keras, self.program, self.runs, self.builts, self.data = keras, program, runs, builts, data
        pad = stack_size(len(runs)) - len(runs)  # positions that never train: the size compiled already
        self.state, self.consts = program.initial_state(builts + builts[:1] * pad, runs + runs[:1] * pad)
        self.best = {"tv": self.state["tv"], "ntv": self.state["ntv"]}
        es = runs[0].early_stopping
        self.monitor = es.monitor
        self.rule = StopRule([r.early_stopping.patience for r in runs], [r.early_stopping.min_delta for r in runs],
                             [r.early_stopping.enabled for r in runs], monitor_mode(es.monitor))
        self.restore = [es.restore_best_weights and r.early_stopping.enabled for r in runs]
        self.orders = _Orders(builts + builts[:1] * pad, runs + runs[:1] * pad, len(data.x_train))
        convert = keras.ops.convert_to_tensor
        self.xy = tuple(convert(a) for a in (data.x_train, data.y_train, data.x_val, data.y_val))
        self.metric = metric_names(data.task)[0]
        self.histories: list[list[dict[str, Any]]] = [[] for _ in runs]
        self.epochs = np.zeros(len(runs), dtype=np.int64)  # epochs trained, by run
        self.spent = np.full(len(runs), (time.perf_counter() - t_start) / len(runs))  # wall time, by run
        self.alive = np.concatenate([np.arange(len(runs)), np.zeros(pad, dtype=np.int64)])
        self.active = np.arange(len(runs) + pad) < len(runs)
        if resume:
            self._resume(resume)

    def epoch(self) -> tuple[np.ndarray, np.ndarray]:
        """Trains every active run one epoch and records its row; returns, for the active
        positions, which diverged and which early stopping ends."""
        t0 = time.perf_counter()
        with _convolutions_as_matmuls():
            self.state, out = self.program.epoch(self.state, self.consts, self.keras.ops.convert_to_tensor(
                self.orders.next()), *self.xy)
        m = self.metric
        names = {"metric": m, "train_metric": f"train_{m}", "val_metric": f"val_{m}"}
        values = {names.get(k, k): np.asarray(v, dtype=np.float64) for k, v in out.items()}
        values["val_loss"] = values["val_data_loss"] + values["penalty"]
        live = np.flatnonzero(self.active)
        share = (time.perf_counter() - t0) / len(live)
        runs = self.alive[live]
        self.epochs[runs] += 1
        self.spent[runs] += share
        rows = [{"run_id": self.runs[j].run_id, "epoch": int(self.epochs[j]),
                 **{col: float(v[pos]) for col, v in values.items()},
                 "lr": self.runs[j].training.learning_rate, "epoch_time_s": share}
                for pos, j in zip(live, runs, strict=True)]
        for row, j in zip(rows, runs, strict=True):
            self.histories[j].append(row)
        improved_live, stop = self.rule.update(self.epochs[runs] - 1, [r.get(self.monitor, np.nan) for r in rows],
                                               runs)
        if any(self.restore):
            improved = np.zeros(len(self.active), dtype=bool)
            improved[live] = improved_live
            self.best = _select(improved, self._weights(), self.best)
        return np.array([diverged_at(row) for row in rows]), stop

    def end(self, diverged: np.ndarray, stop: np.ndarray, until: int | None) -> Iterator[RunResult]:
        """Records the runs that end now (diverged, stopped early, or at their last epoch) and
        those that reach `until` epochs (`paused`), and takes them off the stack."""
        live = np.flatnonzero(self.active)
        runs = self.alive[live]
        last = self.epochs[runs] >= self.runs[0].training.epochs
        ending = diverged | stop | last
        pausing = ~ending & (self.epochs[runs] == until) if until is not None else np.zeros_like(ending)
        if not (ending | pausing).any():
            return
        t1 = time.perf_counter()
        leaving = live[ending | pausing]
        mask = np.zeros(len(self.active), dtype=bool)
        mask[leaving] = [self.restore[self.alive[p]] for p in leaving]
        kept = _select(mask, self.best, self._weights())
        tests = self._test(kept) if ending.any() else None
        cost = (time.perf_counter() - t1) / len(leaving)
        for i in np.flatnonzero(ending | pausing):
            pos, j = int(live[i]), int(runs[i])
            self.spent[j] += cost
            test = None if tests is None or diverged[i] or pausing[i] else {
                "data_loss": float(tests["data_loss"][pos]), self.metric: float(tests["metric"][pos])}
            result = self._record(j, pos, kept, bool(stop[i] and not diverged[i]), test)
            if pausing[i] and result.status == "ok":
                result = replace(result, status="paused", state=self._paused(j, pos))
            yield result
        self.active[leaving] = False

    def compact(self) -> None:
        """When half of the stack has ended, keeps the positions still training (padded to a
        power of two, and to `MIN_STACK`, so that few sizes compile)."""
        n_active = int(self.active.sum())
        size = max(MIN_STACK, 1 << max(n_active - 1, 0).bit_length())
        if n_active == 0 or n_active > len(self.active) // 2 or size >= len(self.active):
            return
        keep = np.concatenate([np.flatnonzero(self.active), np.flatnonzero(~self.active)[: size - n_active]])
        self.state, self.consts, self.best = _take(self.state, keep), _take(self.consts, keep), _take(self.best, keep)
        self.orders.keep(keep)
        self.alive, self.active = self.alive[keep], self.active[keep]

    # -- internals -------------------------------------------------------------------------------
    def _weights(self) -> dict:
        return {"tv": self.state["tv"], "ntv": self.state["ntv"]}

    def _test(self, kept: dict) -> dict[str, np.ndarray] | None:
        if self.data.x_test is None:
            return None
        convert = self.keras.ops.convert_to_tensor
        with _convolutions_as_matmuls():
            measured = self.program.evaluate(kept, convert(self.data.x_test), convert(self.data.y_test))
        return {k: np.asarray(v, dtype=np.float64) for k, v in measured.items()}

    def _record(self, j: int, pos: int, kept: dict, stopped: bool, test: dict | None) -> RunResult:
        run, rule = self.runs[j], self.rule
        kernels = {name: np.asarray((kept["tv"] if trainable else kept["ntv"])[i])[pos]
                   for name, (trainable, i) in self.program.kernels.items()}
        return finish(run, engine=NAME, backend=self.keras.backend.backend(), task=self.data.task,
                      history=self.histories[j], best=int(rule.best_epoch[j]) if run.early_stopping.enabled else None,
                      restored=self.restore[j], stopped=stopped, kernels=kernels, test=test,
                      n_params=self.builts[j].n_params, duration_s=float(self.spent[j]),
                      n_train=len(self.data.x_train), n_val=len(self.data.x_val))

    def _paused(self, j: int, pos: int) -> dict[str, Any]:
        """Everything run `j` needs to go on later, in another pack or process (NumPy values)."""
        rule = self.rule
        return {
            "values": {key: [np.array(np.asarray(a)[pos]) for a in self.state[key]] for key in ("tv", "ntv", "ov")},
            "best": {key: [np.array(np.asarray(a)[pos]) for a in self.best[key]] for key in ("tv", "ntv")},
            "rule": {"best": rule.best[j], "seen": rule.seen[j], "best_epoch": rule.best_epoch[j],
                     "wait": rule.wait[j]},
            "order": self.orders.state(pos), "history": list(self.histories[j]), "epochs": int(self.epochs[j]),
            "spent": float(self.spent[j]),
        }

    def _resume(self, resume: dict[str, dict]) -> None:
        """Puts the paused runs' values back in their places on the stack."""
        convert = self.keras.ops.convert_to_tensor
        rows = {j: resume[r.run_id] for j, r in enumerate(self.runs) if r.run_id in resume}

        def put(stacked: list, key: str, part: str) -> list:
            arrays = [np.array(a) for a in stacked]
            for j, paused in rows.items():
                for a, value in zip(arrays, paused[part][key], strict=True):
                    a[j] = value
            return [convert(a) for a in arrays]

        self.state = {key: put(self.state[key], key, "values") for key in ("tv", "ntv", "ov")}
        self.best = {key: put(self.best[key], key, "best") for key in ("tv", "ntv")}
        for j, paused in rows.items():
            for name, value in paused["rule"].items():
                getattr(self.rule, name)[j] = value
            self.orders.restore(j, paused["order"])
            self.histories[j] = list(paused["history"])
            self.epochs[j], self.spent[j] = paused["epochs"], paused["spent"]
