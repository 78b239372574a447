"""What the experiment file's errors say (one line per invalid field: its name, what is allowed,
what was received), and writing TOML."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from mlreg.spec.names import FREEZE, KINDS, PARAMS
from mlreg.spec.sections import _SECTIONS


def _check_param(key: str, where: str) -> None:
    if key not in PARAMS:
        import difflib

        close = difflib.get_close_matches(key, list(PARAMS), n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`? Expected" if close else "; expected"
        raise ValueError(f"Unknown parameter `{key}` in {where}{hint} one of {sorted(PARAMS)}")


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


EXPECTED = {
    "seeds": "expected a count >= 1, a list of seeds, or {start, max}",
    "train_size": "expected a fraction in (0, 1] or a count >= 2",
    "kernel_size": "expected a size >= 1, or a list of them (one per convolution block)",
    "strides": "expected a size >= 1, or a list of them (one per convolution block)",
    "pool": "expected a size >= 1, or a list of them (one per convolution block)",
    "freeze": f"expected one of {list(FREEZE)} or a count of trainable layers >= 1",
    "scale": 'expected true, false or "global"',
    "target": "expected a column name or a list of them",
}
"""What a field that takes values of several types expects, said once (pydantic says it once per type);
the kinds of regularization applied to kernels take a rate or a list of rates (see `expected`)."""

_TYPE_ERRORS = {"float": "expected a number", "int": "expected a whole number", "bool": "expected true or false",
                "string": "expected a string", "tuple": "expected a list", "list": "expected a list",
                "dict": "expected a table"}


def _format(e: ValidationError, *, prefix: str = "", value: Any = None) -> str:
    """One line per invalid field, naming it, saying what is allowed and what was received."""
    lines: dict[str, str] = {}
    for err in e.errors(include_url=False):
        names = [p for p in err["loc"] if isinstance(p, int) or _is_name(p)]
        field = next((p for p in reversed(names) if isinstance(p, str)), "")
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in names).replace(".[", "[")
        where = prefix if prefix else loc
        msg = err["msg"].removeprefix("Value error, ")
        kind = err["type"].removesuffix("_type").removesuffix("_parsing")
        short = where.split(".")[-1].split("[")[0]
        received = value if prefix else err.get("input")
        if err["type"] == "extra_forbidden":
            hint = _did_you_mean(names)
            lines[where] = f"Unknown key `{where}`{hint}{'' if hint else '.'} Received: {short}={err['input']!r}"
        elif msg.startswith("Invalid value for"):
            lines[where] = msg
        elif not loc and not prefix:
            lines[where] = msg
        else:
            expected = _expected(field)
            key = where.split("[")[0] if expected and kind in _TYPE_ERRORS else where
            if key in lines and expected:
                continue
            said = expected if expected and kind in _TYPE_ERRORS else _TYPE_ERRORS.get(kind, msg)
            lines[key] = f"Invalid value for `{key}`: {said}. Received: {short}={received!r}"
    return "; ".join(lines.values())


def _expected(field: str) -> str | None:
    if field in KINDS and KINDS[field].applies == "kernel":
        return "expected a rate >= 0, or a list of rates (one per layer)"
    return EXPECTED.get(field)


def _is_name(part: Any) -> bool:
    """Whether a part of a pydantic error location is a field name (not a union branch such as
    `float` or `tuple[float, ...]`)."""
    return isinstance(part, str) and part.isidentifier() and part not in ("float", "int", "bool", "str")


def _did_you_mean(names: list[Any]) -> str:
    """`; did you mean `hidden`?` for a misspelled key, from the fields of its section."""
    import difflib

    from mlreg.spec.experiment import ExperimentSpec

    section, key = (names[0], names[-1]) if len(names) > 1 else (None, names[-1] if names else "")
    fields = _SECTIONS[section].model_fields if section in _SECTIONS else ExperimentSpec.model_fields
    close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
    return f"; did you mean `{close[0]}`?" if close else ""


def _drop_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list | tuple):
        return [_drop_none(v) for v in x]
    return x


def dumps_toml(d: dict[str, Any]) -> str:
    """Writes a plain dict as TOML with `tomli_w` (`None` is left out: TOML has no null)."""
    import tomli_w

    return tomli_w.dumps(_drop_none(d))
