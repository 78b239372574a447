"""The stack of live runs of one program: their stacked values, early-stopping counters,
batch orders and histories; an epoch for all of them; the runs that end (or pause at a rung)
taken off with the weights they keep; compaction when half of the stack has ended; paused runs
put back (resume)."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.engines.fused.order import Orders
from mlreg.engines.fused.packing import MIN_STACK, stack_size
from mlreg.engines.fused.stopping import StopRule
from mlreg.engines.fused.values import initial_state
from mlreg.records import RunResult, diverged_at, finish, metric_names, monitor_mode

if TYPE_CHECKING:
    from mlreg.data import Dataset
    from mlreg.engines.fused.introspect import Built
    from mlreg.engines.fused.program import Program
    from mlreg.spec import RunSpec

NAME = "fused"


class Stack:
    """The runs of one program in flight: their stacked values (`tv`, `ntv`, `ov` and the best
    weights so far), early-stopping counters, batch orders, histories and times, and which
    positions of the stack still train (`alive`: position -> run index)."""

    def __init__(self, program: Program, runs: list[RunSpec], builts: list[Built], data: Dataset,
                 t_start: float, resume: dict[str, dict]) -> None:
        import keras

        self.keras, self.program, self.runs, self.builts, self.data = keras, program, runs, builts, data
        pad = stack_size(len(runs)) - len(runs)  # positions that never train: the size compiled already
        self.state, self.consts = initial_state(program, builts + builts[:1] * pad, runs + runs[:1] * pad)
        self.best = {"tv": self.state["tv"], "ntv": self.state["ntv"]}
        es = runs[0].early_stopping
        self.monitor = es.monitor
        self.rule = StopRule([r.early_stopping.patience for r in runs], [r.early_stopping.min_delta for r in runs],
                             [r.early_stopping.enabled for r in runs], monitor_mode(es.monitor))
        self.restore = [es.restore_best_weights and r.early_stopping.enabled for r in runs]
        self.orders = Orders(builts + builts[:1] * pad, runs + runs[:1] * pad, len(data.x_train))
        convert = keras.ops.convert_to_tensor
        self.xy = tuple(convert(a) for a in (data.x_train, data.y_train, data.x_val, data.y_val))
        self.metric = metric_names(data.task)[0]
        self.histories: list[list[dict[str, Any]]] = [[] for _ in runs]
        self.epochs = np.zeros(len(runs), dtype=np.int64)  # epochs trained, by run
        self.spent = np.full(len(runs), (time.perf_counter() - t_start) / len(runs))  # wall time, by run
        self.alive = np.concatenate([np.arange(len(runs)), np.zeros(pad, dtype=np.int64)])
        self.active = np.arange(len(runs) + pad) < len(runs)
        self.seconds: list[float] = []  # each epoch's wall time at the present size
        if resume:
            self._resume(resume)

    def epoch(self) -> tuple[np.ndarray, np.ndarray]:
        """Trains every active run one epoch and records its row; returns, for the active
        positions, which diverged and which early stopping ends."""
        t0 = time.perf_counter()
        self.state, out = self.program.epoch(self.state, self.consts,
                                             self.keras.ops.convert_to_tensor(self.orders.next()), *self.xy)
        self.seconds.append(time.perf_counter() - t0)
        if len(self.seconds) == 2 and len(self.active) not in self.program.sizes:  # this size compiled at the first
            self.program.sizes.add(len(self.active))
            self.program.compiling = max(self.program.compiling, self.seconds[0] - self.seconds[1])
        m = self.metric
        names = {"metric": m, "train_metric": f"train_{m}", "val_metric": f"val_{m}"}
        values = {names.get(k, k): np.asarray(v, dtype=np.float64) for k, v in out.items()}
        values["val_loss"] = values.pop("val_objective") + values.pop("explicit") + values.pop("val_extra")
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
        power of two, and to `MIN_STACK`, so that few sizes compile), where that saves more time
        than it costs: a size the program has not compiled yet costs a compilation (the longest
        seen, `Program.compiling`), against the time saved over the epochs left at most."""
        n_active = int(self.active.sum())
        size = max(MIN_STACK, 1 << max(n_active - 1, 0).bit_length())
        if n_active == 0 or n_active > len(self.active) // 2 or size >= len(self.active):
            return
        if size not in self.program.sizes:
            left = self.runs[0].training.epochs - int(self.epochs[self.alive[self.active]].min())
            if left * self.seconds[-1] * (1 - size / len(self.active)) < self.program.compiling:
                return
        keep = np.concatenate([np.flatnonzero(self.active), np.flatnonzero(~self.active)[: size - n_active]])
        self.state, self.consts, self.best = _take(self.state, keep), _take(self.consts, keep), _take(self.best, keep)
        self.orders.keep(keep)
        self.alive, self.active = self.alive[keep], self.active[keep]
        self.seconds = []

    # -- internals -------------------------------------------------------------------------------
    def _weights(self) -> dict:
        return {"tv": self.state["tv"], "ntv": self.state["ntv"]}

    def _test(self, kept: dict) -> dict[str, np.ndarray] | None:
        if self.data.x_test is None:
            return None
        convert = self.keras.ops.convert_to_tensor
        measured = self.program.evaluate(kept, convert(self.data.x_test), convert(self.data.y_test), self.consts)
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
            "values": {key: [np.array(np.asarray(a)[pos]) for a in self.state[key]] for key in self.state},
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

        self.state = {key: put(self.state[key], key, "values") for key in self.state}
        self.best = {key: put(self.best[key], key, "best") for key in ("tv", "ntv")}
        for j, paused in rows.items():
            for name, value in paused["rule"].items():
                getattr(self.rule, name)[j] = value
            self.orders.restore(j, paused["order"])
            self.histories[j] = list(paused["history"])
            self.epochs[j], self.spent[j] = paused["epochs"], paused["spent"]

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


