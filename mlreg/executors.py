"""Where packs run. An executor moves the packs an engine made to where they train and
gives back each run's `RunResult`; it never writes files (the store does, in the driver). Every
executor is a function `packs -> Iterator[RunResult]` that `make` returns for the arguments of
`mlreg run`.

- `inline`: one pack after another in this process, each run's record as its run ends; packs
  that only the keras engine trains go, past a few, to a recycled worker process (Keras grows a
  few MB per model in one process).
- `process`: N worker processes on this machine (spawned, Keras imported in the workers on the
  driver's backend, threads split between them, each worker recycled after a few packs so that
  Keras's per-model memory growth stays bounded, each ending itself when the driver is gone).
  A worker that dies (SIGKILL, out of memory) loses only its pack: the pack is retried once in a
  fresh worker, which is said on stderr, then its runs are `failed` with the reason.
- `dask`: an existing Dask cluster (`tcp://scheduler:8786`, or a `distributed.Client`), or a
  `LocalCluster` started for the sweep. Workers load each data set once and keep it.

Tasks sent to other processes are module-level functions with picklable arguments.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mlreg import engines, memory
from mlreg.backend import choose_backend, import_keras
from mlreg.data import for_run
from mlreg.signals import STOP
from mlreg.spec import InputError

if TYPE_CHECKING:
    from mlreg.engines import Pack
    from mlreg.records import RunResult

Executor = Callable[[Iterable["Pack"]], Iterator["RunResult"]]
"""Trains packs somewhere and yields each run's record as it ends."""

RETRIES = 1
"""A pack whose worker died is trained again this many times before its runs are `failed`."""

RECYCLE_AFTER = 8
"""A process worker is replaced by a fresh one after this many packs (bounded memory)."""

KERAS_INLINE = 4
"""Runs trained by the keras engine in the driver itself at most: the rest go to a worker process
recycled every `RECYCLE_AFTER` packs, so that Keras's growth per model stays bounded."""

POLL_S = 0.2
"""How often a waiting driver looks whether Ctrl-C or SIGTERM asked it to stop."""


class ExecutorError(InputError):
    """An executor cannot be used as asked (a missing optional package, a bad address)."""


def make(workers: int | None = None, dask: Any = None, say: Callable[[str], None] | None = None) -> Executor:
    """The executor for `mlreg run`'s arguments: Dask (`dask` an address, `"local"` or a
    `distributed.Client`), `workers` processes, or this process.

    Raises:
        ExecutorError: `workers` below 1, or Dask asked for and not installed; before
            anything is trained.
    """
    say = say or (lambda text: print(f"mlreg: {text}", file=sys.stderr))
    if workers is not None and workers < 1:
        raise ExecutorError(f"Invalid value for `workers`: expected a count >= 1. Received: workers={workers}")
    if dask is not None:
        require_dask()
        where = {"client": dask} if not isinstance(dask, str) else {"address": dask}
        return lambda packs: _dask(packs, workers=workers or 2, say=say, **where)
    if workers is not None and workers > 1:
        return lambda packs: process(packs, workers=workers, say=say)
    return lambda packs: inline(packs, say=say)


def inline(packs: Iterable[Pack], say: Callable[[str], None] | None = None) -> Iterator[RunResult]:
    """Trains each pack here, yielding each record as its run ends; packs of the keras engine
    beyond `KERAS_INLINE` runs go to a recycled worker process."""
    packs = list(packs)
    keras_runs = sum(len(p.runs) for p in packs if p.engine == "keras")
    here = [p for p in packs if p.engine == "fused" or keras_runs <= KERAS_INLINE]
    for pack in here:
        yield from engines.train(pack, for_run(pack.runs[0]))
    rest = [p for p in packs if p not in here]
    if rest:
        yield from process(rest, workers=1, say=say)


# -- what a worker runs ---------------------------------------------------------------------
def setup_worker(threads: int, backend: str | None = None, driver: int | None = None) -> None:
    """Prepares a worker process: Ctrl-C is the driver's business; the worker ends itself when
    the `driver` process is gone, however it died; Keras is imported on the driver's backend
    with TensorFlow's log lines silenced and `threads` threads, so that the workers of one
    machine do not oversubscribe its cores."""
    if threading.current_thread() is threading.main_thread():  # a Dask worker runs tasks in a thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if driver is not None:
        threading.Thread(target=_end_without, args=(driver,), daemon=True, name="mlreg-driver-watch").start()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if threads == 1 and "jax" not in sys.modules:  # XLA's CPU thread pool, for the JAX backend
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()
    choose_backend(backend)
    if import_keras().backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised in this process (a reused Dask worker)
        pass


def train_pack_task(pack: Pack, objects: bytes | None = None) -> list[RunResult]:
    """A worker's task: trains one pack and returns its records (a run that raises is a
    `failed` record; nothing is written). `objects`: the Python objects in memory its runs
    name (a notebook's builder, arrays: `mlreg.memory`), pickled by `memory.shipped`."""
    if objects is not None:
        import cloudpickle

        memory.restore(cloudpickle.loads(objects))
    return list(engines.train(pack, for_run(pack.runs[0])))


def _objects(pack: Pack) -> bytes | None:
    objects = memory.needed(pack.runs)
    return memory.shipped(objects) if objects else None


_SET_UP: set[int] = set()


def _end_without(driver: int) -> None:
    """Ends this process within a second of its driver's end (a SIGKILL leaves no chance to
    tell it): the worker is re-parented, its parent id changes."""
    while os.getppid() == driver:
        time.sleep(1.0)
    os._exit(1)


def dask_task(pack: Pack, threads: int, backend: str, objects: bytes | None = None) -> list[RunResult]:
    """`train_pack_task` for a Dask worker, which sets itself up on its first pack (on the
    driver's backend)."""
    if os.getpid() not in _SET_UP:
        setup_worker(threads, backend)
        _SET_UP.add(os.getpid())
    return train_pack_task(pack, objects)


def _died(pack: Pack, attempts: int, why: str) -> list[RunResult]:
    return _failed(pack, f"the worker training this pack died {attempts} time{'s' * (attempts != 1)} ({why})")


def _failed(pack: Pack, error: BaseException | str) -> list[RunResult]:
    from mlreg.records import failed

    return [failed(run, error, engine=pack.engine, backend=choose_backend(), duration_s=0.0) for run in pack.runs]


def _threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


# -- a pool of processes on this machine ---------------------------------------------------
def process(packs: Iterable[Pack], *, workers: int = 2, recycle_after: int = RECYCLE_AFTER,
            say: Callable[[str], None] | None = None) -> Iterator[RunResult]:
    """Trains packs in `workers` spawned processes, yielding each pack's records as it ends.

    Each worker is a one-process pool of its own, so a worker that dies takes down only the
    pack it was training, which is then retried (`RETRIES`) in a fresh worker.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = _threads(workers)
    say = say or (lambda text: print(f"mlreg: {text}", file=sys.stderr))

    def pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=setup_worker,
                                   initargs=(threads, choose_backend(), os.getpid()),
                                   max_tasks_per_child=recycle_after)

    pools = [pool() for _ in range(workers)]
    queue: deque[Pack] = deque(packs)
    attempts: Counter[int] = Counter()
    running: dict[Any, tuple[int, Pack]] = {}
    try:
        while queue or running:
            for slot in set(range(workers)) - {s for s, _ in running.values()}:
                if queue:
                    pack = queue.popleft()
                    running[pools[slot].submit(train_pack_task, pack, _objects(pack))] = (slot, pack)
            done, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
            if STOP.is_set():
                raise KeyboardInterrupt
            for future in done:
                slot, pack = running.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    pools[slot] = pool()
                    attempts[id(pack)] += 1
                    if attempts[id(pack)] <= RETRIES:
                        say(f"a worker died (killed, or out of memory) while training a pack of {len(pack.runs)} "
                            f"run{'s' * (len(pack.runs) != 1)}; training it again in a fresh worker")
                        queue.appendleft(pack)
                        continue
                    results = _died(pack, attempts[id(pack)], "killed, or out of memory")
                yield from results
    finally:
        for p in pools:
            _terminate(p)


def _terminate(pool: Any) -> None:
    """Stops a process pool now, killing a worker in the middle of a pack (its pack was not
    recorded and will be trained again on the next run). Its manager thread is then joined and
    taken off the list `concurrent.futures` wakes at interpreter exit: woken there after the
    kill, it wrote to a closed pipe and printed 'Exception ignored in: <module threading>' with
    a traceback after a Ctrl-C (seen once in four runs of the suite, under load)."""
    from concurrent.futures import process as futures_process

    processes = list(getattr(pool, "_processes", {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    # A worker that reached `max_tasks_per_child` and exits now makes the manager thread start a
    # replacement in the pool shut down here (`_processes` is then None): "TypeError: object of
    # type 'NoneType' has no len()" in a thread traceback (issue 35.5; 6 of 6 tries in the test).
    pool._adjust_process_count = lambda: None
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.kill()
    for p in processes:
        p.join(timeout=10)
    if manager is not None:
        manager.join(timeout=10)
        if not manager.is_alive():
            getattr(futures_process, "_threads_wakeups", {}).pop(manager, None)


# -- a Dask cluster -------------------------------------------------------------------------
def require_dask() -> None:
    """Refuses, with the install line, when `dask.distributed` is missing (an optional extra)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ExecutorError("the dask executor needs dask.distributed: pip install 'mlreg[dask]'") from None


def _dask(packs: Iterable[Pack], *, address: str | None = None, client: Any = None, workers: int = 2,
          say: Callable[[str], None] | None = None) -> Iterator[RunResult]:
    """Trains packs on a Dask cluster, yielding each pack's records as it ends, in any order.

    Args:
        packs: the packs.
        address: a scheduler's address (`tcp://host:8786`), or `"local"` / `None` for a
            `LocalCluster` of `workers` processes started here and closed at the end (a
            pack whose worker dies is retried once there: `allowed-failures = 1`). On a
            cluster of yours, the scheduler's own `distributed.scheduler.allowed-failures`
            decides (3 by default). Defaults to `None`.
        client: a `distributed.Client` to use instead of an address. Defaults to `None`.
        workers: workers of the local cluster. Defaults to `2`.

    Raises:
        ExecutorError: `dask.distributed` is not installed, or the scheduler cannot be reached.
    """
    require_dask()
    import dask as dask_module
    from distributed import Client, KilledWorker, LocalCluster, as_completed

    cluster, futures = None, {}
    own_client = client is None
    try:
        if client is None and address in (None, "local"):
            with dask_module.config.set({"distributed.scheduler.allowed-failures": RETRIES}):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
            client = Client(cluster)
        elif client is None:
            try:
                client = Client(address, timeout="10s")
            except OSError as e:
                raise ExecutorError(f"Invalid value for `dask`: cannot reach the scheduler ({e}). "
                                    f"Received: dask={address!r}") from None
        n_workers = len(client.scheduler_info()["workers"]) or workers
        threads = _threads(n_workers) if cluster is not None else 1
        backend = choose_backend()
        futures = {client.submit(dask_task, pack, threads, backend, _objects(pack),
                                 key=f"mlreg-pack-{uuid.uuid4().hex}", pure=False): pack for pack in packs}
        pending = as_completed(futures)
        known = set(client.scheduler_info()["workers"])
        while not pending.is_empty():
            if STOP.is_set():
                raise KeyboardInterrupt
            if not pending.has_ready():
                time.sleep(POLL_S)
                now = set(client.scheduler_info()["workers"])
                if known - now and say is not None:
                    say(f"{len(known - now)} Dask worker{'s' * (len(known - now) != 1)} left or died; "
                        "Dask trains its packs again elsewhere")
                known = now
                continue
            for future in pending.next_batch(block=False):
                pack = futures.pop(future)
                if future.status != "error":
                    yield from future.result()
                elif isinstance(future.exception(), KilledWorker):
                    yield from _died(pack, RETRIES + 1, f"KilledWorker: {future.exception()}")
                else:
                    yield from _failed(pack, future.exception())
    finally:
        if client is not None:
            client.cancel(list(futures), force=True)
            if own_client:
                client.close()
        if cluster is not None:
            cluster.close()


