"""Which runs to train next: the full grid, successive halving, seeds where the decision needs
them, zooming in, a curve search over a rate; each strategy a file of its own behind one seam
(`strategy.Strategy`), driven by `driver.Search`; the answer and its prose in `answer`."""

from mlreg.search.answer import describe, setting_label
from mlreg.search.driver import Round, Search, added, describe_search, grid_end, setting_of
from mlreg.search.halving import first_rung, projected, rungs
from mlreg.search.replay import replay
from mlreg.search.zoom import midpoints

__all__ = ["Round", "Search", "added", "describe", "describe_search", "first_rung", "grid_end", "midpoints",
           "projected", "replay", "rungs", "setting_label", "setting_of"]
