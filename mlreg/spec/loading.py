"""Reading an experiment file, and saying what changed between two."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mlreg.errors import SpecError
from mlreg.spec.experiment import ExperimentSpec


def describe_change(old_toml: str, new_toml: str) -> str:
    """The fields that differ between two `spec.toml` texts, e.g.
    `training.epochs (100 -> 150), seeds (3 -> 10)`."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            out |= flat(v, f"{key}.") if isinstance(v, dict) else {key: v}
        return out

    try:
        old, new = flat(tomllib.loads(old_toml)), flat(tomllib.loads(new_toml))
    except tomllib.TOMLDecodeError:
        return "its spec.toml (which is not valid TOML)"
    changed = [f"{k} ({old.get(k, 'unset')!r} -> {new.get(k, 'unset')!r})"
               for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    return ", ".join(changed) if changed else "formatting only"


def load_spec(path: str | Path) -> ExperimentSpec:
    """Reads and validates an experiment file.

    Args:
        path: a TOML experiment file.

    Returns:
        The validated `ExperimentSpec`.

    Raises:
        SpecError: the file is missing, is not TOML, or a value is invalid; the
            message names the field, the value received and what is allowed.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read the experiment file ({e.strerror})") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    d.setdefault("name", path.stem)
    return ExperimentSpec.from_dict(d, source=str(path)).at(path.resolve().parent)
