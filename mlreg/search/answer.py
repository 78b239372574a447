"""A search's answer: what it logs last in `search.jsonl` (a dict), and that dict in a few lines
of prose, as `mlreg run` prints it and the report shows it. Plain Python: the report reads it
without TensorFlow, JAX or Keras."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlreg.spec import label


def setting_label(key: str) -> str:
    """`l2=0.001, dropout=0.2` for a setting's key (its swept parameters' values as JSON)."""
    return ", ".join(f"{k}={label(v)}" for k, v in json.loads(key).items()) or "the one setting"


def describe(answer: Mapping[str, Any]) -> str:
    """The answer in a few lines: the best setting, those tied with it, separated from it or
    still open, the pruned ones, where a curve search pinned the best rate, and what the search
    spent against the full grid."""
    best = setting_label(answer["best"])
    lines = [f"best: {best} (mean {answer['monitor']} {answer['best_mean']:.4g})"]
    pinned = answer.get("pinned")
    if pinned:
        lines.append(pinned_line(pinned))
    if answer.get("extrapolation"):
        from mlreg.search.extrapolate import line

        lines += line(answer["extrapolation"], answer["monitor"])
    for key, word in (("tied", "tied with it"), ("separated", "worse beyond their intervals"),
                      ("open", "not separated from it at the most seeds")):
        if answer[key]:
            lines.append(f"{word}: {'; '.join(setting_label(s) for s in answer[key])}")
    if answer["pruned"]:
        lines.append(f"pruned at a rung: {len(answer['pruned'])} setting{'s' * (len(answer['pruned']) != 1)}")
    ratio = answer["grid_run_epochs"] / max(answer["run_epochs"], 1)
    sized = " full-size" if answer.get("extrapolation") else ""
    lines.append(f"spent {answer['run_epochs']:,}{sized} run-epochs in {answer['runs']} runs; the full grid with "
                 f"{answer['seeds']} seeds would have cost up to {answer['grid_run_epochs']:,} ({ratio:.1f}x; "
                 "early stopping would have ended some of its runs sooner)")
    lines += answer.get("notes", [])
    return "\n".join(lines)


def pinned_line(pinned: Mapping[str, Any]) -> str:
    """`l2 = 0.00316, pinned to a factor 1.8 (between 0.00178 and 0.00562, the rates tried next to
    it); not separated from it: 0.00178 to 0.00316` — a curve search's best rate, how closely the
    rates tried next to it bound it, and the interval of rates the seeds cannot tell from it."""
    param, value = pinned["param"], label(pinned["value"])
    below, above = pinned.get("below"), pinned.get("above")
    bound = (f"pinned to a factor {pinned['factor']:.2g} (between {label(below)} and {label(above)}, the rates "
             f"tried next to it)" if below is not None and above is not None else "not pinned")
    if not pinned.get("reached", True):
        bound += f"; not to the factor {pinned['precision']:g} asked for: {pinned['why']}"
    low, high = pinned["interval"]
    interval = f"{label(low)} to {label(high)}" if low != high else "no other rate"
    return f"{param} = {value}, {bound}; not separated from it: {interval}"
