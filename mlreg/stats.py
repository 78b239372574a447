"""The statistics every decision over seeds uses: paired differences, their Student-t interval,
Holm's adjustment (NumPy and SciPy; no Keras). `mlreg.analysis.compare` reports with them and
`mlreg.search` decides with them, so a table and a search never disagree on an interval."""

from __future__ import annotations

import math
from collections.abc import Sequence


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (`scipy.stats`)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, df)) if df >= 1 else math.nan


def paired_test(d: Sequence[float], test_train_ratio: float = 0.0) -> tuple[float, float, float, float]:
    """The mean of paired differences, its 95% Student-t interval and the two-sided p-value
    of "the mean is 0": `(mean, low, high, p)`, NaN where fewer than two pairs allow none.

    With `test_train_ratio` > 0 (the pairs come from k-fold or repeated splits of one data
    set, so their training sets overlap and the differences are correlated), the variance of
    the mean is Nadeau and Bengio's corrected resampled estimate, `s^2 (1/J + n_val/n_train)`
    instead of `s^2 / J` (Nadeau & Bengio 2003, *Inference for the generalization error*).
    """
    import numpy as np
    from scipy import stats

    d = np.asarray(d, dtype=float)
    n = len(d)
    if n < 2:
        return (float(d.mean()) if n else math.nan), math.nan, math.nan, math.nan
    mean, se = float(d.mean()), float(d.std(ddof=1)) * math.sqrt(1 / n + test_train_ratio)
    half = t975(n - 1) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1)) if se > 0 else (0.0 if mean != 0 else 1.0)
    return mean, mean - half, mean + half, p


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values (NaN stays NaN): the i-th smallest of m is
    multiplied by m - i + 1, then made monotone; it controls the chance of any false
    "better" or "worse" among the m comparisons at the 5% level."""
    import numpy as np

    p = np.asarray(p, dtype=float)
    valid = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out.tolist()
