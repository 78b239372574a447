"""Results in MLflow (`mlreg export mlflow`): one parent run per results directory, one child run
per mlreg run.

The parent holds the experiment file, the manifest, the ranked table (`compare.csv`), the plots
already drawn and the HTML report as artifacts. A child holds the run's settings as params; its
seed, split, fold, draw, engine, backend, status and mlreg run id as tags; its history (`step` =
epoch: the honest losses, the penalty, metrics, weight statistics) and its summary columns as
metrics; a failed run's error as `error.txt`. Written through `MlflowClient` (no global state,
no active run). Idempotent, keyed by mlreg's run id: a child is marked complete (`mlreg.complete`)
last, and exporting again skips the complete ones and replaces the ones an interrupted export
left incomplete, so a sweep that grew, or an export cut short, is exported again safely.
MLflow is an optional extra (`pip install 'mlreg[mlflow]'`); nothing else imports it.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlreg.analysis.compare import as_list, compare
from mlreg.analysis.export import ExportError, _value
from mlreg.store import MANIFEST, SPEC

if TYPE_CHECKING:
    from mlreg.analysis.results import Results

TAGS = ("seed", "split", "fold", "draw", "engine", "backend", "status")
"""`runs.csv` columns a child run carries as tags (with `mlreg.run_id`)."""
BATCH = 1000  # MLflow's most metrics in one `log_batch`


@contextlib.contextmanager
def _fail_fast() -> Iterator[None]:
    """An unreachable server answers at once, not after MLflow's minutes of retries."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _text(v: Any) -> str | None:
    v = _value(v)
    return None if v is None else str(v)


def reach(tracking_uri: str | None) -> Any:
    """A client of the store, which answered (an unreachable one raises at once, nothing written).

    Raises:
        ExportError: MLflow is not installed, or the store cannot be reached.
    """
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ExportError("MLflow needs the mlflow package: pip install 'mlreg[mlflow]'") from None
    with _fail_fast():
        client = MlflowClient(tracking_uri)
        try:
            client.search_experiments(max_results=1)
        except Exception as e:  # noqa: BLE001 - any failure to reach the store is one line
            raise ExportError(f"Invalid value for `--tracking-uri`: cannot reach the MLflow tracking store "
                              f"{client.tracking_uri!r} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return client


def to_mlflow(results: Results | Sequence[Results], tracking_uri: str | None = None, experiment: str | None = None,
              say: Callable[[str], None] = print, refresh: bool = False) -> dict[str, int]:
    """Exports results directories to an MLflow tracking store.

    Args:
        results: one `Results` or a list.
        tracking_uri: the store: `sqlite:///mlflow.db`, `http://127.0.0.1:5000`, a folder.
            Defaults to MLflow's own default (`MLFLOW_TRACKING_URI`, else `./mlruns`).
        experiment: the MLflow experiment. Defaults to each directory's experiment name.
        say: where progress lines go.
        refresh: log the parent's files again (the table, the report) where it exists: a live
            sweep's last export. Defaults to `False`.

    Returns:
        How many child runs were `added`, already there (`kept`) and `replaced` (left
        incomplete by an export cut short).

    Raises:
        ExportError: MLflow is not installed, or the store cannot be reached (nothing written).
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    counts = {"added": 0, "kept": 0, "replaced": 0}
    client = reach(tracking_uri)
    for res in as_list(results):
        name = experiment or res.name
        found = client.get_experiment_by_name(name)
        exp_id = found.experiment_id if found is not None else client.create_experiment(name)
        root = str(Path(res.root).resolve())
        parents = client.search_runs([exp_id], f"tags.`mlreg.root` = '{root}'", max_results=1)
        parent = parents[0].info.run_id if parents else None
        if parent is None or refresh:
            parent = _parent(client, exp_id, res, root, Param, parent)
        children = {r.data.tags.get("mlreg.run_id"): r for r in client.search_runs(
            [exp_id], f"tags.`mlflow.parentRunId` = '{parent}'", max_results=50000)}
        history = dict(tuple(res.history.groupby("run_id")))
        columns = list(res.runs.columns)
        cut = columns.index("engine") if "engine" in columns else len(columns)
        params = [c for c in columns[:cut] if c not in ("run_id", *TAGS)]
        summary = [c for c in columns[cut:] if c not in (*TAGS, "error")]
        total = len(res.runs)
        for i, run in enumerate(res.runs.to_dict("records"), start=1):
            old = children.get(run["run_id"])
            if old is not None and old.data.tags.get("mlreg.complete") == "true":
                counts["kept"] += 1
                continue
            if old is not None:
                client.delete_run(old.info.run_id)
                counts["replaced"] += 1
            _child(client, exp_id, parent, run, history.get(run["run_id"]), res.params, params, summary, Metric, Param,
                   RunTag)
            counts["added"] += old is None
            if i % 50 == 0 or i == total:
                say(f"{res.name}: {i} of {total} runs in MLflow")
        try:
            client.set_terminated(parent)
        except MlflowException:
            pass
    return counts


def _parent(client: Any, exp_id: str, res: Results, root: str, Param: Any, parent: str | None) -> str:
    """The directory's parent run (made where `parent` is `None`), with its files as artifacts."""
    from mlreg.analysis.report import write

    if parent is None:
        run = client.create_run(exp_id, run_name=res.name, tags={"mlreg.root": root, "mlreg.experiment": res.name})
        parent = run.info.run_id
        client.log_batch(parent, params=[Param("swept", ",".join(res.params) or "-")])
    for name in (SPEC, MANIFEST):
        if (Path(res.root) / name).exists():
            client.log_artifact(parent, str(Path(res.root) / name))
    plots = Path(res.root) / "plots"
    if plots.is_dir():
        client.log_artifacts(parent, str(plots), "plots")
    with tempfile.TemporaryDirectory() as tmp:
        table = compare(res)
        table.to_csv(Path(tmp) / "compare.csv", index=False)
        client.log_artifact(parent, str(Path(tmp) / "compare.csv"))
        try:
            client.log_artifact(parent, str(write(res, Path(tmp) / "report.html")))
        except Exception as e:  # noqa: BLE001 - a report that cannot be drawn does not stop the export
            client.set_tag(parent, "mlreg.report_error", f"{type(e).__name__}: {e}"[:500])
    return parent


def _child(client: Any, exp_id: str, parent: str, run: dict[str, Any], history: Any, swept: list[str],
           params: list[str], summary: list[str], Metric: Any, Param: Any, RunTag: Any) -> None:
    """One mlreg run as a child run, marked complete last. A summary column that the history
    also has (`weight_l2`) is left to the history: its last epoch is the final value."""
    name = ",".join(f"{p}={v}" for p in [*swept, "seed"] if p in run and (v := _text(run[p])) is not None)
    child = client.create_run(exp_id, run_name=name or str(run["run_id"]), tags={"mlflow.parentRunId": parent,
                                                           "mlreg.run_id": str(run["run_id"])})
    cid = child.info.run_id
    tags = [RunTag(t, v) for t in TAGS if t in run and (v := _text(run[t])) is not None]
    values = [Param(p, v[:6000]) for p in params if (v := _text(run[p])) is not None]
    now = int(time.time() * 1000)
    epochs = set() if history is None else set(history.columns)
    metrics = [Metric(c, v, now, 0) for c in summary if c not in epochs and (v := _number(run[c])) is not None]
    if history is not None:
        for row in history.to_dict("records"):
            step = int(row["epoch"])
            metrics += [Metric(c, x, now, step) for c, v in row.items()
                        if c not in ("run_id", "epoch") and (x := _number(v)) is not None]
    for i in range(0, max(len(values), 1), 100):
        client.log_batch(cid, params=values[i:i + 100], tags=tags if i == 0 else [])
    for i in range(0, len(metrics), BATCH):
        client.log_batch(cid, metrics=metrics[i:i + BATCH])
    if _text(run.get("error")):
        client.log_text(cid, str(run["error"]), "error.txt")
    client.set_tag(cid, "mlreg.complete", "true")  # last: a child without it is redone
    client.set_terminated(cid, "FAILED" if run.get("status") == "failed" else "FINISHED")


class Live:
    """Logs a sweep to MLflow while it trains (`mlreg run --mlflow URI`, `mlreg.sweep(...,
    mlflow=URI)`): the store is checked before training, the runs written so far are exported
    at most every `every` seconds as records arrive (the export's own idempotence adds only the
    new ones), and everything, with the parent's table and report, when the sweep ends or stops."""

    def __init__(self, tracking_uri: str | bool, out: str | Path, every: float = 10.0) -> None:
        uri = None if tracking_uri is True else str(tracking_uri)  # True: MLflow's default store
        reach(uri)
        self.uri, self.out, self.every, self.last = uri, Path(out), every, time.monotonic()

    def tick(self, final: bool = False) -> None:
        from mlreg.analysis.results import load_results

        if not final and time.monotonic() - self.last < self.every:
            return
        if (self.out / "runs.csv").exists():
            to_mlflow(load_results(self.out), self.uri, say=lambda text: None, refresh=final)
        self.last = time.monotonic()
