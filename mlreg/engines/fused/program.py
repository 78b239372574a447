"""The program over K runs: one template model, made to take per-run values, and its compiled
training epoch and evaluation pass, mapped over a stack of runs.

What a run keeps of its own in the program: its weights, BatchNorm statistics, seed states and
optimizer state (the stacked values), its learning rate (its optimizer's learning-rate
variable), its L1/L2 rates (the engine computes the penalty itself from the regularized
weights, `l1 * sum|w| + l2 * sum w^2` as Keras does; a regularizer's factor would be a Python
constant of the trace), and its dropout rate per Dropout layer, drawn through Keras's own op
from the run's own seed state. Nothing couples runs: each run's loss, gradient and optimizer
update are its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.engines.fused.backends import compile_fn, dropout_op, stateless_optimizer, value_and_grad
from mlreg.engines.fused.introspect import Built, all_layers, dropout_layers
from mlreg.engines.fused.packing import MAX_PACK
from mlreg.records import SPARSE_BELOW

if TYPE_CHECKING:
    import keras

    from mlreg.data import Dataset
    from mlreg.spec import RunSpec

EVAL_ELEMENTS = 1 << 22
"""The evaluation passes work in chunks of samples whose activations stay below this many
floats per layer (16 MB), whatever the pack and data size."""


def _per_run_dropout(cls: type) -> type:
    """A subclass of a Dropout class whose rate is the value set in `_mlreg_rate` while the
    pack's program is traced (the run's own, mapped over the stack), through Keras's own op."""
    if cls.__name__.startswith("PerRun"):
        return cls

    def call(self: Any, inputs: Any, training: bool = False) -> Any:
        return dropout_op(inputs, self._mlreg_rate, self.noise_shape, self.seed_generator) if training else inputs

    return type(f"PerRun{cls.__name__}", (cls,), {"call": call, "_mlreg_call": cls.call})


class Program:
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
        self.dropouts = dropout_layers(template)
        for layer in self.dropouts:
            layer.__class__ = _per_run_dropout(type(layer))
        self.regularized = regularized
        for i in self.regularized:
            template.trainable_variables[i].regularizer = None  # the engine adds its penalty, per run
        self.kernels = _kernel_index(template)
        self.optimizer_name = runs[0].training.optimizer
        self.optimizer = stateless_optimizer(make_optimizer(self.optimizer_name, 1e-3))
        self.optimizer.build(template.trainable_variables)
        self.chunk = _chunk(template)
        self.loss = _per_sample_loss(data.task)
        self.metric = _per_sample_metric(data.task)
        self.epoch = compile_fn(self._epoch, xla)
        self.evaluate = compile_fn(self._evaluate, xla)

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

        (total, (new_ntv, hits)), grads = value_and_grad(objective)(tv)
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
    def initial_state(self, builts: Sequence[Built], runs: Sequence[RunSpec]) -> tuple[dict, dict]:
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
    for layer in all_layers(model):
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

