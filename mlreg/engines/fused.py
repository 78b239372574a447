"""The `fused` engine: the runs of a pack share one TensorFlow graph.

For small models the time of `model.fit` goes to Keras's per-step overhead, not to
arithmetic. This engine stacks the weights of K runs as `[K, in, out]` tensors and trains
all K at once, one `tf.function` call per epoch (training steps, the honest evaluations on
the training and validation sets, penalty and weight statistics), so the overhead is paid
once per pack instead of once per run.

What a run keeps of its own inside a pack (nothing couples runs):
- its initial weights: exactly those the Keras builder gives under its seed (the model is
  built with Keras and its weights are stacked), so both engines start from the same point;
- its batch order: the one `model.fit` uses under its seed (Keras 3 on TensorFlow draws one
  permutation per `fit` and, with a global seed set, repeats it every epoch: measured, and
  checked by a test);
- its `l1`, `l2` (per layer too), `dropout` (masks from a counter-based hash of the run's seed,
  the step and the layer, so they do not depend on pack-mates; they differ from Keras's
  draws), `learning_rate` (the optimizer update is written for stacked variables, following
  Keras's `update_step` of each optimizer), `early_stopping`, `patience` and `min_delta`;
- its loss: the sum over runs of each run's mean data loss plus its own penalty, so each
  run's gradient is its own; there is no clipping across the stack.

Early stopping follows Keras's rules per run (`StopRule`). A run that stops or diverges is
recorded at once and masked: neither its weights nor its optimizer state change again (with
Adam a zero gradient would still move them). When half of the stack has stopped, the stack is
compacted to the runs still training (padded to a power of two, so that XLA compiles the
training step for few sizes), so a pack does not keep paying for runs that ended.

A pack holds runs that share the data, the architecture, the batch size, the number of
epochs, the optimizer and what early stopping monitors (`pack_key`).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.engines import STOP
from mlreg.records import SPARSE_BELOW, RunResult, diverged_at, failed, finish, metric_names, monitor_mode

if TYPE_CHECKING:
    import tensorflow as tf

    from mlreg.data import Dataset
    from mlreg.spec import RunSpec

NAME = "fused"
BUILDERS = ("mlp", "residual_mlp", "wide_deep")

MAX_PACK = 64
"""Runs trained in one graph at most. On 2 cores throughput stops growing there (95 run-epochs
a second at 64 runs, 101 at 256) while memory keeps growing (benchmarks/bench_engines.py)."""

EVAL_ELEMENTS = 1 << 22
"""The evaluation passes work in chunks of samples whose activations stay below this many
floats per layer (16 MB), whatever the pack and data size."""

XLA_SAVES_S = 0.5e-9
"""Seconds that the XLA-compiled training step saves per parameter and step over the plain
graph (one fused pass over the weights instead of ~20; measured with benchmarks/bench_engines.py)."""

XLA_COMPILE_S = 0.8
"""Seconds XLA takes to compile the training step for one pack size. Compiling the whole epoch
(the loop over batches too) was measured 10x slower to run on CPU, so only the step is compiled."""


def use_xla(k: int, n_params: int, steps: int, early_stopping: bool) -> bool:
    """Whether compiling the training step pays for a pack: `k` runs of `n_params` weights for
    `steps` steps at most, against a compile for the pack's size and, when runs may stop
    early, one for each compaction."""
    compiles = 1 + (math.log2(k) if early_stopping else 0)
    return XLA_SAVES_S * k * n_params * steps > XLA_COMPILE_S * compiles

_BETA_1, _BETA_2, _EPSILON, _RHO, _WEIGHT_DECAY = 0.9, 0.999, 1e-7, 0.9, 0.004  # Keras's defaults


def why_not(run: RunSpec) -> str | None:
    """Why a run cannot be fused (a short reason), or `None` when it can."""
    from mlreg.backend import choose_backend

    if choose_backend() != "tensorflow":
        return f"the {choose_backend()} backend"
    if run.data.shape is not None and len(run.data.shape) > 1:
        return f"data of shape {list(run.data.shape)}"
    if run.model.builder not in BUILDERS:
        return f"builder {run.model.builder!r}"
    if run.model.freeze != "none":
        return f"freeze {run.model.freeze!r}"
    return None


def pack_key(run: RunSpec) -> str:
    """Runs with the same key can share a graph."""
    m, t, es = run.model, run.training, run.early_stopping
    return json.dumps([run.data_key, m.builder, m.hidden, m.activation, t.batch_size, t.epochs, t.optimizer,
                       es.monitor, es.restore_best_weights])


def pack(runs: Sequence[RunSpec], max_pack: int = MAX_PACK) -> list[list[RunSpec]]:
    """Groups fusable runs by `pack_key` (in plan order) into packs of at most `max_pack`
    runs, split evenly (20 runs with `max_pack=16` give two packs of 10)."""
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(pack_key(run), []).append(run)
    packs = []
    for group in groups.values():
        n = math.ceil(len(group) / max_pack)
        size = math.ceil(len(group) / n)
        packs += [group[i:i + size] for i in range(0, len(group), size)]
    return packs


# -- early stopping, vectorised ------------------------------------------------------------
class StopRule:
    """Keras's `EarlyStopping` rules for K runs at once (numpy, no TensorFlow).

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

    def update(self, epoch: int, current: Sequence[float], which: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Takes epoch `epoch` (0-based) of the runs `which` (indices); returns, for those runs,
        whether each improved (its weights become the best) and whether each stops now."""
        which = np.asarray(which, dtype=np.int64)
        current = np.asarray(current, dtype=np.float64)
        s = self.sign
        self.wait[which] += 1
        with np.errstate(invalid="ignore"):
            improved = ~self.seen[which] | (s * (current + s * self.min_delta[which]) < s * self.best[which])
        idx = which[improved]
        self.best[idx], self.best_epoch[idx], self.wait[idx], self.seen[idx] = current[improved], epoch, 0, True
        stop = ~improved & (self.wait[which] >= self.patience[which]) & (epoch > 0) & self.enabled[which]
        return improved, stop


# -- the pack's graph ------------------------------------------------------------------------
Params = dict  # layer name -> (kernel [K, in, out], bias [K, out])


@dataclass(frozen=True)
class _Arch:
    """What a pack's graph depends on besides shapes: one set of traced functions per value."""

    builder: str
    hidden: tuple[int, ...]
    activation: str
    task: str
    optimizer: str
    batch_size: int
    dropout: bool
    l1: tuple[bool, ...]  # per rate index: does any run of the pack have an L1 term there
    l2: tuple[bool, ...]
    xla: bool  # compile the training step with XLA (`use_xla`)

    def rate_index(self, layer: str) -> int:
        """Which entry of a per-layer rate list applies to a layer (as in `models.build_mlp`)."""
        return len(self.hidden) if layer == "output" else int(layer.split("_")[1]) - 1


def dense_layers(builder: str, hidden: Sequence[int]) -> list[str]:
    """The Dense layers of a built-in builder's model, as stacked here: `hidden_i`, `skip_i`
    (a residual model's projection where the width changes), `output`."""
    names = ["hidden_1"]
    for i in range(1, len(hidden)):
        if builder == "residual_mlp" and hidden[i] != hidden[i - 1]:
            names.append(f"skip_{i + 1}")
        names.append(f"hidden_{i + 1}")
    return [*names, "output"]


def _fmix32(h: tf.Tensor) -> tf.Tensor:
    """MurmurHash3's 32-bit finaliser: well-mixed bits from a counter (uint32 arithmetic wraps)."""
    import tensorflow as tf

    def shift_xor(x: tf.Tensor, s: int) -> tf.Tensor:
        return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(s, tf.uint32)))

    h = shift_xor(h, 16) * tf.constant(0x85EBCA6B, tf.uint32)
    h = shift_xor(h, 13) * tf.constant(0xC2B2AE35, tf.uint32)
    return shift_xor(h, 16)


def _u32(value: int) -> Any:
    import tensorflow as tf

    return tf.constant(value & 0xFFFFFFFF, tf.uint32)


class _Graph:
    """The traced functions of one architecture. `reduce_retracing` makes the second pack
    size seen trace a graph for any size, so a process traces each function at most twice."""

    def __init__(self, arch: _Arch) -> None:
        import keras
        import tensorflow as tf

        self.arch = arch
        self.act = keras.activations.get(arch.activation)
        self.epoch = tf.function(self._epoch, reduce_retracing=True)
        self.step = tf.function(self._step, jit_compile=arch.xla)
        self.measure = tf.function(self._measure, reduce_retracing=True)

    # -- the model --------------------------------------------------------------------------
    def forward(self, params: Params, x: tf.Tensor, drop: Any = None) -> tf.Tensor:
        """The logits of every run, `[K, B, out]`, for `x` of `[K, B, in]` (a batch per run) or
        `[B, in]` (the same samples for every run). `drop(h, i)` applies Dropout i."""
        import tensorflow as tf

        arch = self.arch
        k = tf.shape(params["output"][0])[0]

        def dense(h: tf.Tensor, name: str, act: bool = True) -> tf.Tensor:
            w, b = params[name]
            out = tf.matmul(h, w) + b[:, None, :]
            return self.act(out) if act else out

        def dropout(h: tf.Tensor, i: int) -> tf.Tensor:
            return drop(h, i) if drop is not None else h

        inputs = x if x.shape.rank == 3 else x[None]  # [1, B, in] broadcasts against [K, in, out]
        h = dropout(dense(inputs, "hidden_1"), 0)
        for i in range(1, len(arch.hidden)):
            y = dropout(dense(h, f"hidden_{i + 1}"), i)
            if arch.builder != "residual_mlp":
                h = y
            else:
                h = (dense(h, f"skip_{i + 1}", act=False) if f"skip_{i + 1}" in params else h) + y
        if arch.builder == "wide_deep":
            wide = inputs if x.shape.rank == 3 else tf.broadcast_to(inputs, tf.concat([[k], tf.shape(inputs)[1:]], 0))
            h = tf.concat([wide, h], axis=-1)
        return dense(h, "output", act=False)

    def losses(self, logits: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Per-sample data loss and metric, `[K, B]` each, as Keras computes them (Keras's
        softmax and sigmoid keep their logits, from which its crossentropies are computed)."""
        import tensorflow as tf

        task = self.arch.task
        if task == "single_label":
            labels = tf.broadcast_to(tf.cast(y, tf.int64), tf.shape(logits)[:-1])
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            return loss, tf.cast(tf.equal(labels, tf.argmax(tf.nn.softmax(logits), axis=-1)), tf.float32)
        labels = tf.broadcast_to(y, tf.shape(logits))
        if task in ("binary", "multi_label"):
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), -1)
            hits = tf.cast(tf.equal(labels, tf.cast(tf.sigmoid(logits) > 0.5, tf.float32)), tf.float32)
            return loss, tf.reduce_mean(hits, -1)
        return tf.reduce_mean(tf.square(labels - logits), -1), tf.reduce_mean(tf.abs(labels - logits), -1)

    def penalty(self, params: Params, l1: tf.Tensor, l2: tf.Tensor) -> tf.Tensor:
        """`[K]`: each run's sum over layers of `l1 * sum|W| + l2 * sum W^2` (Keras's L1L2).
        A term that is zero for every run of the pack is left out, as Keras leaves it out."""
        import tensorflow as tf

        total = tf.zeros_like(l1[0])
        for name, (w, _) in params.items():
            i = self.arch.rate_index(name)
            if self.arch.l1[i]:
                total += l1[i] * tf.reduce_sum(tf.abs(w), [1, 2])
            if self.arch.l2[i]:
                total += l2[i] * tf.reduce_sum(tf.square(w), [1, 2])
        return total

    # -- one epoch ------------------------------------------------------------------------
    def _epoch(self, params: Params, slots: dict, step: tf.Tensor, active: tf.Tensor, lr: tf.Tensor, l1: tf.Tensor,
               l2: tf.Tensor, rate: tf.Tensor, seeds: tf.Tensor, order: tf.Tensor, x: tf.Tensor, y: tf.Tensor,
               x_val: tf.Tensor, y_val: tf.Tensor, chunk: int) -> tuple:
        """Trains every run of the pack for one epoch, then measures each one.

        Runs whose `active` is false keep their weights and optimizer state. Returns the new
        params, optimizer slots and step count, and a dict of `[K]` values:
        the epoch's running `loss` and `metric` (Dropout on, as Keras reports them), the
        `penalty`, data loss and metric on the training and validation sets in inference
        mode, and the weight statistics.
        """
        import tensorflow as tf

        bs = self.arch.batch_size
        n = tf.shape(order)[1]  # dynamic: one trace serves training sets of every size
        k = tf.shape(order)[0]
        lr3 = tf.reshape(lr, [-1, 1, 1])
        keep = tf.reshape(1.0 - rate, [-1, 1, 1])
        scale = tf.reshape(1.0 / (1.0 - rate), [-1, 1, 1])
        run_key = _fmix32(tf.cast(seeds, tf.uint32) ^ _u32(0x9E3779B9))

        def step_fn(params: Params, slots: dict, t: tf.Tensor, idx: tf.Tensor) -> tuple:
            return self.step(params, slots, t, idx, x, y, active, lr3, l1, l2, keep, scale, run_key)

        loss_sum, metric_sum, t = tf.zeros([k]), tf.zeros([k]), step
        full = n // bs
        for i in tf.range(full):
            idx = order[:, i * bs:(i + 1) * bs]
            params, slots, dl, dm = step_fn(params, slots, t, idx)
            loss_sum, metric_sum, t = loss_sum + dl, metric_sum + dm, t + 1
        if n % bs > 0:  # Keras's last, partial batch
            params, slots, dl, dm = step_fn(params, slots, t, order[:, full * bs:])
            loss_sum, metric_sum, t = loss_sum + dl, metric_sum + dm, t + 1
        count = tf.cast(n, tf.float32)
        out = {"loss": loss_sum / count, "metric": metric_sum / count, "penalty": self.penalty(params, l1, l2)}
        out |= {f"train_{name}": v for name, v in self._measure(params, x, y, chunk).items()}
        out |= {f"val_{name}": v for name, v in self._measure(params, x_val, y_val, chunk).items()}
        kernels = [w for w, _ in params.values()]
        out["weight_l1"] = tf.add_n([tf.reduce_sum(tf.abs(w), [1, 2]) for w in kernels])
        out["weight_l2"] = tf.add_n([tf.reduce_sum(tf.square(w), [1, 2]) for w in kernels])
        small = tf.add_n([tf.reduce_sum(tf.cast(tf.abs(w) < SPARSE_BELOW, tf.float32), [1, 2]) for w in kernels])
        out["sparsity"] = small / float(sum(w.shape[1] * w.shape[2] for w in kernels))
        return params, slots, t, out

    def _step(self, params: Params, slots: dict, t: tf.Tensor, idx: tf.Tensor, x: tf.Tensor, y: tf.Tensor,
              active: tf.Tensor, lr3: tf.Tensor, l1: tf.Tensor, l2: tf.Tensor, keep: tf.Tensor, scale: tf.Tensor,
              run_key: tf.Tensor) -> tuple:
        """One training step of every run on its batch `idx` (`[K, B]` sample indices): returns
        the new weights and optimizer state, and each run's batch loss (data + penalty, as
        Keras's loss tracker takes it: times the batch size) and summed metric."""
        import tensorflow as tf

        xb, yb = tf.gather(x, idx), tf.gather(y, idx)
        t32 = tf.cast(t, tf.uint32)

        def drop(h: tf.Tensor, layer: int) -> tf.Tensor:
            # a uniform number per (run, step, layer, sample, unit), from the run's seed alone
            stream = _fmix32(run_key * _u32(0x27D4EB2F) + t32 * _u32(0x165667B1) + _u32(layer * 0x61C88647))
            shape = tf.shape(h)
            pos = tf.reshape(tf.cast(tf.range(shape[1] * shape[2]), tf.uint32), [1, shape[1], shape[2]])
            bits = _fmix32(tf.reshape(stream, [-1, 1, 1]) ^ (pos * _u32(0x9E3779B1)))
            u = tf.cast(tf.bitwise.right_shift(bits, _u32(8)), tf.float32) * (1.0 / (1 << 24))
            return tf.where(u < keep, h * scale, tf.zeros_like(h))

        flat = [v for wb in params.values() for v in wb]
        with tf.GradientTape() as tape:
            tape.watch(flat)
            logits = self.forward(params, xb, drop if self.arch.dropout else None)
            loss, metric = self.losses(logits, yb)
            data_loss = tf.reduce_mean(loss, 1)
            total = tf.reduce_sum(data_loss)  # each run's gradient is its own term's
        g = tape.gradient(total, flat)
        grads = {name: (g[2 * i], g[2 * i + 1]) for i, name in enumerate(params)}
        penalty, params, slots = self.update(params, slots, grads, t, active, lr3, l1, l2)
        b = tf.cast(tf.shape(idx)[1], tf.float32)
        return params, slots, (data_loss + penalty) * b, tf.reduce_sum(metric, 1)

    def _measure(self, params: Params, x: tf.Tensor, y: tf.Tensor, chunk: int) -> dict[str, tf.Tensor]:
        """Mean data loss and metric of every run over a whole data set, inference mode, `chunk`
        samples at a time."""
        import tensorflow as tf

        n = tf.shape(x)[0]  # dynamic: one trace serves data sets of every size
        k = tf.shape(params["output"][0])[0]

        def part(lo: Any, hi: Any) -> tuple[tf.Tensor, tf.Tensor]:
            loss, metric = self.losses(self.forward(params, x[lo:hi]), y[lo:hi])
            return tf.reduce_sum(loss, 1), tf.reduce_sum(metric, 1)

        loss_sum, metric_sum = tf.zeros([k]), tf.zeros([k])
        for i in tf.range(n // chunk):
            dl, dm = part(i * chunk, (i + 1) * chunk)
            loss_sum, metric_sum = loss_sum + dl, metric_sum + dm
        if n % chunk > 0:
            dl, dm = part(n - n % chunk, n)
            loss_sum, metric_sum = loss_sum + dl, metric_sum + dm
        count = tf.cast(n, tf.float32)
        return {"data_loss": loss_sum / count, "metric": metric_sum / count}

    # -- the optimizers, for stacked variables with a learning rate per run ------------------
    def update(self, params: Params, slots: dict, grads: dict, t: tf.Tensor, active: tf.Tensor, lr3: tf.Tensor,
               l1: tf.Tensor, l2: tf.Tensor) -> tuple[tf.Tensor, Params, dict]:
        """One optimizer step per run; returns the penalty before the step (`[K]`, what Keras
        adds to the batch's loss), the new weights and the new optimizer state. A run that is
        not `active` keeps both (a zero gradient would still move Adam's weights).

        `grads` are the gradients of the data loss; the penalty's, `l1 * sign(W) + l2 * 2W`,
        are added here, in the one XLA-compiled pass over the weights that also computes the
        penalty and the update (written as Keras's `update_step` of each optimizer, with
        Keras's defaults and a learning rate per run; the step count `t + 1` is shared, since
        the runs of a pack start together).
        """
        import tensorflow as tf

        opt = self.arch.optimizer
        local_step = tf.cast(t + 1, tf.float32)
        penalty = self.penalty(params, l1, l2)
        new_params, new_slots = {}, {}
        for name, pair in params.items():
            i = self.arch.rate_index(name)
            updated, states = [], []
            for j, (var, grad, state) in enumerate(zip(pair, grads[name], slots[name], strict=True)):
                lr = lr3 if var.shape.rank == 3 else lr3[:, :, 0]
                if j == 0 and self.arch.l1[i]:
                    grad = grad + tf.reshape(l1[i], [-1, 1, 1]) * tf.sign(var)
                if j == 0 and self.arch.l2[i]:
                    grad = grad + tf.reshape(l2[i], [-1, 1, 1]) * (2.0 * var)
                if opt == "sgd":
                    updated.append(var - grad * lr)
                    states.append(())
                elif opt == "rmsprop":
                    v = _RHO * state[0] + (1 - _RHO) * tf.square(grad)
                    updated.append(var - (lr * grad) / tf.sqrt(v + _EPSILON))
                    states.append((v,))
                else:
                    if opt == "adamw":  # Keras decays before the Adam step
                        var = var - var * _WEIGHT_DECAY * lr
                    alpha = lr * tf.sqrt(1 - tf.pow(_BETA_2, local_step)) / (1 - tf.pow(_BETA_1, local_step))
                    m = state[0] + (grad - state[0]) * (1 - _BETA_1)
                    v = state[1] + (tf.square(grad) - state[1]) * (1 - _BETA_2)
                    updated.append(var - (m * alpha) / (tf.sqrt(v) + _EPSILON))
                    states.append((m, v))
            live = tf.reshape(active, [-1, 1, 1])
            new_params[name] = tuple(tf.where(live if new.shape.rank == 3 else live[:, :, 0], new, old)
                                     for new, old in zip(updated, pair, strict=True))
            new_slots[name] = tuple(tuple(tf.where(live if a.shape.rank == 3 else live[:, :, 0], a, b)
                                          for a, b in zip(new_state, old_state, strict=True))
                                    for new_state, old_state in zip(states, slots[name], strict=True))
        return penalty, new_params, new_slots


_GRAPHS: dict[_Arch, _Graph] = {}


def _graph(arch: _Arch) -> _Graph:
    if arch not in _GRAPHS:
        _GRAPHS[arch] = _Graph(arch)
    return _GRAPHS[arch]


def _select(tree: dict, where: Any) -> dict:
    """Keeps the runs at positions `where` in every stacked tensor of a nested dict of tuples."""
    import tensorflow as tf

    def pick(v: Any) -> Any:
        return tuple(pick(x) for x in v) if isinstance(v, tuple) else tf.gather(v, where)

    return {name: pick(v) for name, v in tree.items()}


def _where(mask: np.ndarray, new: Params, old: Params) -> Params:
    """`new` for the runs where `mask` is true, `old` elsewhere."""
    import tensorflow as tf

    m = tf.constant(mask)
    return {name: tuple(tf.where(tf.reshape(m, [-1] + [1] * (a.shape.rank - 1)), a, b)
                        for a, b in zip(new[name], old[name], strict=True)) for name in new}


# -- a pack, start to end ---------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def keras_batch_order(seed: int, n: int) -> np.ndarray:
    """The sample order of `model.fit(shuffle=True)` on `n` samples under
    `keras.utils.set_random_seed(seed)`.

    Keras 3's array data adapter draws it inside a `tf.data` map function, with the same two
    ops as here (so the same op seed under the same global seed); on TensorFlow it draws it
    once per `fit` and repeats it every epoch, and batches are cut from it in order. A test
    checks this against what `model.fit` feeds its train step.
    """
    import tensorflow as tf

    tf.random.set_seed(seed)

    def permutation(_: tf.Tensor) -> tf.Tensor:
        indices = tf.range(n, dtype=tf.int64)
        return tf.random.shuffle(indices)

    order = next(iter(tf.data.Dataset.range(1).map(permutation))).numpy().astype(np.int32)
    order.flags.writeable = False
    return order


def _initial_weights(run: RunSpec, data: Dataset, layers: list[str]) -> tuple[dict, list[str], int]:
    """The weights the Keras builder gives under the run's seed (built as the keras engine
    builds them), the kernel layers in Keras's order, and the parameter count."""
    import keras

    from mlreg.models import build_model
    from mlreg.regularizers import kernel_layers

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(run.seed)
    model = build_model(run, data)
    weights = {name: (model.get_layer(name).kernel.numpy(), model.get_layer(name).bias.numpy()) for name in layers}
    return weights, [layer.name for layer in kernel_layers(model)], int(model.count_params())


def _rates(value: float | tuple[float, ...], n: int) -> list[float]:
    return list(value) if isinstance(value, tuple) else [float(value)] * n


def _chunk(k: int, arch: _Arch, n_features: int) -> int:
    widest = max(*arch.hidden, n_features)
    return 1 << max(4, int(math.log2(max(EVAL_ELEMENTS // (widest * k), 1))))


def train_pack(runs: Sequence[RunSpec], data: Dataset) -> Iterator[RunResult]:
    """Trains the runs of a pack in one graph, yielding each run's record as soon as it ends
    (early stopping, divergence, or the last epoch). If the pack itself fails, its unfinished
    runs are `failed` with the message."""
    t0 = time.perf_counter()
    done: set[str] = set()
    try:
        for result in _train(list(runs), data):
            done.add(result.run_id)
            yield result
    except Exception as e:  # noqa: BLE001 - a failed pack fails its runs, the sweep goes on
        share = (time.perf_counter() - t0) / max(len(runs) - len(done), 1)
        for run in runs:
            if run.run_id not in done:
                yield failed(run, e, engine=NAME, backend="tensorflow", duration_s=share)


def _train(runs: list[RunSpec], data: Dataset) -> Iterator[RunResult]:
    import tensorflow as tf

    t_start = time.perf_counter()
    m, tr, es = runs[0].model, runs[0].training, runs[0].early_stopping
    n_rates = len(m.hidden) + 1
    l1s = np.array([_rates(r.model.l1, n_rates) for r in runs], np.float32).T  # [layer, K]
    l2s = np.array([_rates(r.model.l2, n_rates) for r in runs], np.float32).T
    n = len(data.x_train)
    layers = dense_layers(m.builder, m.hidden)
    inits = [_initial_weights(r, data, layers) for r in runs]
    kernel_names, n_params = inits[0][1], inits[0][2]
    steps = math.ceil(n / tr.batch_size) * tr.epochs
    arch = _Arch(m.builder, tuple(m.hidden), m.activation, data.task, tr.optimizer, tr.batch_size,
                 any(r.model.dropout > 0 for r in runs), tuple(bool(v) for v in l1s.any(1)),
                 tuple(bool(v) for v in l2s.any(1)),
                 use_xla(len(runs), n_params, steps, any(r.early_stopping.enabled for r in runs)))
    graph = _graph(arch)
    params: Params = {name: tuple(tf.constant(np.stack([w[name][j] for w, _, _ in inits])) for j in (0, 1))
                      for name in layers}
    slots = {name: tuple(tuple(tf.zeros_like(v) for _ in range(_SLOTS[tr.optimizer])) for v in pair)
             for name, pair in params.items()}
    per_run = {  # per-run settings, stacked like the weights (rates: [layer, K])
        "lr": tf.constant([r.training.learning_rate for r in runs], tf.float32),
        "l1": tf.constant(l1s),
        "l2": tf.constant(l2s),
        "rate": tf.constant([r.model.dropout for r in runs], tf.float32),
        "seeds": tf.constant([r.seed for r in runs], tf.int64),
        "order": tf.constant(np.stack([keras_batch_order(r.seed, n) for r in runs])),
    }
    x, y = tf.constant(data.x_train), tf.constant(data.y_train)
    x_val, y_val = tf.constant(data.x_val), tf.constant(data.y_val)
    chunk = _chunk(len(runs), arch, data.n_features)
    rule = StopRule([r.early_stopping.patience for r in runs], [r.early_stopping.min_delta for r in runs],
                    [r.early_stopping.enabled for r in runs], monitor_mode(es.monitor))
    restore = [es.restore_best_weights and r.early_stopping.enabled for r in runs]
    metric = metric_names(data.task)[0]
    columns = {"metric": metric, "val_metric": f"val_{metric}", "train_metric": f"train_{metric}"}  # history's names
    histories: list[list[dict[str, Any]]] = [[] for _ in runs]
    spent = np.full(len(runs), (time.perf_counter() - t_start) / len(runs))  # each run's share of wall time
    alive = np.arange(len(runs))  # pack position -> run index
    best, step = params, tf.constant(0, tf.int64)

    def record(j: int, pos: int, kept: Params, stopped: bool) -> RunResult:
        t0 = time.perf_counter()
        kernels = {name: kept[name][0][pos].numpy() for name in kernel_names}
        test = None
        if data.x_test is not None and not diverged_at(histories[j][-1]):
            one = _select(kept, [pos])
            values = graph.measure(one, tf.constant(data.x_test), tf.constant(data.y_test), chunk)
            test = {"data_loss": float(values["data_loss"][0]), metric: float(values["metric"][0])}
        spent[j] += time.perf_counter() - t0
        return finish(runs[j], engine=NAME, backend="tensorflow", task=data.task, history=histories[j],
                      best=int(rule.best_epoch[j]) if runs[j].early_stopping.enabled else None,
                      restored=restore[j], stopped=stopped, kernels=kernels, test=test, n_params=n_params,
                      duration_s=float(spent[j]), n_train=n, n_val=len(data.x_val))

    active = np.ones(len(runs), dtype=bool)  # positions still training; the others are frozen padding
    for epoch in range(tr.epochs):
        if STOP.is_set():
            raise KeyboardInterrupt
        t0 = time.perf_counter()
        params, slots, step, out = graph.epoch(params, slots, step, tf.constant(active), per_run["lr"],
                                               per_run["l1"], per_run["l2"], per_run["rate"], per_run["seeds"],
                                               per_run["order"], x, y, x_val, y_val, chunk)
        values = {name: v.numpy().astype(np.float64).tolist() for name, v in out.items()}
        values["val_loss"] = [v + p for v, p in zip(values["val_data_loss"], values["penalty"], strict=True)]
        values["lr"] = per_run["lr"].numpy().astype(np.float64).tolist()
        live = np.flatnonzero(active)
        share = (time.perf_counter() - t0) / len(live)
        rows = [{"run_id": runs[alive[pos]].run_id, "epoch": epoch + 1,
                 **{columns.get(name, name): v[pos] for name, v in values.items()}, "epoch_time_s": share}
                for pos in live]
        for row, pos in zip(rows, live, strict=True):
            histories[alive[pos]].append(row)
        spent[alive[live]] += share
        diverged = np.array([diverged_at(row) for row in rows])
        improved_live, stop = rule.update(epoch, [row.get(es.monitor, np.nan) for row in rows], alive[live])
        if any(restore):
            improved = np.zeros(len(active), dtype=bool)
            improved[live] = improved_live
            best = _where(improved, params, best)
        ending = diverged | stop | (epoch == tr.epochs - 1)
        for i in np.flatnonzero(ending):
            pos, j = int(live[i]), int(alive[live[i]])
            yield record(j, pos, best if restore[j] else params, bool(stop[i] and not diverged[i]))
        active[live[ending]] = False
        n_active = int(active.sum())
        if n_active == 0:
            return
        if n_active <= len(active) // 2:  # compact, to a power of two so that XLA compiles few sizes
            size = 1 << (n_active - 1).bit_length()
            keep = np.concatenate([np.flatnonzero(active), np.flatnonzero(~active)[: size - n_active]])
            where = tf.constant(keep)
            params, slots, best = _select(params, where), _select(slots, where), _select(best, where)
            per_run = {name: tf.gather(v, where, axis=1 if name in ("l1", "l2") else 0)
                       for name, v in per_run.items()}
            alive, active = alive[keep], active[keep]

_SLOTS = {"sgd": 0, "rmsprop": 1, "adam": 2, "adamw": 2}
