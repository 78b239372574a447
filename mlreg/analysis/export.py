"""Results in TensorBoard: each run's per-epoch scalars and its parameters as HParams.

Written with the `tensorboard` package's own event writer and HParams protos (pure Python:
no TensorFlow needed). TensorBoard no longer comes with TensorFlow 2.21, so it is an
optional extra: `pip install 'mlreg[tensorboard]'`. Then `tensorboard --logdir LOGDIR` shows
the sweep in its Scalars and HParams dashboards.
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlreg.analysis.compare import as_list, combined_runs, experiment_names
from mlreg.spec import InputError, label

if TYPE_CHECKING:
    from mlreg.analysis.results import Results

SUMMARY_METRICS = ("best_val_data_loss", "train_data_loss_at_best", "gap", "val_accuracy_at_best", "val_mae_at_best",
                   "test_data_loss", "test_accuracy", "test_mae", "sparsity", "weight_l2", "epochs_run")
"""`runs.csv` columns shown as HParams metrics (those a results directory has)."""


class ExportError(InputError):
    """An export cannot be made (a missing optional package)."""


def _value(v: Any) -> Any:
    """A parameter value as HParams takes it: bool, int, float or str (`None` for a missing one)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    return v if isinstance(v, bool | int | float | str) else str(v)


def _folders(runs: Any, params: list[str]) -> dict[str, str]:
    """Each run's TensorBoard folder: its setting and seed (and split, fold), as TensorBoard lists
    them (`l2=0.001,seed=3`); the run id is added where two runs would share a name."""
    names = {}
    for _, run in runs.iterrows():
        parts = [(p, run.get(p)) for p in params + ["seed", "split", "fold"] if p in run]
        names[run["run_id"]] = ",".join(f"{p}={label(v)}" for p, v in parts if _value(v) is not None) or run["run_id"]
    repeated = {n for n in names.values() if list(names.values()).count(n) > 1}
    return {rid: f"{n},{rid}" if n in repeated else n for rid, n in names.items()}


def tensorboard(results: Results | Sequence[Results], logdir: str | Path) -> Path:
    """Writes one TensorBoard run per mlreg run under `logdir`: its history as scalars (one tag
    per column, step = epoch) and its swept parameters and seed as HParams, with the
    summary columns of `runs.csv` as the HParams metrics.

    Args:
        results: one `Results` or a list.
        logdir: the TensorBoard log directory.

    Returns:
        The log directory.

    Raises:
        ExportError: the `tensorboard` package is not installed.
    """
    if "tensorflow" not in sys.modules:  # TensorBoard's own stub of TensorFlow, its `no_tensorflow` mode
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import summary_v2 as hp
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise ExportError("export to TensorBoard needs the tensorboard package: pip install 'mlreg[tensorboard]'") \
            from None
    logdir = Path(logdir)
    items = as_list(results)
    runs, params = combined_runs(results)
    params = [p for p in params if p != "experiment"] + ["seed"]
    metrics = [m for m in SUMMARY_METRICS if m in runs and runs[m].notna().any()]
    now = time.time()

    def write(path: Path, summaries: list[tuple[int, Any]]) -> None:
        writer = EventFileWriter(str(path))
        for step, summary in summaries:
            writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=summary))
        writer.close()

    def scalar(tag: str, value: float) -> Any:
        return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])

    write(logdir, [(0, hp.hparams_config_pb(hparams=[hp.HParam(p) for p in params],
                                            metrics=[hp.Metric(m) for m in metrics]))])
    for res, name in zip(items, experiment_names(items), strict=True):
        history = dict(tuple(res.history.groupby("run_id")))
        folders = _folders(res.runs, [p for p in params if p != "seed"])
        for _, run in res.runs.iterrows():
            folder = folders[run["run_id"]]
            path = logdir / name / folder if len(items) > 1 else logdir / folder
            values = {p: _value(run.get(p)) for p in params}
            events: list[tuple[int, Any]] = [(0, hp.hparams_pb({p: v for p, v in values.items() if v is not None},
                                                              trial_id=str(run["run_id"]), start_time_secs=now))]
            events += [(0, scalar(m, run[m])) for m in metrics if isinstance(_value(run.get(m)), int | float)]
            rows = history.get(run["run_id"])
            for row in [] if rows is None else rows.to_dict("records"):
                events += [(int(row["epoch"]), scalar(col, v)) for col, v in row.items()
                           if col not in ("run_id", "epoch") and isinstance(_value(v), int | float)
                           and not isinstance(_value(v), bool)]
            write(path, events)
    return logdir
