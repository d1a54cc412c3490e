"""One way to derive seeds: ``derive_seed(*keys)``.

Every seed the runner hands out (a rollout's episodes, the sampler at each step, the teacher, the
solver, retries, evaluation) comes from the run's seed and the keys that name its use, through
numpy's ``SeedSequence``, so streams for different uses never overlap by arithmetic accident (as
``seed * 1000 + i`` schemes do) and the same keys always give the same seed.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["derive_seed"]


def derive_seed(*keys: int | str) -> int:
    """A seed in ``[0, 2**31)`` from ``keys`` (ints and names), e.g. ``derive_seed(seed, "rollout", it)``."""
    entropy = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) & 0xFFFFFFFF for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)
