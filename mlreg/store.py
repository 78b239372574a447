"""The results directory: the only module that writes result files.

```
results/<name>/
  spec.toml      the experiment as run (resolved, with defaults)
  manifest.json  versions, git commit, start time, host, swept parameters
  runs.csv       one row per run          (the commit record of a run)
  history.csv    one row per (run_id, epoch)
  weights.csv    final kernel-weight histograms
  timings.csv    wall times: each epoch's, and each run's (no epoch)
  sessions.jsonl where and when each `mlreg run` on the directory started
  errors/        the whole traceback of each failed run (<run_id>.txt)
```

The same sweep run twice writes the same bytes to every file but the last two (what differs
between identical runs: the clock and the machine), so that `git diff` says whether the numbers
are the same.

A run's rows are appended when it ends, each file in one `write` on an
`O_APPEND` descriptor: history, weights and timings first, `runs.csv` last. A run
exists once its `runs.csv` row does; rows of a run that a crash cut off before
that are dropped when the directory is opened again, and the run is trained
again (resume). Files are never rewritten in place: a repair writes a new file
and renames it over the old one.

Reading is `mlreg.analysis.results` (pandas only), which checks lines with `parse` as the
store does.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlreg.csvfiles import (
    SEARCH,
    StoreError,
    _add_columns,
    _drop_rows,
    _read_rows,
    _write_atomic,
    parse,
    read_curves,
    read_decisions,
)
from mlreg.records import HISTORY, RUNS, STATUSES, TIMINGS, WEIGHTS

if TYPE_CHECKING:
    from mlreg.records import RunResult, Status

SPEC, MANIFEST, ERRORS, SESSIONS = "spec.toml", "manifest.json", "errors", "sessions.jsonl"

AGAIN = "--fresh (fresh=True in Python) to move it aside and start anew, or --out (out=) to write elsewhere"
"""How a refusal says what to do instead, on the command line and in Python."""


class ResultsStore:
    """Owns one results directory for writing. Use `ResultsStore.open(...)`."""

    def __init__(self, root: Path, columns: dict[str, list[str]], lock_fd: int) -> None:
        self.root, self.columns, self._lock_fd = root, columns, lock_fd
        self.moved_aside: Path | None = None  # where `fresh` moved the old directory
        self.repairs: list[str] = []  # what opening it repaired, one line each, for the runner to say

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        spec_toml: str,
        manifest: dict[str, Any],
        columns: dict[str, list[str]],
        fresh: bool = False,
        plan: Collection[str] | None = None,
        describe_change: Callable[[str, str], str] | None = None,
        must_match: dict[str, Any] | None = None,
        assume: dict[str, Any] | None = None,
    ) -> ResultsStore:
        """Opens (creating or resuming) the results directory of an experiment.

        The directory's lock is taken before anything in it is read, moved or written, so a
        second process is refused whatever it asks; a new directory is built beside its place
        and renamed into it, so a crash never leaves a half-made one.

        Args:
            root: the directory.
            spec_toml: the resolved experiment.
            manifest: written to `manifest.json` (kept up to date when the experiment grows).
            columns: the header of each CSV file (`runs.csv`, `history.csv`, `weights.csv`).
            fresh: move an existing directory aside (to `<root>.old-<time>`) and start anew.
                Nothing is ever deleted. Defaults to `False`.
            plan: the run ids of the experiment. A directory whose `spec.toml` differs is
                taken over (its `spec.toml` and manifest rewritten) when every run it holds is
                in the plan: the experiment grew (seeds, grid values, variants) or only its
                description changed. Defaults to `None`: any difference is refused.
            describe_change: `(old spec.toml, new spec.toml) -> text` naming the fields that
                differ, for the refusal. Defaults to `None`.
            must_match: manifest entries a resumed directory must hold (`data_hash`: the data
                did not change; `backend`: the runs were trained with the same one); an entry
                the manifest lacks is added. Defaults to `None`.
            assume: what a manifest written before an entry existed held, e.g.
                `{"backend": "tensorflow"}`. Defaults to `None`.

        Raises:
            StoreError: the directory holds runs this experiment would not contain, holds
                foreign files, or another process is writing to it.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is a file, not a results directory; choose another --out (out=)")
        aside = None
        if root.exists() and any(root.iterdir()):
            if not (root / SPEC).is_file():
                if not fresh:
                    raise StoreError(f"{root} is not empty and is not an mlreg results directory; "
                                     "choose another --out (out=)")
                aside = _move_aside(root)
            else:
                lock_fd = _lock(root)
                if fresh:
                    aside = _move_aside(root)
                    os.close(lock_fd)
                else:
                    store = cls(root, columns, lock_fd)
                    try:
                        store._repair()
                        store._check_manifest(manifest, must_match or {}, assume or {})
                        store._take_over(spec_toml, manifest, plan, describe_change)
                        store._session(must_match or {})
                    except BaseException:
                        store.close()
                        raise
                    return store
        store = cls(root, columns, _create(root, spec_toml, manifest))
        store.moved_aside = aside
        store._session(must_match or {})
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

    def statuses(self) -> dict[str, Status]:
        """The status of every run recorded, by run id."""
        return {row["run_id"]: cast("Status", row["status"]) for row in _read_rows(self.root / RUNS)}

    def done(self) -> set[str]:
        """The ids of the runs that need no training: `ok` and `diverged` (a result too).
        A `failed` run is trained again."""
        return {run_id for run_id, status in self.statuses().items() if status != "failed"}

    def forget(self, run_ids: Collection[str]) -> None:
        """Drops the rows of these runs from every file (atomically per file), so that they
        can be recorded anew: `mlreg run` retries failed runs this way."""
        ids = set(run_ids)
        if ids:
            for name in (RUNS, HISTORY, WEIGHTS, TIMINGS):
                _drop_rows(self.root / name, keep=lambda row: row["run_id"] not in ids)
            for run_id in ids:
                (self.root / ERRORS / f"{run_id}.txt").unlink(missing_ok=True)

    def append(self, result: RunResult) -> None:
        """Records a finished run: its history and weights (a failed run's traceback), then its
        `runs.csv` row."""
        self._check_owner()
        if result.traceback:
            (self.root / ERRORS).mkdir(exist_ok=True)
            _write_atomic(self.root / ERRORS / f"{result.run_id}.txt", result.traceback)
        self._append(HISTORY, result.history_rows())
        self._append(WEIGHTS, result.weights)
        self._append(TIMINGS, result.timing_rows())
        self._append(RUNS, [result.row()])

    def curves(self, column: str) -> dict[str, list[float]]:
        """Each recorded run's values of a history column, epoch by epoch (see `read_curves`)."""
        return read_curves(self.root, column)

    def decide(self, entry: dict[str, Any]) -> None:
        """Appends one decision of a search to `search.jsonl` (one line of JSON), before
        anything it decided is trained or recorded: a search that resumes reads it back and
        decides nothing twice."""
        self._check_owner()
        fd = os.open(self.root / SEARCH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        finally:
            os.close(fd)

    def decisions(self, say: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
        """The decisions of the search so far, in order (see `read_decisions`)."""
        return read_decisions(self.root, say)

    # -- internals ----------------------------------------------------------------
    def _session(self, kept: dict[str, Any]) -> None:
        """Appends where and when this process opened the directory to `sessions.jsonl`: the
        time, the host, the platform, Python, the command and the git commit of the working
        directory (what differs between two identical sweeps, kept out of the manifest)."""
        import platform
        import socket
        import sys

        entry = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
                 "platform": platform.platform(), "python": platform.python_version(),
                 "command": " ".join(sys.argv), "git_commit": _git_commit(), **kept}
        fd = os.open(self.root / SESSIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode())
        finally:
            os.close(fd)

    def _check_owner(self) -> None:
        """Refuses to write into a directory that is no longer the one this store locked
        (moved or replaced under the same name)."""
        try:
            here = os.stat(self.root / ".lock")
        except FileNotFoundError:
            here = None
        mine = os.fstat(self._lock_fd)
        if here is None or (here.st_ino, here.st_dev) != (mine.st_ino, mine.st_dev):
            raise StoreError(f"{self.root} was moved or replaced while this process was writing to it; "
                             "stopping without writing there (the runs already recorded moved with it)")

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

    def _check_manifest(self, manifest: dict[str, Any], must_match: dict[str, Any], assume: dict[str, Any]) -> None:
        """Refuses a directory whose manifest says its runs were made otherwise (`must_match`);
        a manifest that was deleted or damaged is written anew, whole, after the same check
        against what the last session wrote in `sessions.jsonl` (each session keeps the
        `must_match` entries too, so that deleting one file cannot lose them)."""
        try:
            old = json.loads((self.root / MANIFEST).read_text())
        except (OSError, ValueError):
            old = next((e for e in reversed(_sessions(self.root)) if all(k in e for k in must_match)), None)
            if old is not None:
                for key, value in must_match.items():
                    if old[key] != value:
                        raise StoreError(self._mismatch(key, old[key], value)) from None
            _write_atomic(self.root / MANIFEST, json.dumps(manifest | must_match, indent=2) + "\n")
            return
        for key, value in must_match.items():
            was = old.get(key, assume.get(key))
            if was is not None and was != value:
                raise StoreError(self._mismatch(key, was, value))
        if any(key not in old for key in must_match):
            _write_atomic(self.root / MANIFEST, json.dumps(old | must_match, indent=2) + "\n")

    def _mismatch(self, key: str, was: Any, value: Any) -> str:
        if key == "backend":
            return (f"{self.root}: its runs were trained with the {was} backend, and this run uses {value}; initial "
                    f"weights and dropout draws differ between backends, so the runs would not be comparable. "
                    f"Use --backend {was} (backend=) to resume, {AGAIN}")
        return (f"{self.root}: the data changed since its runs were recorded ({key} {was} -> {value}); its runs "
                f"would mix with runs on other data. Use {AGAIN}")

    def _take_over(self, spec_toml: str, manifest: dict[str, Any], plan: Collection[str] | None,
                   describe_change: Callable[[str, str], str] | None) -> None:
        old = (self.root / SPEC).read_text()
        if old == spec_toml:
            return
        recorded = set(self.statuses())
        outside = recorded - set(plan) if plan is not None else recorded
        if outside:
            change = describe_change(old, spec_toml) if describe_change else "its spec.toml"
            raise StoreError(
                f"{self.root} holds another experiment: {len(outside)} of its {len(recorded)} runs are not in "
                f"this one, which differs in {change}. Use {AGAIN}")
        _write_atomic(self.root / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        _write_atomic(self.root / SPEC, spec_toml)

    def _repair(self) -> None:
        """Checks the headers (adding the columns of a newer version), and drops rows a crash
        left behind: a cut-off last line, and history or weight rows of runs without a
        `runs.csv` row."""
        for name in (RUNS, HISTORY, WEIGHTS, TIMINGS):
            path = self.root / name
            if path.exists() and path.stat().st_size:
                with path.open("rb") as f:
                    header = next(csv.reader([f.readline().decode(errors="replace")]), [])
                if header != self.columns[name]:
                    self.columns[name] = _add_columns(path, header, self.columns[name])
        _drop_rows(self.root / RUNS, keep=lambda row: True)
        log = self.root / SEARCH
        if log.exists() and not log.read_bytes().endswith(b"\n") and log.stat().st_size:  # a cut-off decision
            text = log.read_text(errors="replace")
            _write_atomic(log, text[: text.rfind("\n") + 1])
        self._check_runs()
        recorded = set(self.statuses())
        for name in (HISTORY, WEIGHTS, TIMINGS):
            _drop_rows(self.root / name, keep=lambda row: row["run_id"] in recorded)

    def _check_runs(self) -> None:
        """What the store promises, checked when a directory is opened: one `runs.csv` line a
        run, statuses mlreg writes, and every finished run's history at epochs 1..epochs_run.
        Repairs what is safe and says so (`repairs`): an exact duplicate line is dropped; a run
        whose history lost epochs (a damaged history.csv) is forgotten, to be trained again.
        Refuses, naming the file and the line, what it cannot repair."""
        path = self.root / RUNS
        if not path.exists():
            return
        lines, rows = parse(path)
        first: dict[str, tuple[int, str]] = {}
        for number, (line, row) in enumerate(zip(lines[1:], rows, strict=True), start=2):
            if row["status"] not in STATUSES:
                raise StoreError(f"{path}: damaged file: line {number} has status {row['status']!r}, which mlreg "
                                 f"never writes ({', '.join(STATUSES)}); repair or remove that line")
            seen = first.setdefault(row["run_id"], (number, line))
            if seen[1] != line:
                raise StoreError(f"{path}: damaged file: line {number} repeats run {row['run_id']} of line {seen[0]} "
                                 "with other values; remove one of the two lines")
        if len(first) < len(rows):
            _write_atomic(path, "".join(lines[:1] + [line for _, line in sorted(first.values())]))
            n = len(rows) - len(first)
            self.repairs.append(f"{path}: dropped {n} exact duplicate line{'s' * (n != 1)}")
        epochs: dict[str, list[int]] = {}
        for row in _read_rows(self.root / HISTORY):
            epochs.setdefault(row["run_id"], []).append(int(float(row["epoch"])))
        damaged = {row["run_id"]: (epochs.get(row["run_id"], []), int(float(row["epochs_run"])))
                   for row in rows if row["status"] != "failed" and row.get("epochs_run")
                   and epochs.get(row["run_id"], []) != list(range(1, int(float(row["epochs_run"])) + 1))}
        if damaged:
            run_id, (kept, n) = next(iter(damaged.items()))
            self.forget(damaged)
            self.repairs.append(f"{self.root / HISTORY}: {len(damaged)} finished run{'s' * (len(damaged) != 1)} "
                                f"lost history rows (run {run_id}: {len(kept)} of {n} epochs); trained again")


def _sessions(root: Path) -> list[dict[str, Any]]:
    """The entries of `sessions.jsonl` that read as JSON (a torn last line is left out)."""
    out = []
    try:
        lines = (root / SESSIONS).read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _lock(root: Path) -> int:
    """Takes the directory's lock (`.lock`, flock), or refuses: another process writes there."""
    fd = os.open(root / ".lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"another mlreg process is writing to {root}; wait for it to finish") from None
    return fd


def _move_aside(root: Path) -> Path:
    aside = root.with_name(f"{root.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        aside = aside.with_name(f"{aside.name.split('~')[0]}~{n}")
        n += 1
    root.rename(aside)
    return aside


def _create(root: Path, spec_toml: str, manifest: dict[str, Any]) -> int:
    """Builds a new results directory beside `root` and renames it into place (all or
    nothing); returns the descriptor holding its lock."""
    root.parent.mkdir(parents=True, exist_ok=True)
    for stale in root.parent.glob(f".{root.name}.new-*"):  # left by a process that died while creating it
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = root.with_name(f".{root.name}.new-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    fd = -1
    try:
        fd = _lock(tmp)
        _write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        _write_atomic(tmp / SPEC, spec_toml)
        os.rename(tmp, root)  # replaces an empty directory; fails if another process got there first
    except BaseException as e:
        if fd >= 0:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise StoreError(f"another mlreg process is writing to {root}; wait for it to finish") from None
        raise
    return fd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
