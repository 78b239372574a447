"""Zooming in (`[search] zoom = n`), a sampler: a parameter swept on a log grid gets the
geometric midpoints between the best value and its neighbours, on the best setting's seeds, for
`n` rounds."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from mlreg.search.strategy import Search, Step, Strategy
from mlreg.spec import ExperimentSpec, log_swept


class Zoom(Strategy):
    kind = "zoom"

    @classmethod
    def applies(cls, spec: ExperimentSpec) -> bool:
        return spec.search.zoom > 0

    def next(self, search: Search, live: list[str]) -> Step | None:
        at = search.expansions + 1
        if at > search.spec.search.zoom:
            return None
        logged = [d for d in search.log if d["kind"] == "zoom" and d["at"] == at]
        if not logged:
            best = search.verdicts(live)["best"]
            for param in log_swept(search.spec.grid):
                values = midpoints(param, best, list(search.settings))
                if values:
                    decision = {"kind": "zoom", "at": at, "param": param, "from": best, "values": values}
                    search.new.append(decision)
                    logged.append(decision)
        new = search.add_values(logged)
        return Step(f"zoom {at}: {len(new)} new values", tuple(new)) if new else None


def along(param: str, best: str, settings: Sequence[str]) -> list[float]:
    """The positive values of `param` among the settings (pruned ones too) that differ from
    the best only in it, in order."""
    fixed = {k: v for k, v in json.loads(best).items() if k != param}
    return sorted({json.loads(s)[param] for s in settings
                   if {k: v for k, v in json.loads(s).items() if k != param} == fixed and json.loads(s)[param] > 0})


def midpoints(param: str, best: str, settings: Sequence[str]) -> list[float]:
    """The geometric midpoints between the best value of `param` and its neighbours (`along`)."""
    values, value = along(param, best, settings), json.loads(best)[param]
    if value not in values:
        return []
    i = values.index(value)
    out = [float(f"{math.sqrt(value * n):.3g}") for n in (values[i - 1] if i else None,
                                                           values[i + 1] if i + 1 < len(values) else None) if n]
    return [v for v in out if v not in values]
