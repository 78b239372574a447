"""More seeds where the decision needs them (`seeds = {start, max}`), a sampler.

Once the live settings trained to the end, the best setting and every setting whose interval
against it still holds zero get more seeds (doubling from `start` to `max`), until each is
separated from the best, tied with it within `margin`, or `max` is reached. Asked first among
the samplers, so that new values (zoom, curve) are placed once the live ones are decided. In an
extrapolating search each training-set size is decided on its own.
"""

from __future__ import annotations

from mlreg.search.strategy import Search, Step, Strategy, tournaments
from mlreg.spec import AdaptiveSeeds, ExperimentSpec


def seed_batches(seeds: AdaptiveSeeds) -> list[int]:
    """How many seeds each step of a search has: start, doubled, ..., max."""
    out = [seeds.start]
    while out[-1] < seeds.max:
        out.append(min(out[-1] * 2, seeds.max))
    return out


class Seeds(Strategy):
    kind = "seeds"

    @classmethod
    def applies(cls, spec: ExperimentSpec) -> bool:
        return isinstance(spec.seeds, AdaptiveSeeds)

    def __init__(self) -> None:
        self.steps: dict[int, int] = {}  # steps taken in each round of new values

    def next(self, search: Search, live: list[str]) -> Step | None:
        round_ = search.expansions  # logged as `zoom`, its name when zoom was the only way to add values
        step = self.steps.get(round_, 0) + 1
        logged = next((d for d in search.log if d["kind"] == "seeds" and d["zoom"] == round_ and d["step"] == step),
                      None)
        if logged is None:
            settings = []
            for group in tournaments(search.spec, live):  # in an extrapolating search, each size on its own
                verdicts = search.verdicts(group)
                open_ = [s for s in verdicts["open"] if len(search.seeds[s]) < search.batches[-1]]
                settings += [verdicts["best"], *open_] if open_ else []
            if not settings:
                return None
            logged = {"kind": "seeds", "zoom": round_, "step": step, "settings": settings}
            search.new.append(logged)
        self.steps[round_] = step
        for s in logged["settings"]:
            have = len(search.seeds[s])
            more = next((b for b in search.batches if b > have), have)
            search.seeds[s] = search.spec.seed_list[:more]
        added = tuple(logged["settings"])
        return Step(f"more seeds: {len(added)} settings to {len(search.seeds[added[0]])} seeds", added)
