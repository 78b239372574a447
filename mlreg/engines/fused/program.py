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

from mlreg.engines.fused.backends import compile_fn, stateless_optimizer, value_and_grad
from mlreg.engines.fused.introspect import eval_chunk, fixed_layers, kernel_index, per_run_layers, seed_state
from mlreg.engines.fused.per_run import take_over
from mlreg.engines.fused.reach import PerRunActivity, Reach, max_norm
from mlreg.records import SPARSE_BELOW
from mlreg.tasks import TABLE

if TYPE_CHECKING:
    import keras

    from mlreg.data import Dataset
    from mlreg.spec import RunSpec

class Program:
    """The compiled functions of one template model: a training epoch and an evaluation
    pass, for stacks of any size (each size is traced once).

    Args:
        template: a built model of the pack's structure with every per-run layer the runs
            have (`introspect.fits`); the program takes it over: its per-run layers draw with
            traced values, its L1/L2 regularizers and `MaxNorm` constraints in `reach` are
            removed (the engine applies them per run), its L1/L2 activity regularizers take
            each run's rates.
        reach: what per-run values it takes (`Reach`).
        runs: the runs it is made for (their batch size and optimizer).
        data: their data (the task).
        xla: compile under XLA on TensorFlow (see `backends.compile_fn`).
    """

    def __init__(self, template: keras.Model, reach: Reach, runs: Sequence[RunSpec], data: Dataset,
                 xla: bool) -> None:
        import keras

        from mlreg.models import make_optimizer

        self.keras = keras
        self.template = template
        self.reach = reach
        self.task, self.classes = data.task, data.n_outputs
        self.batch_size = runs[0].training.batch_size
        layers = per_run_layers(template)
        self.keys = sorted(layers)
        self.layers = [layers[k] for k in self.keys]
        for layer in self.layers:
            take_over(layer)
        seeds = {id(seed_state(layer)) for layer in self.layers}
        everything = template.non_trainable_variables
        self.kept = [i for i, v in enumerate(everything) if id(v) not in seeds]  # what is stacked
        self.fixed = {i: np.asarray(v.numpy()) for i, v in enumerate(everything) if id(v) in seeds}  # never drawn from
        self.regularized = sorted(reach.regularized)
        self.max_norm = dict(reach.max_norm)
        for i in self.regularized:
            template.trainable_variables[i].regularizer = None  # the engine adds its penalty, per run
        for i in self.max_norm:
            template.trainable_variables[i].constraint = None  # the engine constrains, per run
        self.activity = sorted(reach.activity)
        self.activities = [PerRunActivity() for _ in self.activity]
        fixed = fixed_layers(template)
        for i, regularizer in zip(self.activity, self.activities, strict=True):
            fixed[i].activity_regularizer = regularizer
        self.kernels = kernel_index(template, self.kept)
        self.inference_draws = _inference_draws(template, self.kept, data)
        self.evaluations = math.ceil(len(data.x_val) / self.batch_size) + math.ceil(
            len(data.x_train) / max(self.batch_size, 256))
        self.optimizer_name = runs[0].training.optimizer
        self.optimizer = stateless_optimizer(make_optimizer(self.optimizer_name, 1e-3, weight_decay=0.0))
        self.optimizer.build(template.trainable_variables)
        self.learning_rate = next(i for i, v in enumerate(self.optimizer.variables) if v.name == "learning_rate")
        self.chunk = eval_chunk(template)
        task = TABLE[data.task]
        self.loss, self.metric = getattr(keras.losses, task.per_sample_loss), task.per_sample_metric
        self.steps = compile_fn(self._steps, xla)
        self.finish = compile_fn(self._finish, xla)
        self.traced_epoch = compile_fn(self._epoch, xla)  # for `probe`: one epoch, traced, never run
        self.evaluate = compile_fn(self._evaluate, xla)
        self.sizes: set[int] = set()  # the stack sizes whose epoch has compiled (see `Stack.compact`)
        self.compiling = 0.0  # the longest an epoch took to compile

    # -- one run (mapped over the stack) -----------------------------------------------------------
    def _forward(self, tv: list, ntv: list, x: Any, training: bool, seeds: list | None = None,
                 values: Any = None, activity: Any = None) -> tuple[Any, list, list, list]:
        """The template on one run's values: its outputs, new non-trainable values, new seed
        states of its per-run layers, and the losses the model adds itself (regularizers the
        engine does not take over, activity regularizers at the run's rates, `add_loss`)."""
        for i, layer in enumerate(self.layers):  # plain attributes, not tracked by Keras
            object.__setattr__(layer, "_mlreg_value", None if values is None else values[i])
            object.__setattr__(layer, "_mlreg_seed", None if seeds is None else seeds[i])
        for i, regularizer in enumerate(self.activities):
            regularizer.rates = None if activity is None else activity[i]
        full = list(ntv)
        for i in sorted(self.fixed):
            full.insert(i, self.fixed[i])
        try:
            y_pred, full, losses = self.template.stateless_call(tv, full, x, training=training, return_losses=True)
            new_seeds = [layer._mlreg_seed for layer in self.layers]
        finally:
            for layer in self.layers:
                object.__setattr__(layer, "_mlreg_value", None)
                object.__setattr__(layer, "_mlreg_seed", None)
        return y_pred, [full[i] for i in self.kept], new_seeds, list(losses)

    def _penalty(self, tv: list, l1: Any, l2: Any) -> Any:
        """`sum l1 * |w| + l2 * w^2` over the regularized variables, with the run's rates."""
        ops = self.keras.ops
        total = ops.zeros(())
        for j, i in enumerate(self.regularized):
            w = tv[i]
            total = total + l1[j] * ops.sum(ops.abs(w)) + l2[j] * ops.sum(ops.square(w))
        return total

    def _objective(self, y: Any, y_pred: Any, c: dict) -> Any:
        """The per-sample training loss: the data loss, or with label smoothing (some run has it),
        Keras's crossentropy of the smoothed targets `y (1 - ls) + ls / classes` (binary:
        `+ ls / 2`), the run's `(1 - ls, ls / classes)` in `c["smooth"]`."""
        ops = self.keras.ops
        plain = self.loss(y, y_pred)
        if not self.reach.smoothing:
            return plain
        keep, spread = c["smooth"][0], c["smooth"][1]
        if self.task == "single_label":
            target = ops.one_hot(ops.cast(ops.reshape(y, (-1,)), "int32"), y_pred.shape[-1], dtype=y_pred.dtype)
            smoothed = ops.categorical_crossentropy(target * keep + spread, y_pred)
        else:
            smoothed = ops.mean(ops.binary_crossentropy(ops.cast(y, y_pred.dtype) * keep + spread, y_pred), axis=-1)
        return ops.where(spread > 0, smoothed, plain)

    def _step(self, args: tuple) -> tuple:
        """One optimizer step of one run on its batch: the gradient of its loss (with its L1/L2
        penalty and what the model adds), its weight decay (Keras's: `w - w * weight_decay *
        learning_rate`, before the step), the optimizer's step, its max-norm constraints."""
        ops = self.keras.ops
        tv, ntv, seeds, ov, c, x, y = args

        def objective(tv: list) -> tuple:
            y_pred, new_ntv, new_seeds, losses = self._forward(tv, ntv, x, True, seeds, c["values"], c["activity"])
            total = ops.mean(self._objective(y, y_pred, c)) + self._penalty(tv, c["l1"], c["l2"])
            for extra in losses:
                total = total + extra
            return total, (new_ntv, new_seeds, ops.sum(self.metric(y, y_pred)))

        (total, (new_ntv, new_seeds, hits)), grads = value_and_grad(objective)(tv)
        if self.reach.decay:
            lr = ov[self.learning_rate]
            tv = [w - w * c["decay"][i] * ops.cast(lr, w.dtype) for i, w in enumerate(tv)]
        new_tv, new_ov = self.optimizer.stateless_apply(ov, grads, tv)
        new_tv = list(new_tv)
        for j, (i, axis) in enumerate(self.max_norm.items()):
            most = c["max_norm"][j]
            new_tv[i] = ops.where(most > 0, max_norm(new_tv[i], most, axis), new_tv[i])
        return new_tv, new_ntv, new_seeds, new_ov, total, hits

    # -- the pack ----------------------------------------------------------------------------------
    def epoch(self, state: dict, consts: dict, order: Any, x: Any, y: Any, x_val: Any, y_val: Any) -> tuple:
        """Trains every run of the stack for one epoch, then measures each (see `_epoch`), as two
        compiled calls: the full batches (`steps`, the program `sizing` times, so that its
        compilation serves the training too), then the last, partial batch and the measures."""
        full = self.keras.ops.convert_to_tensor(np.int32(order.shape[1] // self.batch_size))
        tv, ntv, seeds, ov, loss_sum, hit_sum = self.steps(state, consts, order, x, y, full)
        return self.finish({"tv": tv, "ntv": ntv, "seeds": seeds, "ov": ov}, consts, order, x, y, x_val, y_val,
                           loss_sum, hit_sum)

    def _epoch(self, state: dict, consts: dict, order: Any, x: Any, y: Any, x_val: Any, y_val: Any) -> tuple:
        """Trains every run of the stack for one epoch, then measures each. Returns the new
        state and a dict of `[K]` values: the running `loss` and `metric` (Dropout on, as Keras
        reports them), the data loss and metric on the training and validation sets in
        inference mode (`train_*`, `val_*`), the penalty, the parts of Keras's `val_loss` (the
        validation objective, the L1/L2 penalty, and what the model adds on the validation set)
        and the weight statistics. The penalty is every term the model adds to the data loss, as Keras's
        `evaluate` counts it on the training set: the L1/L2 penalty of the weights, other
        regularizers', and activity regularizers' mean over the training samples. (One traced
        function, for `probe`; training calls `epoch`.)"""
        full = order.shape[1] // self.batch_size
        tv, ntv, seeds, ov, loss_sum, hit_sum = self._steps(state, consts, order, x, y, full)
        return self._finish({"tv": tv, "ntv": ntv, "seeds": seeds, "ov": ov}, consts, order, x, y, x_val, y_val,
                            loss_sum, hit_sum)

    def _steps(self, state: dict, consts: dict, order: Any, x: Any, y: Any, steps: Any) -> tuple:
        """The first `steps` full batches of every run's batch order (`[K, n]` sample indices; a
        traced count, so that a few steps and a whole epoch are one compiled program): the new
        values and each run's sums of the training loss and metric."""
        ops = self.keras.ops
        k = order.shape[0]
        carry = (state["tv"], state["ntv"], state["seeds"], state["ov"], ops.zeros((k,)), ops.zeros((k,)))
        bs = self.batch_size
        if order.shape[1] // bs:
            carry = ops.fori_loop(
                0, steps, lambda i, c: self._batch(c, ops.slice(order, (0, i * bs), (k, bs)), x, y, consts), carry)
        return carry

    def _batch(self, carry: tuple, idx: Any, x: Any, y: Any, consts: dict) -> tuple:
        """One training step of every run of the stack, on its batch (`idx`: `[K, b]` sample indices)."""
        ops = self.keras.ops
        tv, ntv, seeds, ov, loss_sum, hit_sum = carry
        xb, yb = ops.take(x, idx, axis=0), ops.take(y, idx, axis=0)
        tv, ntv, seeds, ov, total, hits = ops.vectorized_map(self._step, (tv, ntv, seeds, ov, consts, xb, yb))
        size = ops.cast(idx.shape[1], "float32")
        return tv, ntv, seeds, ov, loss_sum + total * size, hit_sum + hits

    def _finish(self, state: dict, consts: dict, order: Any, x: Any, y: Any, x_val: Any, y_val: Any,
                loss_sum: Any, hit_sum: Any) -> tuple:
        """The epoch's last, partial batch, then the measures of `_epoch`."""
        ops = self.keras.ops
        n, bs = order.shape[1], self.batch_size
        carry = (state["tv"], state["ntv"], state["seeds"], state["ov"], loss_sum, hit_sum)
        if n % bs:
            carry = self._batch(carry, order[:, (n // bs) * bs:], x, y, consts)
        tv, ntv, seeds, ov, loss_sum, hit_sum = carry
        ntv = list(ntv)
        for i, step in self.inference_draws.items():  # as model.fit's evaluations move them (see _inference_draws)
            ntv[i] = ntv[i] + ops.convert_to_tensor(step * self.evaluations, dtype=ntv[i].dtype)
        new = {"tv": tv, "ntv": ntv, "seeds": seeds, "ov": ov}
        values = {"loss": loss_sum / n, "metric": hit_sum / n}
        train, val = self._evaluate(new, x, y, consts), self._evaluate(new, x_val, y_val, consts)
        values |= {f"train_{name}": train[name] for name in ("data_loss", "metric")}
        values |= {f"val_{name}": val[name] for name in ("data_loss", "metric")}
        weights = self._weights(new, consts)
        explicit = weights.pop("penalty")
        return new, values | weights | {"penalty": explicit + train["extra"], "explicit": explicit,
                                        "val_objective": val["objective"], "val_extra": val["extra"]}

    def _evaluate(self, state: dict, x: Any, y: Any, consts: dict) -> dict:
        """Per run, over a whole data set in inference mode, `chunk` samples at a time: the
        mean data loss and metric, the mean training objective without the penalty (the smoothed
        loss, where labels are smoothed) and the mean of what the model adds to the loss itself
        (`extra`)."""
        ops = self.keras.ops
        n = x.shape[0]
        chunk = min(self.chunk, n)
        k = state["tv"][0].shape[0]

        def part(carry: tuple, xc: Any, yc: Any) -> tuple:
            def one(args: tuple) -> tuple:
                tv, ntv, c = args
                y_pred, _, _, losses = self._forward(tv, ntv, xc, False, activity=c["activity"])
                extra = ops.zeros(())
                for value in losses:
                    extra = extra + value
                loss = self.loss(yc, y_pred)
                objective = self._objective(yc, y_pred, c) if self.reach.smoothing else loss
                return ops.sum(loss), ops.sum(self.metric(yc, y_pred)), ops.sum(objective), extra

            loss, hits, objective, extra = ops.vectorized_map(one, (state["tv"], state["ntv"], consts))
            size = ops.cast(xc.shape[0], "float32")
            return carry[0] + loss, carry[1] + hits, carry[2] + objective, carry[3] + extra * size

        carry = tuple(ops.zeros((k,)) for _ in range(4))
        full = n // chunk
        carry = ops.fori_loop(0, full, lambda i, c: part(c, ops.slice(x, (i * chunk,) + (0,) * (len(x.shape) - 1),
                                                                      (chunk,) + tuple(x.shape[1:])),
                                                        ops.slice(y, (i * chunk,) + (0,) * (len(y.shape) - 1),
                                                                  (chunk,) + tuple(y.shape[1:]))), carry)
        if n % chunk:
            carry = part(carry, x[full * chunk:], y[full * chunk:])
        return {"data_loss": carry[0] / n, "metric": carry[1] / n, "objective": carry[2] / n, "extra": carry[3] / n}

    def _weights(self, state: dict, consts: dict) -> dict:
        """Per run: the L1/L2 penalty and the weight statistics over every kernel."""
        ops = self.keras.ops

        def weights(args: tuple) -> tuple:
            tv, ntv, l1, l2 = args
            ws = [ops.reshape((tv if trainable else ntv)[i], (-1,)) for trainable, i in self.kernels.values()]
            w = ops.concatenate(ws) if ws else ops.zeros((0,))
            return (self._penalty(tv, l1, l2), ops.sum(ops.abs(w)), ops.sum(ops.square(w)),
                    ops.mean(ops.cast(ops.abs(w) < SPARSE_BELOW, "float32")) if ws else ops.zeros(()))

        penalty, l1_sum, l2_sum, sparsity = ops.vectorized_map(
            weights, (state["tv"], state["ntv"], consts["l1"], consts["l2"]))
        return {"penalty": penalty, "weight_l1": l1_sum, "weight_l2": l2_sum, "sparsity": sparsity}

def _inference_draws(model: keras.Model, kept: list[int], data: Dataset) -> dict[int, np.ndarray]:
    """The seed states (indices among the stacked non-trainable values) that a call in inference
    mode moves, and by how much a call. Keras's RNN layers prepare their dropout masks whatever
    `training` is, so every `evaluate` in `model.fit` (the validation pass, a batch at a time,
    and the keras engine's honest pass over the training set) moves their seed state, and the
    next epoch's masks follow from it; the program moves them as many times an epoch
    (`Program.evaluations`), so that its masks stay `model.fit`'s. Measured on the model itself,
    one call on one sample."""
    everything = model.non_trainable_variables
    before = [np.asarray(everything[i].numpy()) for i in kept]
    _, after = model.stateless_call([v.value for v in model.trainable_variables], [v.value for v in everything],
                                    data.x_train[:1], training=False)
    out = {}
    for j, i in enumerate(kept):
        if np.issubdtype(before[j].dtype, np.integer):
            step = np.asarray(after[i]).astype(before[j].dtype) - before[j]
            if step.any():
                out[j] = step
    return out
