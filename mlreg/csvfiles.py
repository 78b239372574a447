"""The results' CSV and JSON-lines files, read and written safely: whole-file rewrites by
renaming a finished temporary file, a last line cut off by a crash left out, a damaged line named
with its number, columns of earlier versions brought to today's."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlreg.errors import InputError
from mlreg.records import HISTORY, TIMED
from mlreg.spec import PARAMS

SEARCH = "search.jsonl"
"""The search's decisions, one JSON object a line (`mlreg.search`)."""


class StoreError(InputError):
    """The output directory cannot be used as asked."""


def _write_atomic(path: Path, text: str) -> None:
    """Writes a whole file by renaming a finished temporary file over it; on any error
    (a full disk) the temporary file is removed and the old file is left as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _add_columns(path: Path, header: list[str], columns: list[str]) -> list[str]:
    """Brings a CSV file written by an earlier version to today's columns and returns the
    header it now has: the new columns are added empty (the file rewritten atomically); a
    parameter column an earlier version recorded and this one does not (a model parameter the
    builder does not take) stays, as do the wall-time columns mlreg 0.3 wrote there (`TIMED`;
    empty from now on, the times going to `timings.csv`). Refuses a file with columns this version does not know."""
    unknown = [c for c in header if c not in columns and c not in PARAMS and c not in TIMED]
    if unknown:
        raise StoreError(f"{path} has columns that this version of mlreg does not write: {unknown}")
    merged = header + [c for c in columns if c not in header]
    if merged != header:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=merged, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(parse(path)[1])
        _write_atomic(path, buf.getvalue())
    return merged


def parse(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The complete lines of a CSV file written by the store (a cut-off last line left out),
    each with its row. Raises `StoreError` naming the line that is not a row of the header's
    width (hand-damaged: a stray quote, binary bytes)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise StoreError(f"{path}: damaged file: bytes that are not text at line {line}") from None
    lines = text[: text.rfind("\n") + 1].splitlines(keepends=True)
    if not lines:
        return [], []
    header = next(csv.reader([lines[0]]))
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            fields = next(csv.reader([line], strict=True), [])
        except csv.Error as e:
            raise StoreError(f"{path}: damaged file: line {number} is not CSV ({e}); repair or remove it") from None
        if len(fields) != len(header):
            raise StoreError(f"{path}: damaged file: line {number} has {len(fields)} fields, the header "
                             f"{len(header)}; repair or remove that line")
        rows.append(dict(zip(header, fields, strict=True)))
    return lines, rows


def read_curves(root: str | os.PathLike[str], column: str) -> dict[str, list[float]]:
    """Each run's values of a column of `root/history.csv`, epoch by epoch (NaN where empty)."""
    out: dict[str, list[float]] = {}
    for row in _read_rows(Path(root) / HISTORY):
        out.setdefault(row["run_id"], []).append(float(row.get(column) or "nan"))
    return out


def read_decisions(root: str | os.PathLike[str], say: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The decisions a search logged in `root/search.jsonl`, in order; none without the file.
    A last line cut off by a crash is left out (the store drops it when it opens). A line that
    repeats an earlier one (an answer that mlreg 0.3 wrote again at each start) is read once;
    `say`, when given, names the first such line."""
    path = Path(root) / SEARCH
    if not path.exists():
        return []
    out, seen = [], set()
    for number, line in enumerate(path.read_text(errors="replace").split("\n")[:-1], start=1):
        if not line.strip():
            continue
        if line in seen:
            if say is not None:
                say(f"{path}: line {number} repeats an earlier decision (written by an older mlreg); read once")
                say = None
            continue
        seen.add(line)
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise StoreError(f"{path}: line {number} is not a decision of mlreg's ({e}: {line[:40]!r}); delete "
                             "that line, or start the experiment afresh with --fresh") from None
    return out


def _read_rows(path: Path) -> list[dict[str, str]]:
    return parse(path)[1] if path.exists() else []


def _drop_rows(path: Path, keep: Any) -> None:
    """Rewrites a file without a cut-off last line and without the rows `keep` refuses."""
    if not path.exists():
        return
    lines, rows = parse(path)
    kept = [line for line, row in zip(lines[1:], rows, strict=True) if keep(row)]
    if len(kept) != len(rows) or sum(map(len, lines)) != path.stat().st_size:
        _write_atomic(path, "".join(lines[:1] + kept))
