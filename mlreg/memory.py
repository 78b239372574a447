"""What an experiment names but a file cannot hold: a builder function defined in a notebook
cell and arrays in memory (`mlreg.sweep`, `ExperimentSpec(model={"builder": fn})`,
`DataSpec(arrays=ArrayData(x, y))`).

The experiment keeps each as a label that says what it is, `build@3f2a9c01d4e5` (the
function's name, and a hash of its qualified name and source) or `arrays@9b1c...` (a hash of
the arrays' contents), so that it stays plain data: written to `spec.toml`, part of the run
ids (change the function's source or the arrays and the results directory holds another
experiment), compared as text. The objects themselves live in this process's registry, and
the executors ship the ones a pack needs to its worker with cloudpickle (which pickles a
function defined in `__main__` by value; Dask depends on it already).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlreg.errors import InputError, SpecError

_OBJECTS: dict[str, Any] = {}
BUILDER_LABEL = re.compile(r"[A-Za-z_][\w.]*@[0-9a-f]{12}")
ARRAYS_LABEL = re.compile(r"arrays@[0-9a-f]{16}")


def _fingerprint(value: Any, seen: frozenset[int] = frozenset()) -> str:
    """What a builder takes from around it, as text that changes when it does (`seen`: the
    functions being labelled, so that one closing over itself, a recursive helper, ends)."""
    if callable(value) and not isinstance(value, type):
        return f"<self {getattr(value, '__qualname__', '')}>" if id(value) in seen else builder_label(value, seen)
    if isinstance(value, np.ndarray):
        return hashlib.sha256(str((value.dtype.str, value.shape)).encode() + value.tobytes()).hexdigest()
    if isinstance(value, tuple | list):
        return "(" + ",".join(_fingerprint(v, seen) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{_fingerprint(v, seen)}" for k, v in sorted(value.items(), key=str)) + "}"
    return repr(value)


def builder_label(fn: Any, seen: frozenset[int] = frozenset()) -> str:
    """`name@hash`: the function's name, and 12 hex digits of a hash of its module, qualified
    name and source, and of what it takes from around it: the values it closes over and its
    defaults (a `functools.partial`: its function's, and its arguments)."""
    inner, extra, seen = fn, "", seen | {id(fn)}
    while isinstance(inner, functools.partial):
        extra += _fingerprint((inner.args, inner.keywords), seen)
        inner = inner.func
    seen |= {id(inner)}
    cells = [c.cell_contents for c in (getattr(inner, "__closure__", None) or ()) if _filled(c)]
    extra += _fingerprint((cells, getattr(inner, "__defaults__", None), getattr(inner, "__kwdefaults__", None)), seen)
    qualname = getattr(inner, "__qualname__", type(inner).__qualname__)
    try:
        source = inspect.getsource(inner)
    except (OSError, TypeError):  # defined where no source is kept (exec): its bytecode and constants
        code = getattr(inner, "__code__", None)
        source = repr((code.co_code, code.co_consts)) if code is not None else repr(inner)
    digest = hashlib.sha256(f"{getattr(inner, '__module__', '')}:{qualname}\n{source}\n{extra}".encode()).hexdigest()
    name = re.sub(r"\W", "_", qualname.split(".")[-1]) or "builder"
    return f"{name if name[0].isalpha() else 'b' + name}@{digest[:12]}"


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def register_builder(fn: Any) -> str:
    """Keeps `fn` under its label; returns the label."""
    if not callable(fn):
        raise SpecError(f"Invalid value for `model.builder`: expected a built-in builder's name, "
                        f"'package.module:function' or a function. Received: builder={fn!r}")
    label = builder_label(fn)
    _OBJECTS[label] = fn
    return label


def register_arrays(data: ArrayData) -> str:
    label = f"arrays@{data.content_hash}"
    _OBJECTS[label] = data
    return label


def get(label: str, field: str) -> Any:
    """The object a label names, in this process."""
    try:
        return _OBJECTS[label]
    except KeyError:
        raise SpecError(f"Invalid value for `{field}`: {label!r} names a Python object that was passed in "
                        f"memory (mlreg.sweep) and is not in this process; pass it again. "
                        f"Received: {field}={label!r}") from None


def needed(runs: Any) -> dict[str, Any]:
    """The registered objects the runs name (what a worker must be sent)."""
    labels = {label for r in runs for label in (r.model.builder, r.data.memory)}
    return {label: _OBJECTS[label] for label in labels if label in _OBJECTS}


def restore(objects: dict[str, Any]) -> None:
    _OBJECTS.update(objects)


_LAST_SHIPPED: tuple[tuple[str, ...], bytes] = ((), b"")


def shipped(objects: dict[str, Any]) -> bytes:
    """`objects` pickled for another process (the last ones kept: labels name contents, so the
    runner's check and every pack of a sweep pickle them once); a builder that cannot be (it
    closes over an open file, a lock, a live model) is refused in one line naming it."""
    global _LAST_SHIPPED
    key = tuple(sorted(objects))
    if key != _LAST_SHIPPED[0]:
        _LAST_SHIPPED = (key, _pickled(objects))
    return _LAST_SHIPPED[1]


def _pickled(objects: dict[str, Any]) -> bytes:
    import cloudpickle

    try:
        return cloudpickle.dumps(objects)
    except Exception as e:  # noqa: BLE001 - said in one line, naming the object
        names = ", ".join(label for label, obj in objects.items() if not _picklable(obj)) or ", ".join(objects)
        raise SpecError(f"Invalid value for `model.builder`: {names} cannot be sent to worker processes "
                        f"({type(e).__name__}: {e}); it may close over an open file, a lock or a live model. "
                        f"Build those inside the function, or train in this process (workers=None)") from None


def _picklable(obj: Any) -> bool:
    import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception:  # noqa: BLE001 - the question asked
        return False
    return True


def _array(value: Any, name: str) -> np.ndarray:
    """`value` as an array, refused with `InputError` naming the argument when it holds NaN, inf,
    objects or strings."""
    import pandas as pd

    if isinstance(value, pd.DataFrame | pd.Series):
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        bad = [c for c, t in frame.dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
        if bad:
            raise InputError(f"Invalid value for `{name}`: column {bad[0]!r} is not numeric ({frame[bad[0]].dtype}); "
                             f"encode it first. Received: {name} with columns {list(frame.columns)}")
        value = value.to_numpy()
    try:
        a = np.asarray(value)
    except ValueError as e:
        raise InputError(f"Invalid value for `{name}`: not an array ({e}). Received: {name}={_short(value)}") from None
    if a.dtype.kind not in "biuf":
        raise InputError(f"Invalid value for `{name}`: expected numbers, got an array of {a.dtype} "
                         f"(encode strings and categories first). Received: {name}={_short(value)}")
    if a.ndim == 0 or len(a) == 0:
        raise InputError(f"Invalid value for `{name}`: expected one row per sample, got shape {a.shape}. "
                         f"Received: {name}={_short(value)}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise InputError(f"Invalid value for `{name}`: it holds NaN or inf (first at index {where}); "
                         f"drop or fill those first. Received: {name} of shape {a.shape}")
    return a


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, eq=False)
class ArrayData:
    """Data in memory for an experiment: features of any shape `[N, ...]` (a NumPy array, a
    pandas DataFrame, nested lists) and targets, with an optional validation and test set of
    their own. Checked when made: numbers only, no NaN or inf, as many targets as samples.

    Args:
        x: the features, or a DataFrame holding the `target` column too.
        y: the targets (class labels, 0/1, a multi-label indicator matrix or values).
            Defaults to `None`: `x[target]`.
        validation: `(x_val, y_val)`: the validation set, instead of holding out `val_size`.
        test: `(x_test, y_test)`: a test set, evaluated at the best epoch.
        target: with a DataFrame `x` and no `y`, the target column (or columns).

    Example:
        >>> import numpy as np
        >>> ArrayData(np.zeros((10, 3)), np.arange(10) % 2).x.shape
        (10, 3)
    """

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    def __init__(self, x: Any, y: Any = None, *, validation: Any = None, test: Any = None,
                 target: str | list[str] | None = None) -> None:
        import pandas as pd

        if y is None:
            if not isinstance(x, pd.DataFrame) or target is None:
                raise InputError("Invalid value for `y`: give the targets as `y`, or `x` as a DataFrame with "
                                 "`target=` naming their column. Received: y=None")
            missing = [c for c in ([target] if isinstance(target, str) else target) if c not in x.columns]
            if missing:
                raise InputError(f"Invalid value for `target`: no column {missing[0]!r} in x (columns: "
                                 f"{list(x.columns)}). Received: target={target!r}")
            y, x = x[target], x.drop(columns=target)
        pairs = {"": (x, y), "_val": validation, "_test": test}
        for suffix, pair in pairs.items():
            if pair is None:
                continue
            if suffix and not (isinstance(pair, tuple | list) and len(pair) == 2):
                arg = "validation_data" if suffix == "_val" else "test_data"
                raise InputError(f"Invalid value for `{arg}`: expected a pair (x{suffix}, y{suffix}). "
                                 f"Received: {arg}={_short(pair)}")
            xs, ys = _array(pair[0], f"x{suffix}"), _array(pair[1], f"y{suffix}")
            if len(xs) != len(ys):
                raise InputError(f"Invalid value for `y{suffix}`: {len(ys)} targets for {len(xs)} samples of "
                                 f"x{suffix}. Received: y{suffix} of shape {ys.shape}")
            if suffix and xs.shape[1:] != self.x.shape[1:]:
                raise InputError(f"Invalid value for `x{suffix}`: its samples have shape {list(xs.shape[1:])}, x's "
                                 f"{list(self.x.shape[1:])}. Received: x{suffix} of shape {xs.shape}")
            object.__setattr__(self, f"x{suffix}", xs)
            object.__setattr__(self, f"y{suffix}", ys)
        if len(self.x) < 2:
            raise InputError(f"Invalid value for `x`: {len(self.x)} sample; training needs at least 2. "
                             f"Received: x of shape {self.x.shape}")

    @functools.cached_property
    def content_hash(self) -> str:
        """16 hex digits of a hash of every array (dtype, shape, bytes)."""
        h = hashlib.sha256()
        for a in (self.x, self.y, self.x_val, self.y_val, self.x_test, self.y_test):
            h.update(b"-" if a is None else str((a.dtype.str, a.shape)).encode() + np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]
