"""A results directory read back as pandas DataFrames (`load_results`), and what a notebook
shows of it. Pandas only: never TensorFlow, JAX or Keras. Damaged lines are named by the same
check the store applies when it resumes (`mlreg.store.parse`)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlreg.records import HISTORY, RUNS, STATUSES, TIMING_COLUMNS, TIMINGS, WEIGHT_COLUMNS, WEIGHTS, default_metric
from mlreg.spec import InputError
from mlreg.store import MANIFEST, SPEC, StoreError, parse, read_decisions

if TYPE_CHECKING:
    import pandas as pd


class ResultsError(InputError):
    """A folder is not a results directory, or one of its files is damaged."""


@dataclass(frozen=True)
class Results:
    """A results directory as pandas DataFrames.

    Attributes:
        root: the directory.
        runs: one row per run (`runs.csv`).
        history: one row per (run_id, epoch) (`history.csv`).
        weights: final kernel-weight histograms (`weights.csv`).
        params: the swept parameters (from `manifest.json`), e.g. `["l2"]`.
        manifest: the manifest as a dict.
        spec_toml: the experiment as run.
        answer: a search's answer (the last one it logged in `search.jsonl`), else `None`.
    """

    root: Path
    runs: pd.DataFrame
    history: pd.DataFrame
    weights: pd.DataFrame
    params: list[str]
    manifest: dict[str, Any]
    spec_toml: str
    answer: dict[str, Any] | None = None
    keep: Any = field(default=None, repr=False, compare=False)  # the temporary directory of `mlreg.sweep`

    def save(self, path: str | os.PathLike[str]) -> Results:
        """Copies the results directory to `path` (which must not exist yet) and returns it
        loaded from there (`mlreg.sweep` without `out` writes to a temporary directory that
        lives as long as its `Results`)."""
        import shutil

        shutil.copytree(self.root, path)
        return load_results(path)

    @property
    def name(self) -> str:
        return str(self.manifest.get("experiment") or self.root.name)

    def __repr__(self) -> str:
        """`Results('results/l2_rate': 180 runs (180 ok); swept: l2)`: what the directory holds,
        in one line (the DataFrames are its attributes)."""
        statuses = ", ".join(f"{n} {s}" for s, n in self.runs["status"].value_counts().items()) if len(self.runs) \
            else "no runs"
        return (f"Results({str(self.root)!r}: {len(self.runs)} runs ({statuses}); "
                f"swept: {', '.join(self.params) or 'nothing'})")

    def _repr_html_(self) -> str:
        """In a notebook: what the directory holds, and each setting's metric over seeds (the
        metric `compare` ranks by, named)."""
        import html

        from mlreg.analysis.aggregate import over_seeds

        statuses = ", ".join(f"{n} {s}" for s, n in self.runs["status"].value_counts().items()) or "no runs"
        head = (f"<p><b>{html.escape(self.name)}</b> ({html.escape(str(self.root))}): {len(self.runs)} runs "
                f"({statuses}); swept: {html.escape(', '.join(self.params) or 'nothing')}</p>")
        ok = self.runs[self.runs["status"] == "ok"]
        metric = default_metric([c for c in ok if ok[c].notna().any()])
        if ok.empty or metric not in ok:
            return head
        by = [p for p in self.params if p in ok] or ["status"]
        table = over_seeds(ok, by, [metric])[metric].rename(columns={"count": "n"})
        caption = f"<p>{html.escape(metric)} over seeds, per setting:</p>"
        return head + caption + table.to_html(float_format=lambda v: f"{v:.4g}", border=0)


def _varying_params(runs: pd.DataFrame) -> list[str]:
    """The parameter columns of `runs.csv` (between `seed` and `engine`) that take more than
    one value: the swept parameters, when `manifest.json` is missing."""
    from mlreg.records import columns

    summary = {c for task in ("single_label", "regression") for c in columns(task, [], has_test=True)[RUNS]}
    cols = list(runs.columns)
    start = cols.index("seed") + 1
    end = next((i for i in range(start, len(cols)) if cols[i] in summary), len(cols))
    return [c for c in cols[start:end] if runs[c].nunique(dropna=False) > 1]


def _with_timings(runs: pd.DataFrame, history: pd.DataFrame,
                  timings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`runs` with `duration_s` and `history` with `epoch_time_s` from `timings.csv` (where
    mlreg 0.3 wrote them inline, those values stay)."""
    whole = timings[timings["epoch"].isna()].drop_duplicates("run_id", keep="last").set_index("run_id")["seconds"]
    epochs = timings[timings["epoch"].notna()].drop_duplicates(["run_id", "epoch"], keep="last")
    per_epoch = epochs.set_index(["run_id", epochs["epoch"].astype(int)])["seconds"]
    keys = list(zip(history["run_id"], history["epoch"], strict=True))
    inline = runs["duration_s"] if "duration_s" in runs else None
    runs = runs.assign(duration_s=runs["run_id"].map(whole))
    if inline is not None:
        runs["duration_s"] = runs["duration_s"].fillna(inline)
    inline = history["epoch_time_s"] if "epoch_time_s" in history else None
    history = history.assign(epoch_time_s=per_epoch.reindex(keys).to_numpy() if len(keys) else [])
    if inline is not None:
        history["epoch_time_s"] = history["epoch_time_s"].fillna(inline)
    return runs, history


def _checked(runs: pd.DataFrame, path: Path) -> pd.DataFrame:
    """`runs.csv` as the store promises it (see `ResultsStore._check_runs`): statuses mlreg
    writes, one line a run (an exact duplicate read once); else a `ResultsError` naming the line
    (line 1 is the header)."""
    unknown = runs.index[~runs["status"].isin(STATUSES)]
    if len(unknown):
        i = unknown[0]
        raise ResultsError(f"{path}: damaged file: line {i + 2} has status {runs['status'][i]!r}, which mlreg never "
                           f"writes ({', '.join(STATUSES)}); repair or remove that line")
    repeated = runs.index[runs["run_id"].duplicated()]
    if len(repeated):
        i = repeated[0]
        twins = runs[runs["run_id"] == runs["run_id"][i]]
        if len(twins.astype(str).drop_duplicates()) > 1:
            raise ResultsError(f"{path}: damaged file: line {i + 2} repeats run {runs['run_id'][i]} of line "
                               f"{twins.index[0] + 2} with other values; remove one of the two lines")
        runs = runs.drop_duplicates("run_id").reset_index(drop=True)
    return runs


def load_results(root: str | os.PathLike[str]) -> Results:
    """Reads a results directory.

    Args:
        root: a directory written by `mlreg run`.

    Returns:
        `Results` with `.runs`, `.history` and `.weights` DataFrames. History and
        weight rows of runs that never finished (a crash) are left out.

    Raises:
        ResultsError: not a results directory, or a damaged file (named, with the line).

    Example:
        >>> res = load_results("results/l2_rate")  # doctest: +SKIP
        >>> res.runs.groupby("l2").best_val_data_loss.mean()  # doctest: +SKIP
    """
    import pandas as pd

    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"{root}: no such directory")
    if not (root / RUNS).is_file() or not (root / SPEC).is_file():
        raise ResultsError(f"{root}: not an mlreg results directory (no {RUNS} or {SPEC})")
    try:
        manifest = json.loads((root / MANIFEST).read_text()) if (root / MANIFEST).exists() else {}
    except json.JSONDecodeError as e:
        raise ResultsError(f"{root / MANIFEST}: damaged JSON at line {e.lineno}: {e.msg}") from None

    def read(name: str, required: list[str]) -> pd.DataFrame:
        path = root / name
        if not path.exists():
            return pd.DataFrame(columns=required)
        raw = path.read_bytes()
        try:
            text = raw.decode()
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise ResultsError(f"{path}: damaged file: bytes that are not text at line {line}") from None
        text = text[: text.rfind("\n") + 1]  # a cut-off last line is a run still being written
        if not text:
            return pd.DataFrame(columns=required)
        try:
            frame = pd.read_csv(io.StringIO(text), keep_default_na=True, na_values=[""], low_memory=False)
        except (pd.errors.ParserError, ValueError):
            frame = None
        if frame is None or len(frame) != text.count("\n") - 1:  # a stray quote swallowed lines
            try:
                parse(path)
            except StoreError as e:
                raise ResultsError(str(e)) from None
            raise ResultsError(f"{path}: damaged file: a quote that is not closed")
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ResultsError(f"{path}: damaged file: missing columns {missing} in line 1")
        return frame

    runs = _checked(read(RUNS, ["run_id", "status", "seed"]), root / RUNS)
    done = set(runs["run_id"])
    history = read(HISTORY, ["run_id", "epoch"])
    weights = read(WEIGHTS, WEIGHT_COLUMNS)
    runs, history = _with_timings(runs, history, read(TIMINGS, TIMING_COLUMNS))
    params = manifest.get("swept") if "swept" in manifest else _varying_params(runs)
    return Results(
        root=root,
        runs=runs,
        history=history[history["run_id"].isin(done)].reset_index(drop=True),
        weights=weights[weights["run_id"].isin(done)].reset_index(drop=True),
        params=list(params),
        manifest=manifest,
        spec_toml=(root / SPEC).read_text(),
        answer=next((d for d in reversed(read_decisions(root)) if d["kind"] == "answer"), None),
    )
