"""Statistics for evaluation: unbiased pass@k, bootstrap confidence intervals and paired differences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import comb

import numpy as np

__all__ = ["bootstrap_ci", "paired_difference", "pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` passed (Chen et al., 2021).

    ``1 - C(n-c, k) / C(n, k)``: the chance that at least one of ``k`` samples drawn without
    replacement from the ``n`` passes.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_difference(before: Mapping[str, Sequence[float]], after: Mapping[str, Sequence[float]],
                      ) -> tuple[float | None, tuple[float, float] | None, int]:
    """Mean per-task change from ``before`` to ``after`` (each task's outcomes averaged) over the tasks
    both scored, its bootstrap 95% CI, and how many tasks were paired (``None, None, 0`` for none)."""
    common = sorted(set(before) & set(after))
    diffs = [float(np.mean(after[t])) - float(np.mean(before[t])) for t in common]
    if not diffs:
        return None, None, 0
    return float(np.mean(diffs)), bootstrap_ci(diffs), len(common)
