"""The results directory: the only module that writes result files.

```
results/<name>/
  spec.toml      the experiment as run (resolved, with defaults)
  manifest.json  versions, git commit, start time, host, swept parameters
  runs.csv       one row per run          (the commit record of a run)
  history.csv    one row per (run_id, epoch)
  weights.csv    final kernel-weight histograms
```

A run's rows are appended when it ends, each file in one `write` on an
`O_APPEND` descriptor: history and weights first, `runs.csv` last. A run
exists once its `runs.csv` row does; rows of a run that a crash cut off before
that are dropped when the directory is opened again, and the run is trained
again (resume). Files are never rewritten in place: a repair writes a new file
and renames it over the old one.

Reading (`load_results`) needs pandas only, never TensorFlow.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlreg.records import HISTORY, RUNS, WEIGHT_COLUMNS, WEIGHTS

if TYPE_CHECKING:
    import pandas as pd

    from mlreg.records import RunResult

SPEC, MANIFEST = "spec.toml", "manifest.json"


class StoreError(ValueError):
    """The output directory cannot be used as asked (the CLI exits with code 2)."""


class ResultsError(ValueError):
    """A folder is not a results directory, or one of its files is damaged."""


class ResultsStore:
    """Owns one results directory for writing. Use `ResultsStore.open(...)`."""

    def __init__(self, root: Path, columns: dict[str, list[str]], lock_fd: int) -> None:
        self.root, self.columns, self._lock_fd = root, columns, lock_fd

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        spec_toml: str,
        manifest: dict[str, Any],
        columns: dict[str, list[str]],
        fresh: bool = False,
    ) -> ResultsStore:
        """Opens (creating or resuming) the results directory of an experiment.

        Args:
            root: the directory.
            spec_toml: the resolved experiment; a directory holding another one is refused.
            manifest: written to `manifest.json` when the directory is created.
            columns: the header of each CSV file (`runs.csv`, `history.csv`, `weights.csv`).
            fresh: move an existing directory aside (to `<root>.old-<time>`) and start anew.
                Nothing is ever deleted. Defaults to `False`.

        Raises:
            StoreError: the directory holds another experiment or foreign files, or
                another process is writing to it.
        """
        root = Path(root)
        if root.exists() and any(root.iterdir()):
            spec_path = root / SPEC
            same = spec_path.is_file() and spec_path.read_text() == spec_toml
            if fresh:
                aside = root.with_name(f"{root.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
                n = 1
                while aside.exists():
                    aside = aside.with_name(f"{aside.name.split('~')[0]}~{n}")
                    n += 1
                root.rename(aside)
            elif not spec_path.is_file():
                raise StoreError(f"{root} is not empty and is not an mlreg results directory; "
                                 "choose another --out")
            elif not same:
                raise StoreError(
                    f"{root} holds a different experiment (its spec.toml differs from this one); "
                    "use --fresh to move it aside and start anew, or --out to write elsewhere"
                )
        root.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(root / ".lock", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StoreError(f"another mlreg process is writing to {root}") from None
        store = cls(root, columns, lock_fd)
        if not (root / SPEC).exists():
            _write_atomic(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")
            _write_atomic(root / SPEC, spec_toml)
        store._repair()
        return store

    def close(self) -> None:
        """Releases the directory's lock."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def done(self) -> set[str]:
        """The ids of the runs already recorded."""
        return {row["run_id"] for row in _read_rows(self.root / RUNS)}

    def append(self, result: RunResult) -> None:
        """Records a finished run: its history and weights, then its `runs.csv` row."""
        self._append(HISTORY, result.history)
        self._append(WEIGHTS, result.weights)
        self._append(RUNS, [result.summary])

    # -- internals ----------------------------------------------------------------
    def _append(self, name: str, rows: list[dict[str, Any]]) -> None:
        path, columns = self.root / name, self.columns[name]
        unknown = {k for row in rows for k in row} - set(columns)
        if unknown:
            raise ValueError(f"{name}: no column for {sorted(unknown)}")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        if not path.exists() or path.stat().st_size == 0:
            writer.writeheader()
        writer.writerows(rows)
        data = buf.getvalue().encode()
        if not data:
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:  # one write for a regular file; the loop only guards short writes
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def _repair(self) -> None:
        """Checks the headers, and drops rows a crash left behind: a cut-off last line,
        and history or weight rows of runs without a `runs.csv` row."""
        for name in (RUNS, HISTORY, WEIGHTS):
            path = self.root / name
            if path.exists() and path.stat().st_size:
                header = path.open().readline().rstrip("\n").split(",")
                if header != self.columns[name]:
                    _add_columns(path, header, self.columns[name])
        _drop_rows(self.root / RUNS, keep=lambda row: True)
        done = self.done()
        for name in (HISTORY, WEIGHTS):
            _drop_rows(self.root / name, keep=lambda row: row["run_id"] in done)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _add_columns(path: Path, header: list[str], columns: list[str]) -> None:
    """Rewrites a CSV file written by an earlier version with today's columns (the new ones
    empty), atomically; refuses a file with columns this version does not know."""
    unknown = [c for c in header if c not in columns]
    if unknown:
        raise StoreError(f"{path} has columns that this version of mlreg does not write: {unknown}")
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(csv.DictReader(io.StringIO(complete)))
    _write_atomic(path, buf.getvalue())


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _drop_rows(path: Path, keep: Any) -> None:
    if not path.exists():
        return
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    lines = complete.splitlines(keepends=True)
    if not lines:
        if text:
            _write_atomic(path, "")
        return
    rows = list(csv.DictReader(io.StringIO(complete)))
    kept = [line for line, row in zip(lines[1:], rows, strict=True) if keep(row)]
    if len(kept) != len(rows) or complete != text:
        _write_atomic(path, lines[0] + "".join(kept))


# -- reading ------------------------------------------------------------------------------
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
    """

    root: Path
    runs: pd.DataFrame
    history: pd.DataFrame
    weights: pd.DataFrame
    params: list[str]
    manifest: dict[str, Any]
    spec_toml: str

    @property
    def name(self) -> str:
        return str(self.manifest.get("experiment") or self.root.name)


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
        try:
            frame = pd.read_csv(path, keep_default_na=True, na_values=[""], low_memory=False)
        except pd.errors.EmptyDataError:
            return pd.DataFrame(columns=required)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
            raise ResultsError(f"{path}: damaged CSV: {e}") from None
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ResultsError(f"{path}: damaged CSV: missing columns {missing} in line 1")
        return frame

    runs = read(RUNS, ["run_id", "status", "seed"])
    done = set(runs["run_id"])
    history = read(HISTORY, ["run_id", "epoch"])
    weights = read(WEIGHTS, WEIGHT_COLUMNS)
    return Results(
        root=root,
        runs=runs,
        history=history[history["run_id"].isin(done)].reset_index(drop=True),
        weights=weights[weights["run_id"].isin(done)].reset_index(drop=True),
        params=list(manifest.get("swept", [])),
        manifest=manifest,
        spec_toml=(root / SPEC).read_text(),
    )
