"""The user's own data files: CSV, Parquet and NPZ, read with their problems said in one line
(a missing target, text in a feature column, missing or infinite values, a binary file under a
`.csv` name, more data than memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlreg.datasets import Arrays, DataError


def load_file(path: Path, target: str | tuple[str, ...] | None) -> Arrays:
    """A user's file as arrays. Refuses, naming the file and the column: a missing file or
    column, an empty file, non-numeric features, missing values (with the count of rows) and
    infinite values. An NPZ file holds arrays `x` (any rank >= 2: samples first) and `y`, and
    may carry its own test set (`x_test`, `y_test`); or one 1-D array per column."""
    import pandas as pd

    if path.is_dir():
        raise DataError(f"Invalid value for `data.path`: a directory, not a data file. Received: path={str(path)!r}")
    if not path.is_file():
        raise DataError(f"Invalid value for `data.path`: no such file. Received: path={str(path)!r}")
    suffix = path.suffix.lower()
    _check_readable(path, suffix)
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = _npz_arrays(z, path)
                frame = None if arrays is not None else pd.DataFrame({k: z[k] for k in z.files})
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"Invalid value for `data.path`: expected a .csv, .npz or .parquet file. "
                            f"Received: path={str(path)!r}")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path.name}: cannot read the file: {e}") from None
    if frame is None:
        return arrays  # type: ignore[return-value]
    if not target:
        raise DataError(f"Invalid value for `data.target`: {path.name} holds no arrays `x` and `y`, so name the "
                        f"target column (columns: {list(frame.columns)}). Received: target=None")
    x, y = _columns(frame, path, target)
    return Arrays(x, y, infer_task(y))


def _columns(frame: Any, path: Path, target: str | tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    if frame.empty:
        raise DataError(f"{path.name}: the file has no rows (a header at most)")
    targets = [target] if isinstance(target, str) else list(target or ())
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        import difflib

        names = [str(c) for c in frame.columns]
        close = difflib.get_close_matches(str(missing[0]), names, n=3, cutoff=0.5) or names[:3]
        raise DataError(
            f"Invalid value for `data.target`: no column {missing[0]!r} in {path.name}, which has "
            f"{len(names)} columns; the closest: {', '.join(map(repr, close))}. Received: target={target!r}"
        )
    features = frame.drop(columns=targets)
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise DataError(f"{path.name}: feature columns must be numeric; not numeric: {bad}")
    holes = frame.isna()
    if holes.any().any():
        rows, cols = int(holes.any(axis=1).sum()), [str(c) for c in frame.columns[holes.any()]]
        raise DataError(f"{path.name}: {_rows(rows)} missing values (in columns {cols}); fill or drop them first")
    numeric = frame.select_dtypes("number")
    infinite = np.isinf(numeric.to_numpy(dtype="float64"))
    if infinite.any():
        col = str(numeric.columns[infinite.any(axis=0)][0])
        n = int(infinite.any(axis=1).sum())
        raise DataError(f"{path.name}: column {col!r} has infinite values (in {n} row{'s' * (n != 1)}); "
                        "replace or drop them first")
    y = frame[targets[0]].to_numpy() if len(targets) == 1 else frame[targets].to_numpy()
    return features.to_numpy(dtype="float32"), y


MEMORY_FACTOR = 4
"""A data file is refused when this many times its (uncompressed) size exceeds the memory
available: pandas needs several times a CSV's size to parse it."""


def _check_readable(path: Path, suffix: str) -> None:
    """Refuses, before reading, a file that is not what its name says (binary bytes in a .csv)
    or that this machine cannot load (more than `1 / MEMORY_FACTOR` of the available memory),
    so that no data file is read with unbounded memory."""
    if suffix == ".csv":
        with path.open("rb") as f:
            head = f.read(1 << 16)
        if b"\x00" in head:
            raise DataError(f"{path.name}: not a CSV file: binary content (zero bytes) in its first "
                            f"{len(head):,} bytes")
    size = path.stat().st_size
    if suffix == ".npz":
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                size = sum(info.file_size for info in z.infolist())
        except zipfile.BadZipFile:
            raise DataError(f"{path.name}: not an NPZ file (not a zip archive of arrays)") from None
    available = _available_memory()
    if available is not None and size * MEMORY_FACTOR > available:
        raise DataError(f"{path.name}: {size / 1e9:.1f} GB of data, too much for the {available / 1e9:.1f} GB of "
                        "memory available here; use a smaller file (or a machine with more memory)")


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable), or `None` where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rows(n: int) -> str:
    """`1 row has`, `2 rows have`."""
    return f"{n} row has" if n == 1 else f"{n} rows have"


def _npz_arrays(z: Any, path: Path) -> Arrays | None:
    """An NPZ file's arrays `x` (or `X`) and `y`, and its own test set `x_test` (or `X_test`)
    and `y_test`, checked; `None` when the file holds one 1-D array per column instead."""
    x_key = next((k for k in ("x", "X") if k in z.files), None)
    if not (x_key and "y" in z.files):
        return None

    def checked(xk: str, yk: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = z[xk], z[yk]
        if x.ndim < 2 or y.ndim not in (1, 2) or len(x) != len(y):
            raise DataError(f"{path.name}: `{xk}` must hold samples first (samples x features, x T x C, or "
                            f"x H x W x C) and `{yk}` as many rows (one target, or one column per label); got "
                            f"shapes {list(x.shape)} and {list(y.shape)}")
        if not len(x):
            raise DataError(f"{path.name}: `{xk}` has no samples")
        if x.dtype.kind not in "biuf":
            raise DataError(f"{path.name}: `{xk}` must be numeric; it holds {x.dtype}")
        for name, a in ((xk, x), (yk, y)):
            if a.dtype.kind == "f":
                bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
                if bad.any():
                    what = "missing values" if np.isnan(a).any() else "infinite values"
                    raise DataError(f"{path.name}: {int(bad.sum())} samples of `{name}` have {what}; "
                                    "fill or drop them first")
        return x.astype("float32"), y

    x, y = checked(x_key, "y")
    test_key = next((k for k in ("x_test", "X_test") if k in z.files), None)
    if test_key and "y_test" in z.files:
        x_test, y_test = checked(test_key, "y_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"{path.name}: `{test_key}` holds samples of shape {list(x_test.shape[1:])}, "
                            f"`{x_key}` of shape {list(x.shape[1:])}")
        return Arrays(x, y, infer_task(y), x_test, y_test)
    return Arrays(x, y, infer_task(y))


def infer_task(y: np.ndarray) -> str:
    if y.ndim == 2:
        return "multi_label" if np.isin(y, (0, 1)).all() else "regression"
    if y.dtype.kind in "OUSb":
        return "binary" if len(np.unique(y)) == 2 else "single_label"
    values = np.unique(y)
    integral = y.dtype.kind in "iu" or np.all(np.mod(values, 1) == 0)
    if integral and len(values) <= 20:
        return "binary" if len(values) == 2 else "single_label"
    return "regression"
